"""The backtest: data -> walk-forward -> targets -> execution -> scores -> run folder.

Layer three of three: it composes the decisions (:func:`engine.decisions.decide`: the
walk-forward of :mod:`engine.forecasts` and the one strategy), execution
(:mod:`strategies.execution`) and the reports (:mod:`reports`).
"""

from __future__ import annotations

import json
import platform
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from lstmknn.data.dates import is_daily
from lstmknn.data.loader import PriceData
from lstmknn.data.sources import load_sources
from lstmknn.data.universe import check_universe
from lstmknn.engine.cache import FoldCache
from lstmknn.engine.config import Config, validate_universe
from lstmknn.engine.decisions import decide
from lstmknn.engine.errors import UserError
from lstmknn.engine.params import execution_params
from lstmknn.engine.runio import (
    check_out_dir,
    clean_json,
    date_format,
    dumps,
    format_timestamp,
    staged_run,
    write_atomic,
)
from lstmknn.reports.cross_section import ic_summary, quantile_returns
from lstmknn.reports.forecast_metrics import forecast_summary, fusion_counts, per_group_table
from lstmknn.reports.significance import deflated_sharpe_ratio, dm_table, probabilistic_sharpe_ratio
from lstmknn.reports.trading_metrics import strategy_metrics
from lstmknn.reports.verdict import forecast_verdict
from lstmknn.strategies.execution import buy_and_hold_returns, execute, untraded
from lstmknn.strategies.result import BacktestResult
from lstmknn.strategies.strategy import Strategy, closed_out

PREDICTION_COLUMNS = ["date", "symbol", "fold", "y_true", "lstm", "knn", "regime", "alpha",
                      "fused", "target"]
RUN_KIND = "backtest"


@dataclass
class BacktestRun:
    """Everything a backtest produced (also what ``run_backtest`` writes to disk)."""

    predictions: pd.DataFrame
    folds: pd.DataFrame
    result: BacktestResult
    benchmark: pd.Series
    summary: dict[str, Any]
    models: list[str]
    out_dir: Path | None = None


def load_data(sources: Sequence[str | PriceData], options: Any = None) -> list[PriceData]:
    """``--data`` entries (bundled names, ``NAME=path``, CSVs, folders) as price data."""
    datas = [s for s in sources if isinstance(s, PriceData)]
    specs = [str(s) for s in sources if not isinstance(s, PriceData)]
    if specs:
        datas += load_sources(specs, options)
    if len(specs) < len(sources):  # price data given as objects: checked with the files' symbols
        check_universe(datas)
    return datas


def score_run(predictions: pd.DataFrame, models: list[str], result: BacktestResult,
          benchmark: pd.Series, periods_per_year: float, cfg: Config) -> dict[str, Any]:
    """Forecast and strategy metrics for ``summary.json``."""
    scored = predictions.dropna(subset=["y_true"])
    returns = result.returns
    strat = strategy_metrics(returns, periods_per_year, positions=result.positions,
                             trades=result.trades_with_costs(), equity=result.equity)
    strat["probabilistic_sharpe"] = probabilistic_sharpe_ratio(returns)
    strat["deflated_sharpe"] = deflated_sharpe_ratio(returns, cfg.report.n_trials)
    strat["n_trials"] = cfg.report.n_trials
    strat["final_value"] = result.final_value
    strat["costs"] = result.costs  # commission + slippage
    strat["commission_paid"] = result.commission_paid
    strat["slippage_cost"] = result.slippage_cost
    dm = dm_table(scored, target_model="fused", against=[m for m in models if m != "fused"] + ["zero"],
                  h=cfg.walk_forward.horizon)
    by_regime = per_group_table(scored, models, by="regime")
    by_fold = per_group_table(scored, models, by="fold") if scored["symbol"].nunique() == 1 else None
    status_counts = result.trades["status"].value_counts().to_dict() if len(result.trades) else {}
    out: dict[str, Any] = {
        "forecast": forecast_summary(scored, models),
        "forecast_by_regime": by_regime.to_dict(orient="records"),
        "forecast_by_fold": (by_fold.to_dict(orient="records") if by_fold is not None
                             else "see fold_errors.csv"),
        "diebold_mariano": dm.to_dict(orient="index"),
        "strategy": strat,
        "benchmark": strategy_metrics(benchmark, periods_per_year),
        "orders": {str(k): int(v) for k, v in status_counts.items()},
        "periods_per_year": periods_per_year,
        "fusion_used": {str(k): int(v) for k, v in predictions["fusion_used"].value_counts().items()},
    }
    if predictions["symbol"].nunique() > 1:
        out["forecast_by_symbol"] = {
            str(s): forecast_summary(g, models) for s, g in scored.groupby("symbol")
        }
        out["cross_section"] = ic_summary(scored, models)
        out["quantiles"] = quantile_returns(scored, "fused", 5)
    return clean_json(out)


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape a run's numbers."""
    out = {"python": platform.python_version()}
    for pkg in ("lstmknn", "numpy", "pandas", "torch", "scikit-learn", "backtrader", "quantstats"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def ordered(predictions: pd.DataFrame) -> pd.DataFrame:
    first = [c for c in PREDICTION_COLUMNS if c in predictions]
    return predictions[first + [c for c in predictions.columns if c not in first]]


def symbol_spans(datas: Sequence[PriceData], predictions: pd.DataFrame) -> list[dict[str, Any]]:
    """Each symbol's data span, its decision span, and where it was closed out early."""
    ended = closed_out(predictions)
    out = []
    for d in datas:
        rows = predictions[predictions["symbol"] == d.symbol]["date"]
        info = d.describe()
        daily = is_daily(d.frame.index)

        def stamp(ts: Any, daily: bool = daily) -> str | None:
            return None if ts is None or pd.isna(ts) else format_timestamp(pd.Timestamp(ts), daily)

        out.append({"symbol": d.symbol, "first_bar": info["first_date"], "last_bar": info["last_date"],
                    "first_decision": stamp(rows.min()) if len(rows) else None,
                    "last_decision": stamp(rows.max()) if len(rows) else None,
                    "closed_out": stamp(ended.get(d.symbol))})
    return out


def run_backtest(sources: Sequence[str | PriceData], cfg: Config,
                 out_dir: str | Path | None = None, *, quiet: bool = True,
                 cache_dir: str | Path | None = None, engine: str = "backtrader", jobs: int = 1,
                 scheduler: str | None = None, data_options: Any = None,
                 stage: Callable[[str], None] | None = None,
                 strategy: Strategy | None = None) -> BacktestRun:
    """Walk-forward, trade and score; write the outputs to ``out_dir`` when given.

    ``out_dir`` is checked before any training (see :func:`engine.runio.check_out_dir`)
    and replaced as a whole when the run succeeds. ``jobs``/``scheduler``: run the
    symbols' walk-forwards in local processes or on Dask. ``stage(what)`` is told when the
    walk-forward is done and trading (and writing) begins. ``strategy``: a rule written as
    code (default: the config's rule).
    """
    t0 = time.perf_counter()
    if out_dir is not None:
        check_out_dir(out_dir, RUN_KIND)
    datas = load_data(sources, data_options)
    validate_universe(cfg, [d.symbol for d in datas])
    cache = FoldCache(cache_dir) if cache_dir else None
    decided = decide(datas, cfg, strategy=strategy, cache=cache, jobs=jobs, scheduler=scheduler,
                     quiet=quiet)
    fc = decided.forecasts
    folds, models, excluded = fc.folds, fc.models, fc.excluded
    traded = {str(s) for s in decided.predictions["symbol"].unique()}
    for d in datas:
        if d.symbol not in traded and d.symbol not in excluded:
            excluded[d.symbol] = (f"no decision bar: its data ({d.describe()['first_date']} to "
                                  f"{d.describe()['last_date']}) ends before the first fold's "
                                  "decisions")
    datas = [d for d in datas if d.symbol in traded]
    t_wf = time.perf_counter() - t0
    if stage is not None:
        stage("trading and writing the report" if out_dir is not None else "trading")
    prices = {d.symbol: d.frame for d in datas}
    ppy = decided.periods_per_year
    predictions = ordered(decided.predictions)
    result = execute(prices, predictions, execution_params(cfg), engine=engine)
    never = untraded(predictions, result.trades)
    for sym, why in never.items():
        warnings.warn(f"{sym}: {why}", stacklevel=2)
    benchmark = buy_and_hold_returns(prices, pd.DatetimeIndex(result.equity["date"]))
    summary = score_run(predictions, models, result, benchmark, ppy, cfg)
    summary["config"] = cfg.to_dict()
    summary["verdict"] = clean_json(forecast_verdict(summary))
    summary["data"] = [d.describe() for d in datas] if len(datas) > 1 else datas[0].describe()
    summary["symbols"] = symbol_spans(datas, predictions)
    summary["model_scope"] = cfg.model.scope
    if excluded:
        summary["excluded_symbols"] = excluded  # symbol -> why it has no forecasts
    if never:
        summary["untraded_symbols"] = never  # symbol -> why its targets sent no order
    summary["signal_rule"] = (signal_rule(cfg) if strategy is None or not strategy.custom
                              else f"strategy written as code: {strategy!r}")
    summary["folds"] = int(len(folds))
    summary["cache"] = {"hits": cache.hits, "misses": cache.misses} if cache else None
    summary["versions"] = versions()
    summary["timings"] = {"walk_forward_seconds": round(t_wf, 3)}
    run = BacktestRun(predictions, folds, result, benchmark, summary, models)
    if out_dir is not None:
        run.out_dir = write_outputs(run, Path(out_dir), cfg, t0)
    else:
        summary["elapsed_seconds"] = round(time.perf_counter() - t0, 3)
    return run


def signal_rule(cfg: Config) -> str:
    """One sentence on how forecasts become positions, for the summary."""
    if cfg.signal.cost_aware:
        return (f"cost-aware: a position changes only when the fused forecast, in the direction "
                f"of the change, exceeds the cost rate {cfg.cost_rate:.6g} (commission + slippage)")
    return "positions follow the forecast at every bar (signal.cost_aware = false)"


def fold_error_table(predictions: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """MSE/MAE/direction accuracy/IC of every model per fold (and per symbol in a portfolio)."""
    scored = predictions.dropna(subset=["y_true"])
    if scored["symbol"].nunique() <= 1:
        return per_group_table(scored, models, by="fold")
    return pd.concat([per_group_table(g, models, by="fold").assign(symbol=s)
                      for s, g in scored.groupby("symbol")], ignore_index=True)


def write_outputs(run: BacktestRun, out_dir: Path, cfg: Config, t0: float) -> Path:
    """Write every output into a staging folder that then replaces ``out_dir`` as a whole.

    A run that fails or is killed half-way leaves ``out_dir`` as it was.
    """
    with staged_run(out_dir, RUN_KIND) as tmp:
        fmt = date_format(run.predictions["date"])
        run.predictions.to_csv(tmp / "predictions.csv", index=False, date_format=fmt)
        run.folds.to_csv(tmp / "folds.csv", index=False, date_format=fmt)
        fold_error_table(run.predictions, run.models).to_csv(tmp / "fold_errors.csv", index=False)
        run.result.equity.to_csv(tmp / "equity.csv", index=False, date_format=fmt)
        trades = run.result.trades_with_costs()
        trades.to_csv(tmp / "trades.csv", index=False, date_format=fmt)
        run.result.positions.to_csv(tmp / "positions.csv", date_format=fmt)
        run.benchmark.rename("return").to_csv(tmp / "benchmark.csv", index_label="date",
                                              date_format=fmt)
        t_rep = time.perf_counter()
        if cfg.report.tearsheet:
            write_report(tmp, run.summary, run.predictions, run.models, run.result.equity,
                         trades, run.result.positions, run.benchmark)
        run.summary["timings"]["report_seconds"] = round(time.perf_counter() - t_rep, 3)
        run.summary["elapsed_seconds"] = round(time.perf_counter() - t0, 3)
        write_atomic(tmp / "summary.json", dumps(run.summary))
    return out_dir


def data_name(summary: dict[str, Any]) -> str:
    """``sp500``, ``sp500+msft``, or ``20 symbols (AAPL, AMD, BAC, ...)`` for a universe."""
    data = summary["data"]
    if isinstance(data, dict):
        return data["name"]
    names = [d["name"] for d in data]
    if len(names) <= 4:
        return "+".join(names)
    return f"{len(names)} symbols ({', '.join(names[:3])}, ...)"


def write_report(folder: Path, summary: dict, predictions: pd.DataFrame, models: list[str],
                 equity: pd.DataFrame, trades: pd.DataFrame, positions: pd.DataFrame,
                 benchmark: pd.Series, *, title: str | None = None, fast: bool = False,
                 extra_tables: Mapping[str, pd.DataFrame] | None = None) -> Path:
    """The HTML tearsheet (quantstats + the model section) from a run's pandas objects; also
    the report of a paper account (its own ``title`` and ``extra_tables``). ``fast``: the
    model section only."""
    from lstmknn.reports.tearsheet import (  # quantstats loads late
        write_model_report,
        write_tearsheet,
    )

    name = data_name(summary)
    returns = equity.set_index("date")["return"]
    extra = {"Fusion method used per decision": fusion_counts(predictions), **(extra_tables or {})}
    n_symbols = predictions["symbol"].nunique()
    label = f"Buy & hold {name}" if n_symbols == 1 else "Equal-weight buy & hold"
    n_trials = int((summary.get("config") or {}).get("report", {}).get("n_trials", 1))
    writer = write_model_report if fast else write_tearsheet
    return writer(folder / "tearsheet.html", returns,
                  benchmark.reindex(returns.index).rename(label),
                  predictions.dropna(subset=["y_true"]), models, trades, positions,
                  equity, summary["periods_per_year"],
                  title or f"lstmknn walk-forward: {name}", extra_tables=extra,
                  n_trials=n_trials, benchmark_label=label,
                  verdict=forecast_verdict(summary)["lines"])


RUN_FILES = ["summary.json", "predictions.csv", "equity.csv", "trades.csv", "positions.csv",
             "benchmark.csv"]


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's files back as pandas objects (timestamps exact, intraday included)."""
    d = Path(run_dir)
    missing = [f for f in RUN_FILES if not (d / f).is_file()]
    if missing:
        raise UserError(f"{d}: not a complete run folder (missing {', '.join(missing)})")
    try:
        summary = json.loads((d / "summary.json").read_text())
        return {
            "summary": summary,
            "predictions": pd.read_csv(d / "predictions.csv", parse_dates=["date"]),
            "equity": pd.read_csv(d / "equity.csv", parse_dates=["date"]),
            "trades": pd.read_csv(d / "trades.csv", parse_dates=["date"]),
            "positions": pd.read_csv(d / "positions.csv", parse_dates=["date"], index_col="date"),
            "benchmark": pd.read_csv(d / "benchmark.csv", parse_dates=["date"],
                                     index_col="date")["return"],
        }
    except (ValueError, KeyError) as exc:
        raise UserError(f"{d}: unreadable run file ({exc})") from None


def rebuild_report(run_dir: str | Path) -> Path:
    """``lstmknn report RUN_DIR``: rebuild tearsheet.html from a run's saved files."""
    d = Path(run_dir)
    run = read_run(d)
    summary = run["summary"]
    models = [m for m in summary["forecast"] if m != "zero"]
    tmp = d / ".tearsheet.html.partial"
    tmp.mkdir(exist_ok=True)
    try:
        path = write_report(tmp, summary, run["predictions"], models, run["equity"], run["trades"],
                            run["positions"], run["benchmark"])
        path.replace(d / "tearsheet.html")
    finally:
        for f in tmp.glob("*"):
            f.unlink()
        tmp.rmdir()
    return d / "tearsheet.html"
