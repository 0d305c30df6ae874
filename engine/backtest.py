"""The backtest pipeline: data -> walk-forward -> signals -> execution -> reports.

This is the one module that composes ``data``, the models, ``strategies``
and ``reports``; the CLI is a thin layer over it.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.loader import PriceData, load_prices
from engine.cache import FoldCache
from engine.config import Config
from engine.errors import UserError
from engine.signals import target_positions
from engine.walk_forward import WalkForwardResult, run_walk_forward, tqdm_progress
from reports.forecast_metrics import forecast_summary, per_group_table
from reports.periods import infer_periods_per_year
from reports.significance import deflated_sharpe_ratio, dm_table, probabilistic_sharpe_ratio
from reports.trading_metrics import strategy_metrics
from strategies.costs import ExecutionParams
from strategies.result import BacktestResult

PREDICTION_COLUMNS = ["date", "symbol", "fold", "y_true", "lstm", "knn", "regime", "alpha",
                      "fused", "target"]
BASELINES = ["train_mean", "persistence"]


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


def load_sources(sources: Sequence[str]) -> list[PriceData]:
    """Load each ``--data`` entry: a bundled name, a CSV, or a folder of CSVs."""
    datas: list[PriceData] = []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            files = sorted(p.glob("*.csv"))
            if not files:
                raise UserError(f"{src}: folder holds no .csv files")
            datas += [load_prices(f) for f in files]
        else:
            datas.append(load_prices(src))
    names = [d.symbol for d in datas]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise UserError(f"symbol names must be unique (repeated: {', '.join(sorted(dup))})")
    return datas


def model_columns(wf: WalkForwardResult) -> list[str]:
    """Forecast columns scored in reports: components, fusion and baselines."""
    cols = list(wf.lstm_columns)
    if "lstm" not in cols:
        cols.append("lstm")
    return [*cols, "knn", "fused", *BASELINES]


def execution_params(cfg: Config) -> ExecutionParams:
    ex, sg = cfg.execution, cfg.signal
    return ExecutionParams(cash=ex.cash, commission=ex.commission,
                           commission_fixed=ex.commission_fixed, slippage=ex.slippage,
                           volume_cap=ex.volume_cap, min_change=sg.min_change,
                           allow_short=not sg.long_only, leverage=max(2.0, 2.0 * sg.max_leverage))


def add_targets(predictions: pd.DataFrame, cfg: Config, periods_per_year: float,
                n_symbols: int = 1) -> pd.DataFrame:
    """Add the ``target`` column: position fraction decided at each row's close."""
    out = predictions.copy()
    out["target"] = target_positions(out["fused"].to_numpy(), cfg.signal,
                                     vol=out.get("vol"), periods_per_year=periods_per_year)
    if n_symbols > 1:
        if cfg.signal.allocation == "equal":
            out["target"] = out["target"] / n_symbols
        else:  # by signal strength: weight each symbol by |fused| among that day's symbols
            strength = out["fused"].abs()
            total = strength.groupby(out["date"]).transform("sum")
            out["target"] = out["target"] * np.where(total > 0, strength / total, 0.0)
    return out


def target_frame(predictions: pd.DataFrame) -> pd.DataFrame:
    """Targets as a date x symbol frame (NaN where a symbol does not trade)."""
    return predictions.pivot(index="date", columns="symbol", values="target").sort_index()


def benchmark_returns(prices: dict[str, pd.DataFrame], index: pd.DatetimeIndex) -> pd.Series:
    """Buy-and-hold of the asset, or of the equal-weight basket, over ``index``."""
    rets = pd.DataFrame({s: df["close"].pct_change() for s, df in prices.items()})
    bench = rets.reindex(index).mean(axis=1).fillna(0.0)
    bench.iloc[0] = 0.0
    bench.name = "benchmark"
    return bench


def execute(prices: dict[str, pd.DataFrame], predictions: pd.DataFrame, cfg: Config,
            engine: str = "backtrader") -> BacktestResult:
    """Trade precomputed predictions (with ``target``) through backtrader or the vectorized twin."""
    targets = target_frame(predictions)
    params = execution_params(cfg)
    if engine == "vectorized":
        from strategies.vectorized import run_vectorized

        return run_vectorized(prices, targets, params)
    from strategies.bt_engine import run_backtrader

    return run_backtrader(prices, targets, params)


def score(predictions: pd.DataFrame, models: list[str], result: BacktestResult,
          benchmark: pd.Series, periods_per_year: float, cfg: Config) -> dict[str, Any]:
    """Forecast and strategy metrics for ``summary.json``."""
    scored = predictions.dropna(subset=["y_true"])
    returns = result.returns
    strat = strategy_metrics(returns, periods_per_year, positions=result.positions,
                             trades=result.trades, equity=result.equity)
    strat["probabilistic_sharpe"] = probabilistic_sharpe_ratio(returns)
    strat["deflated_sharpe"] = deflated_sharpe_ratio(returns, cfg.report.n_trials)
    strat["n_trials"] = cfg.report.n_trials
    strat["final_value"] = result.final_value
    strat["commission_paid"] = result.costs
    strat["slippage_cost"] = result.slippage_cost
    dm = dm_table(scored, target_model="fused", against=[m for m in models if m != "fused"] + ["zero"],
                  h=cfg.walk_forward.horizon)
    by_regime = per_group_table(scored, models, by="regime")
    by_fold = per_group_table(scored, models, by="fold") if scored["symbol"].nunique() == 1 else None
    status_counts = result.trades["status"].value_counts().to_dict() if len(result.trades) else {}
    out: dict[str, Any] = {
        "forecast": forecast_summary(scored, models),
        "forecast_by_regime": _records(by_regime),
        "forecast_by_fold": _records(by_fold) if by_fold is not None else "see fold_errors.csv",
        "diebold_mariano": {str(k): _clean(v) for k, v in dm.to_dict(orient="index").items()},
        "strategy": _clean(strat),
        "benchmark": _clean(strategy_metrics(benchmark, periods_per_year)),
        "orders": {str(k): int(v) for k, v in status_counts.items()},
        "periods_per_year": periods_per_year,
        "fusion_used": {str(k): int(v) for k, v in predictions["fusion_used"].value_counts().items()},
    }
    if predictions["symbol"].nunique() > 1:
        out["forecast_by_symbol"] = {
            str(s): forecast_summary(g, models) for s, g in scored.groupby("symbol")
        }
    return out


def _clean(d: dict) -> dict:
    def conv(v: Any) -> Any:
        if isinstance(v, (np.floating, float)):
            return None if not np.isfinite(v) else float(v)
        if isinstance(v, np.integer):
            return int(v)
        return v
    return {str(k): conv(v) for k, v in d.items()}


def _records(frame: pd.DataFrame) -> list[dict]:
    return [_clean(r) for r in frame.to_dict(orient="records")]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("lstmknn", "numpy", "pandas", "torch", "scikit-learn", "backtrader", "quantstats"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def walk_forward_all(datas: list[PriceData], cfg: Config, *, cache: FoldCache | None,
                     quiet: bool, jobs: int = 1, scheduler: str | None = None
                     ) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Walk-forward per symbol; predictions and fold tables stacked with a ``symbol`` column.

    ``jobs``/``scheduler`` (or an active joblib backend) run the symbols as
    parallel tasks through :mod:`engine.parallel`; the result is the same.
    """
    from engine.parallel import plan

    parallel = None
    if not plan(jobs, scheduler).serial:
        from engine.sweep import walk_forward_symbols

        parallel = iter(walk_forward_symbols(datas, cfg, cache=cache, jobs=jobs,
                                             scheduler=scheduler, quiet=quiet))
    preds, folds, models = [], [], []
    for d in datas:
        if parallel is not None:
            wf = next(parallel)
        else:
            progress, close = tqdm_progress(not quiet, desc=f"{d.symbol} folds")
            try:
                wf = run_walk_forward(d.frame, cfg, cache=cache, progress=progress)
            finally:
                close()
        models = model_columns(wf)
        preds.append(wf.predictions.assign(symbol=d.symbol))
        folds.append(wf.folds.assign(symbol=d.symbol))
    return pd.concat(preds, ignore_index=True), pd.concat(folds, ignore_index=True), models


def ordered(predictions: pd.DataFrame) -> pd.DataFrame:
    first = [c for c in PREDICTION_COLUMNS if c in predictions]
    return predictions[first + [c for c in predictions.columns if c not in first]]


def run_backtest(sources: Sequence[str], cfg: Config, out_dir: str | Path | None = None, *,
                 quiet: bool = True, cache_dir: str | Path | None = None,
                 engine: str = "backtrader", jobs: int = 1,
                 scheduler: str | None = None) -> BacktestRun:
    """Walk-forward, trade and score; write the outputs to ``out_dir`` when given.

    ``jobs``/``scheduler``: run the symbols' walk-forwards in local processes or on Dask.
    """
    t0 = time.perf_counter()
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise UserError(f"--out {out_dir}: exists and is not a folder")
    datas = load_sources(sources)
    cache = FoldCache(cache_dir) if cache_dir else None
    predictions, folds, models = walk_forward_all(datas, cfg, cache=cache, quiet=quiet,
                                                  jobs=jobs, scheduler=scheduler)
    t_wf = time.perf_counter() - t0
    prices = {d.symbol: d.frame for d in datas}
    ppy = infer_periods_per_year(datas[0].frame.index)
    predictions = ordered(add_targets(predictions, cfg, ppy, n_symbols=len(datas)))
    result = execute(prices, predictions, cfg, engine=engine)
    benchmark = benchmark_returns(prices, pd.DatetimeIndex(result.equity["date"]))
    summary = score(predictions, models, result, benchmark, ppy, cfg)
    summary["config"] = cfg.to_dict()
    summary["data"] = [d.describe() for d in datas] if len(datas) > 1 else datas[0].describe()
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


def write_outputs(run: BacktestRun, out_dir: Path, cfg: Config, t0: float) -> Path:
    """Write every output into a temporary folder, then move them into ``out_dir``.

    A run that fails half-way leaves ``out_dir`` as it was: no half-written
    results are passed off as a finished run.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=out_dir))
    try:
        run.predictions.to_csv(tmp / "predictions.csv", index=False, date_format="%Y-%m-%d")
        run.folds.to_csv(tmp / "folds.csv", index=False, date_format="%Y-%m-%d")
        scored = run.predictions.dropna(subset=["y_true"])
        by = ["symbol", "fold"] if scored["symbol"].nunique() > 1 else "fold"
        fold_errors = per_group_table(scored, run.models, by=by) if by == "fold" else pd.concat(
            [per_group_table(g, run.models, by="fold").assign(symbol=s)
             for s, g in scored.groupby("symbol")], ignore_index=True)
        fold_errors.to_csv(tmp / "fold_errors.csv", index=False)
        run.result.equity.to_csv(tmp / "equity.csv", index=False, date_format="%Y-%m-%d")
        run.result.trades.to_csv(tmp / "trades.csv", index=False, date_format="%Y-%m-%d")
        run.result.positions.to_csv(tmp / "positions.csv", date_format="%Y-%m-%d")
        run.benchmark.rename("return").to_csv(tmp / "benchmark.csv", index_label="date",
                                              date_format="%Y-%m-%d")
        t_rep = time.perf_counter()
        if cfg.report.tearsheet:
            write_report(tmp, run.summary, run.predictions, run.models, run.result.equity,
                         run.result.trades, run.result.positions, run.benchmark)
        run.summary["timings"]["report_seconds"] = round(time.perf_counter() - t_rep, 3)
        run.summary["elapsed_seconds"] = round(time.perf_counter() - t0, 3)
        (tmp / "summary.json").write_text(json.dumps(run.summary, indent=2, default=str))
        for f in tmp.iterdir():
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def write_report(folder: Path, summary: dict, predictions: pd.DataFrame, models: list[str],
                 equity: pd.DataFrame, trades: pd.DataFrame, positions: pd.DataFrame,
                 benchmark: pd.Series) -> Path:
    """The HTML tearsheet (quantstats + the model section) from a run's pandas objects."""
    from reports.tearsheet import write_tearsheet

    data = summary["data"]
    name = data["name"] if isinstance(data, dict) else "+".join(d["name"] for d in data)
    returns = equity.set_index("date")["return"]
    counts = predictions["fusion_used"].value_counts().rename_axis("fusion used").rename("rows")
    extra = {"Fusion method used per decision": counts.to_frame()}
    return write_tearsheet(folder / "tearsheet.html", returns, benchmark.reindex(returns.index),
                           predictions.dropna(subset=["y_true"]), models, trades, positions,
                           equity, summary["periods_per_year"],
                           f"lstmknn walk-forward: {name}", extra_tables=extra)


def rebuild_report(run_dir: str | Path) -> Path:
    """``lstmknn report RUN_DIR``: rebuild tearsheet.html from a run's saved files."""
    d = Path(run_dir)
    needed = ["summary.json", "predictions.csv", "equity.csv", "trades.csv", "positions.csv",
              "benchmark.csv"]
    missing = [f for f in needed if not (d / f).is_file()]
    if missing:
        raise UserError(f"{d}: not a complete run folder (missing {', '.join(missing)})")
    summary = json.loads((d / "summary.json").read_text())
    predictions = pd.read_csv(d / "predictions.csv", parse_dates=["date"])
    equity = pd.read_csv(d / "equity.csv", parse_dates=["date"])
    trades = pd.read_csv(d / "trades.csv", parse_dates=["date"])
    positions = pd.read_csv(d / "positions.csv", parse_dates=["date"], index_col="date")
    bench = pd.read_csv(d / "benchmark.csv", parse_dates=["date"], index_col="date")["return"]
    models = [m for m in summary["forecast"] if m != "zero"]
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=d))
    try:
        write_report(tmp, summary, predictions, models, equity, trades, positions, bench)
        os.replace(tmp / "tearsheet.html", d / "tearsheet.html")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return d / "tearsheet.html"
