"""The public Python API: DataFrames in, objects out (re-exported by the ``lstmknn`` package).

>>> import lstmknn
>>> run = lstmknn.backtest("sp500", lstm={"epochs": 5})
>>> run.stats["Sharpe Ratio"], run.equity.tail()

Everything here goes through the same path as the command line
(:func:`engine.decisions.decide`, :func:`strategies.execution.execute`, the run folder
writer), so a script and ``lstmknn backtest`` give the same numbers for the same data and
configuration.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from lstmknn.data.frames import DataLike, as_price_data
from lstmknn.data.options import LoadOptions
from lstmknn.engine.asof import signal_records
from lstmknn.engine.audit import AuditReport, run_audit
from lstmknn.engine.backtest import BacktestRun, read_run, run_backtest, write_outputs, write_report
from lstmknn.engine.cache import FoldCache
from lstmknn.engine.config import Config, ConfigError, from_dict, load_config
from lstmknn.engine.defaults import DEFAULT_CACHE
from lstmknn.engine.errors import UserError
from lstmknn.engine.params import strategy_params
from lstmknn.reports.periods import infer_periods_per_year
from lstmknn.strategies.strategy import FunctionStrategy, Strategy

StrategyLike = Strategy | Callable[[pd.DataFrame, pd.Series], Any] | None


def make_config(config: Config | str | Path | Mapping[str, Any] | None = None,
                **sections: Mapping[str, Any]) -> Config:
    """A validated :class:`Config` from a file, a dict, a Config, and keyword sections.

    Parameters
    ----------
    config : Config, str, Path or mapping, optional
        Base configuration: a TOML file, a nested dict in the TOML layout, or a Config.
    **sections : mapping
        Overrides by section, e.g. ``lstm={"epochs": 5}``, ``signal={"sizing": "rank"}``,
        ``seed=3``.

    Returns
    -------
    Config
        Unknown sections or keys raise :class:`ConfigError` listing the known ones.
    """
    if config is None:
        base = Config()
    elif isinstance(config, Config):
        base = config
    elif isinstance(config, Mapping):
        base = from_dict(dict(config))
    else:
        base = load_config(config)
    return from_dict(dict(sections), base=base) if sections else base


def _strategy(strategy: StrategyLike, cfg: Config, data: list) -> Strategy | None:
    if strategy is None:
        return None
    ppy = infer_periods_per_year(data[0].frame.index)
    if isinstance(strategy, Strategy):
        return strategy
    if callable(strategy):
        return FunctionStrategy(strategy, strategy_params(cfg, ppy))
    raise ConfigError(f"strategy must be a Strategy or a function (history, held) -> weights "
                      f"(got {type(strategy).__name__})")


def _cache(cache: bool | str | Path | None) -> str | None:
    if cache is True:
        return DEFAULT_CACHE
    if cache in (False, None):
        return None
    return str(cache)


STATS = [  # (label, section, key, scale): the stats Series, in the order shown
    ("Start", None, "start", None), ("End", None, "end", None),
    ("Duration", None, "duration", None),
    ("Exposure Time [%]", "strategy", "exposure", 100.0),
    ("Equity Final [$]", "strategy", "final_value", 1.0),
    ("Return [%]", "strategy", "total_return", 100.0),
    ("Buy & Hold Return [%]", "benchmark", "total_return", 100.0),
    ("CAGR [%]", "strategy", "cagr", 100.0),
    ("Volatility (Ann.) [%]", "strategy", "volatility", 100.0),
    ("Sharpe Ratio", "strategy", "sharpe", 1.0),
    ("Sortino Ratio", "strategy", "sortino", 1.0),
    ("Calmar Ratio", "strategy", "calmar", 1.0),
    ("Max. Drawdown [%]", "strategy", "max_drawdown", 100.0),
    ("Buy & Hold Sharpe Ratio", "benchmark", "sharpe", 1.0),
    ("Probabilistic Sharpe Ratio", "strategy", "probabilistic_sharpe", 1.0),
    ("Deflated Sharpe Ratio", "strategy", "deflated_sharpe", 1.0),
    ("# Trades", "strategy", "n_trades", 1.0),
    ("Turnover", "strategy", "turnover", 1.0),
    ("Commission [$]", "strategy", "commission_paid", 1.0),
    ("Slippage [$]", "strategy", "slippage_cost", 1.0),
]


class Run:
    """One backtest: its figures as pandas objects, its run folder, its page and a plot.

    Attributes
    ----------
    stats : Series
        The strategy's figures (return, CAGR, Sharpe, PSR/DSR, drawdown, trades, costs),
        percentages in percent, as ``backtesting.py`` shows them.
    forecasts : DataFrame
        Per model (lstm, knn, fused, baselines, zero): MSE, MSE relative to the zero
        forecast, MAE, direction accuracy, IC, Diebold-Mariano statistic and p-value of
        the fused forecast against it.
    predictions : DataFrame
        The ``predictions.csv`` table indexed by ``(date, symbol)``.
    equity, trades, positions : DataFrame
        Indexed by date: broker value and return; order outcomes; shares held.
    benchmark : Series
        Buy-and-hold returns over the same bars.
    summary : dict
        Everything ``summary.json`` holds.
    config : Config
        The configuration that ran.
    """

    def __init__(self, backtest: BacktestRun, config: Config) -> None:
        self._run = backtest
        self.config = config
        self.summary: dict[str, Any] = backtest.summary
        p = backtest.predictions
        self.predictions = p.set_index(["date", "symbol"]) if "symbol" in p else p.set_index("date")
        res = backtest.result
        self.equity = res.equity.set_index("date")
        trades = res.trades if "slippage" in res.trades else res.trades_with_costs()
        self.trades = trades.set_index("date")
        self.positions = res.positions
        self.benchmark = backtest.benchmark
        self.path: Path | None = backtest.out_dir

    def __repr__(self) -> str:
        s = self.stats
        return (f"<lstmknn.Run {self.summary.get('model_scope', '')} {s['Start']} .. {s['End']}: "
                f"return {s['Return [%]']:.1f} %, Sharpe {s['Sharpe Ratio']:.2f} "
                f"(buy & hold {s['Buy & Hold Return [%]']:.1f} %)>")

    @property
    def stats(self) -> pd.Series:
        """The strategy's figures as a Series (see the class docstring)."""
        eq = self.equity.index
        out: dict[str, Any] = {}
        for label, section, key, scale in STATS:
            if section is None:
                value: Any = {"start": eq[0] if len(eq) else None,
                              "end": eq[-1] if len(eq) else None,
                              "duration": eq[-1] - eq[0] if len(eq) else None}[key]
            else:
                raw = (self.summary.get(section) or {}).get(key)
                value = float("nan") if raw is None else raw * scale
            out[label] = value
        return pd.Series(out, name="stats", dtype=object)

    @property
    def forecasts(self) -> pd.DataFrame:
        """The forecast table: per model MSE (and relative to zero), MAE, direction accuracy,
        IC, and the Diebold-Mariano test of the fused forecast against it."""
        table = pd.DataFrame(self.summary["forecast"]).T
        zero = table.loc["zero", "mse"] if "zero" in table.index else float("nan")
        table.insert(1, "mse_vs_zero", table["mse"] / zero)
        dm = pd.DataFrame(self.summary.get("diebold_mariano") or {}).T
        if len(dm):
            table = table.join(dm[["dm_stat", "p_value"]].rename(
                columns={"dm_stat": "dm_stat_fused_vs", "p_value": "dm_p_value"}))
        table.index.name = "model"
        return table

    def save(self, path: str | Path) -> Path:
        """Write the run folder the command line writes (``lstmknn load`` reads it back)."""
        write_outputs(self._run, Path(path), self.config, time.perf_counter())
        self.path = Path(path)
        return self.path

    def tearsheet(self, path: str | Path) -> Path:
        """Write the HTML page (quantstats tearsheet + model section) to ``path``."""
        target = Path(path)
        if target.exists() and target.is_dir():
            raise UserError(f"{target}: is a folder; give the page's file name")
        tmp = target.parent / f".{target.name}.partial"
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            r = self._run
            page = write_report(tmp, r.summary, r.predictions, r.models, r.result.equity,
                                r.result.trades, r.result.positions, r.benchmark)
            page.replace(target)
        finally:
            for f in tmp.glob("*"):
                f.unlink()
            tmp.rmdir()
        return target

    def plot(self):  # noqa: ANN201 - matplotlib is imported lazily
        """A matplotlib figure: growth of 1 against buy-and-hold, and the gross position."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 5))
        ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        growth = (1 + self.equity["return"]).cumprod()
        bench = (1 + self.benchmark.reindex(growth.index).fillna(0.0)).cumprod()
        ax.plot(growth.index, growth.to_numpy(), label="strategy", zorder=3)
        ax.plot(bench.index, bench.to_numpy(), label="buy & hold", color="grey", lw=0.9)
        ax.set_ylabel("growth of 1")
        ax.legend(loc="upper left")
        weights = self.predictions["target"].groupby(level="date").apply(
            lambda t: t.abs().sum()) if "symbol" in self.predictions.index.names \
            else self.predictions["target"]
        ax2.fill_between(weights.index, weights.to_numpy(), step="post", alpha=0.5)
        ax2.set_ylabel("gross target")
        fig.tight_layout()
        return fig

    def _repr_html_(self) -> str:
        import base64
        import io

        stats = self.stats.to_frame("value")
        stats["value"] = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in stats["value"]]
        buf = io.BytesIO()
        self.plot().savefig(buf, format="png", dpi=80)
        img = base64.b64encode(buf.getvalue()).decode()
        return (f"<div><b>lstmknn run</b>{stats.to_html(header=False)}"
                f"<img src='data:image/png;base64,{img}'/></div>")


def backtest(data: DataLike, config: Config | str | Path | Mapping | None = None, *,
             strategy: StrategyLike = None, cache: bool | str | Path = True,
             engine: str = "backtrader", jobs: int = 1, quiet: bool = True,
             out: str | Path | None = None, options: LoadOptions | None = None,
             **sections: Mapping[str, Any]) -> Run:
    """Walk-forward, trade and score ``data``; the same run as ``lstmknn backtest``.

    Parameters
    ----------
    data : DataFrame, dict, str, Path or list
        An OHLCV DataFrame (yfinance-shaped or lower-case columns, dates in the index),
        a dict ``{symbol: DataFrame}`` or a long frame with a ``symbol`` column (a
        universe), a CSV path, ``NAME=path``, a bundled name (``"sp500"``), or a list.
    config : Config, str, Path or mapping, optional
        The configuration (a TOML path, a dict, a Config); ``**sections`` override it.
    strategy : Strategy or callable, optional
        A rule written as code: a :class:`Strategy` subclass overriding ``decide``, or a
        function ``(history, held) -> {symbol: weight}``; default: the config's rule.
    cache : bool, str or Path
        The fold cache: ``True`` (default, ``.lstmknn_cache`` as on the command line), a
        folder, or ``False``.
    engine : {"backtrader", "vectorized"}
        Which execution engine trades the targets (the same fills either way).
    jobs : int
        Parallel per-symbol walk-forwards (joblib's convention).
    quiet : bool
        No progress bars.
    out : str or Path, optional
        Also write the run folder there.
    options : LoadOptions, optional
        How to read files (price column, separator, date order).

    Returns
    -------
    Run
    """
    cfg = make_config(config, **sections)
    datas = as_price_data(data, options)
    chosen = _strategy(strategy, cfg, datas)
    run = run_backtest(datas, cfg, out, quiet=quiet, cache_dir=_cache(cache), engine=engine,
                       jobs=jobs, strategy=chosen)
    return Run(run, cfg)


def signal(data: DataLike, config: Config | str | Path | Mapping | None = None, *,
           asof: str | pd.Timestamp | None = None, strategy: StrategyLike = None,
           cache: bool | str | Path = True, account_value: float | None = None,
           options: LoadOptions | None = None, **sections: Mapping[str, Any]
           ) -> list[dict[str, Any]]:
    """The decision at the close of ``asof`` (default: the latest bar): the records of
    ``lstmknn signal`` (one per symbol: forecasts, fused, target, weight, side, quantity,
    provenance), equal to the backtest's row of that bar.

    Parameters are those of :func:`backtest`; ``account_value`` sizes the indicative
    quantity (default ``execution.cash``).

    Returns
    -------
    list of dict
        ``pd.DataFrame(records)`` gives a table.
    """
    cfg = make_config(config, **sections)
    datas = as_price_data(data, options)
    chosen = _strategy(strategy, cfg, datas)
    root = _cache(cache)
    return signal_records(datas, cfg, asof, cache=FoldCache(root) if root else None,
                          strategy=chosen, account_value=account_value)


def audit(data: DataLike, config: Config | str | Path | Mapping | None = None, *,
          strategy: StrategyLike = None, cuts: int = 8, cache: bool | str | Path = True,
          options: LoadOptions | None = None, **sections: Mapping[str, Any]) -> AuditReport:
    """``lstmknn audit`` from Python: does anything decided at a bar change when the data after
    it is removed or altered? Checks the features, every model, the fusion and the target of
    the configuration's rule, or of ``strategy`` (a rule written as code).

    Returns
    -------
    AuditReport
        ``.clean`` is True when nothing differs; ``.leaks`` lists each column and stage
        (feature, model, fusion, target) at the first bar it differs.
    """
    cfg = make_config(config, **sections)
    datas = as_price_data(data, options)
    root = _cache(cache)
    return run_audit(datas, cfg, cuts=cuts, cache=FoldCache(root) if root else None,
                     strategy=_strategy(strategy, cfg, datas))


def load(path: str | Path) -> Run:
    """A run folder written by ``lstmknn backtest`` or :meth:`Run.save`, as a :class:`Run`."""
    from lstmknn.strategies.result import BacktestResult

    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such run folder")
    files = read_run(folder)
    summary = files["summary"]
    cfg = from_dict({k: v for k, v in summary["config"].items()})
    models = [m for m in summary["forecast"] if m != "zero"]
    equity, trades = files["equity"], files["trades"]
    strat = summary.get("strategy") or {}
    result = BacktestResult(equity=equity, trades=trades, positions=files["positions"],
                            commission_paid=float(strat.get("commission_paid") or 0.0),
                            slippage_cost=float(strat.get("slippage_cost") or 0.0),
                            engine="loaded",
                            slippage=trades.get("slippage"))
    folds = pd.read_csv(folder / "folds.csv", parse_dates=["train_start", "train_end",
                                                           "test_start", "test_end"]) \
        if (folder / "folds.csv").is_file() else pd.DataFrame()
    run = BacktestRun(files["predictions"], folds, result, files["benchmark"], summary, models,
                      folder)
    return Run(run, cfg)

