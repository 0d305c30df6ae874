"""Configuration sweeps and symbol universes over the execution layer (:mod:`engine.parallel`).

A sweep task is one symbol x one configuration: walk-forward, vectorized
execution and metrics. Each finished task is written at once to
``OUT/tasks/<key>.json`` (atomically), so a re-run skips it; a task that failed
is recorded with its error and tried again on the next run.
"""

from __future__ import annotations

import argparse
import html
import itertools
import json
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from engine.config import Config, ConfigError, load_config, read_toml, with_overrides
from engine.parallel import Outcome, Task, plan, run_tasks

if TYPE_CHECKING:  # torch and the models load only when a task runs
    from data.loader import PriceData
    from engine.cache import FoldCache
    from engine.walk_forward import WalkForwardResult

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

MODELS = ("lstm", "knn", "fused", "zero")
FORECAST_METRICS = ("mse", "direction_accuracy", "ic")
STRATEGY_METRICS = ("total_return", "sharpe", "max_drawdown")
RANKINGS = {"sharpe": ("sharpe", False), "fused_mse": ("fused_mse_rel_zero", True)}


# ----------------------------------------------------------------------------- universes

def walk_forward_task(frame: pd.DataFrame, cfg: Config, cache_root: str | None) -> WalkForwardResult:
    """One symbol's walk-forward (a pure task: frame and config in, predictions out)."""
    from engine.cache import FoldCache
    from engine.walk_forward import run_walk_forward

    return run_walk_forward(frame, cfg, cache=FoldCache(cache_root) if cache_root else None)


def walk_forward_symbols(datas: Sequence[PriceData], cfg: Config, *, cache: FoldCache | None = None,
                         jobs: int = 1, scheduler: str | None = None, quiet: bool = True
                         ) -> list[WalkForwardResult]:
    """Walk-forward of every symbol through the execution layer (results in ``datas`` order).

    The first failing symbol's exception is raised after all have run.
    """
    root = str(Path(cache.root).resolve()) if cache is not None else None
    tasks = [Task(d.symbol, walk_forward_task, (d.frame, cfg, root)) for d in datas]
    outcomes = run_tasks(tasks, jobs=jobs, scheduler=scheduler, progress=not quiet,
                         label="symbols")
    for o in outcomes:
        if not o.ok:
            raise o.exception or RuntimeError(o.error)
    results = [o.value for o in outcomes]
    if cache is not None:
        cache.hits += sum(r.cache_hits for r in results)
        cache.misses += sum(r.cache_misses for r in results)
    return results


# ----------------------------------------------------------------------------- grid

@dataclass(frozen=True)
class Variant:
    """One configuration of the grid: its number, dotted overrides and validated config."""

    number: int
    overrides: dict[str, Any]
    cfg: Config

    @property
    def config_id(self) -> str:
        return self.cfg.hash()

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={_text(v)}" for k, v in self.overrides.items()) or "base"


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def load_grid(path: str | Path) -> dict[str, list[Any]]:
    """Read a grid TOML: values per dotted key (``"lstm.lookback" = [10, 20]``, or tables)."""
    return _flatten(read_toml(path, "grid"))


def expand_grid(base: Config, grid: Mapping[str, Any], where: str = "grid") -> list[Variant]:
    """Every combination of the grid's values, each validated; raises ConfigError naming the key.

    Each key and each value is checked on its own first, then every combination
    (for rules across keys), before anything runs.
    """
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: `{key}` must list one or more values (got {values!r})")
        seen = []
        for v in values:
            if v in seen:
                raise ConfigError(f"{where}: `{key}` lists {v!r} twice")
            seen.append(v)
            try:
                with_overrides(base, {key: v})
            except ConfigError as exc:
                raise ConfigError(f"{where}: `{key}` = {_text(v)}: {exc}") from None
    keys = list(grid)
    variants = []
    for n, combo in enumerate(itertools.product(*(grid[k] for k in keys)), 1):
        overrides = dict(zip(keys, combo, strict=True))
        try:
            cfg = with_overrides(base, overrides)
        except ConfigError as exc:
            label = ", ".join(f"{k}={_text(v)}" for k, v in overrides.items())
            raise ConfigError(f"{where}: combination {label}: {exc}") from None
        variants.append(Variant(n, overrides, cfg))
    return variants


# ----------------------------------------------------------------------------- one task

def evaluate_task(frame: pd.DataFrame, cfg: Config, symbol: str,
                  cache_root: str | None = None) -> dict[str, Any]:
    """Walk-forward + vectorized execution + metrics of one symbol under one configuration."""
    from engine.pipeline import add_targets, execute
    from reports.forecast_metrics import forecast_table
    from reports.periods import infer_periods_per_year
    from reports.trading_metrics import strategy_metrics

    wf = walk_forward_task(frame, cfg, cache_root)
    ppy = infer_periods_per_year(frame.index)
    preds = add_targets(wf.predictions.assign(symbol=symbol), cfg, ppy)
    result = execute({symbol: frame}, preds, cfg, engine="vectorized")
    table = forecast_table(preds.dropna(subset=["y_true"]), ["lstm", "knn", "fused"])
    metrics: dict[str, Any] = {f"{m}_{k}": table.loc[m, k] for m in MODELS for k in FORECAST_METRICS}
    strat = strategy_metrics(result.returns, ppy)
    metrics.update({k: strat[k] for k in STRATEGY_METRICS})
    metrics.update(folds=len(wf.folds), n_predictions=int(table.loc["fused", "n"]))
    returns = result.returns
    return {"metrics": _clean(metrics),
            "returns": {"date": [d.strftime("%Y-%m-%d") for d in returns.index],
                        "return": [float(r) for r in returns.to_numpy()]}}


def _num(v: Any) -> Any:
    """JSON-safe scalar: NaN/inf -> None, numpy numbers -> Python numbers."""
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return int(v) if isinstance(v, np.integer) else v


def _clean(d: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _num(v) for k, v in d.items()}


# ----------------------------------------------------------------------------- task store

class TaskStore:
    """One JSON record per task key under ``root``, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        try:
            record = json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("key") == key else None

    def save(self, record: dict[str, Any]) -> None:
        _write_atomic(self.path(record["key"]), json.dumps(record, allow_nan=False))


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def task_key(symbol: str, variant: Variant, data: PriceData) -> str:
    """Stable key of a symbol x configuration (data content included)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", symbol)
    return f"{safe}-{variant.config_id}-{data.sha256[:8]}"


# ----------------------------------------------------------------------------- sweep

@dataclass
class SweepResult:
    results: pd.DataFrame
    ranked: pd.DataFrame
    by_symbol: pd.DataFrame
    summary: dict[str, Any]
    out_dir: Path


def run_sweep(sources: Sequence[str], base: Config, grid: Mapping[str, Any] | str | Path,
              out_dir: str | Path, *, jobs: int = 1, scheduler: str | None = None,
              rank_by: str = "sharpe", cache_dir: str | Path | None = None,
              progress: bool = False) -> SweepResult:
    """Run (or resume) a sweep of ``grid`` over ``sources`` and write its outputs to ``out_dir``."""
    from engine.pipeline import load_sources

    t0 = time.perf_counter()
    if rank_by not in RANKINGS:
        raise ConfigError(f"rank_by must be one of {', '.join(RANKINGS)} (got {rank_by!r})")
    where = str(grid) if isinstance(grid, (str, Path)) else "grid"
    values = load_grid(grid) if isinstance(grid, (str, Path)) else dict(grid)
    variants = expand_grid(base, values, where)
    datas = load_sources(sources)
    execution = plan(jobs, scheduler)
    out = Path(out_dir)
    store = TaskStore(out / "tasks")
    cache_root = str(Path(cache_dir).resolve()) if cache_dir else None
    meta: dict[str, dict[str, Any]] = {}
    tasks = []
    for v in variants:
        for d in datas:
            key = task_key(d.symbol, v, d)
            meta[key] = {"key": key, "symbol": d.symbol, "config": v.number,
                         "config_id": v.config_id, "overrides": v.overrides}
            done = store.load(key)
            if done is None or done.get("status") != "ok":
                tasks.append(Task(key, evaluate_task, (d.frame, v.cfg, d.symbol, cache_root)))

    def persist(o: Outcome) -> None:
        value = o.value or {}
        store.save({**meta[o.key], "status": "ok" if o.ok else "error", "error": o.error,
                    "elapsed": round(o.elapsed, 3), "metrics": value.get("metrics", {}),
                    "returns": value.get("returns")})

    resumed = len(meta) - len(tasks)
    run_tasks(tasks, jobs=jobs, scheduler=scheduler, on_done=persist, progress=progress,
              label=f"sweep ({resumed} resumed)" if resumed else "sweep")
    records = [store.load(k) or {**meta[k], "status": "missing"} for k in meta]
    results = results_table(records, list(values))
    ranked = rank_configurations(results, list(values), rank_by)
    by_symbol = symbol_table(results, rank_by)
    summary = summarize(ranked, records, variants, rank_by)
    summary.update(
        data=[d.describe() for d in datas], grid=values, base_config=base.to_dict(),
        execution=execution.describe(),
        tasks={"total": len(meta), "run": len(tasks), "resumed": resumed,
               "failed": int((results["status"] != "ok").sum())},
        elapsed_seconds=round(time.perf_counter() - t0, 3))
    write_sweep(out, results, ranked, by_symbol, summary, records)
    return SweepResult(results, ranked, by_symbol, summary, out)


def results_table(records: Sequence[dict[str, Any]], keys: Sequence[str]) -> pd.DataFrame:
    """One row per symbol x configuration: grid values, metrics, elapsed, status, error."""
    metric_cols = [f"{m}_{k}" for m in MODELS for k in FORECAST_METRICS]
    metric_cols += ["fused_mse_rel_zero", *STRATEGY_METRICS, "folds", "n_predictions"]
    rows = []
    for r in records:
        row: dict[str, Any] = {"symbol": r["symbol"], "config": r["config"],
                               "config_id": r["config_id"]}
        row.update({k: _text(r["overrides"][k]) if isinstance(r["overrides"][k], list)
                    else r["overrides"][k] for k in keys})
        m = r.get("metrics") or {}
        zero, fused = m.get("zero_mse"), m.get("fused_mse")
        m = {**m, "fused_mse_rel_zero": fused / zero if fused is not None and zero else None}
        row.update({c: m.get(c) for c in metric_cols})
        row.update(elapsed=r.get("elapsed"), status=r["status"], error=r.get("error"))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame[metric_cols] = frame[metric_cols].astype(float)
    return frame


def rank_configurations(results: pd.DataFrame, keys: Sequence[str], rank_by: str) -> pd.DataFrame:
    """Aggregate over symbols (means of successful tasks), best configuration first."""
    ok = results[results["status"] == "ok"]
    cols = ["sharpe", "total_return", "max_drawdown", "fused_mse", "fused_mse_rel_zero",
            "fused_direction_accuracy", "fused_ic", "zero_mse"]
    first = results.groupby("config", sort=True)[["config_id", *keys]].first()
    agg = ok.groupby("config")[cols].mean().reindex(first.index)
    counts = results.assign(ok=results["status"] == "ok").groupby("config")["ok"]
    table = first.join(agg)
    table["n_ok"] = counts.sum().astype(int)
    table["n_failed"] = (counts.count() - counts.sum()).astype(int)
    table["elapsed"] = results.groupby("config")["elapsed"].sum()
    column, ascending = RANKINGS[rank_by]
    table = table.sort_values(column, ascending=ascending, na_position="last", kind="stable")
    table = table.reset_index()
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def symbol_table(results: pd.DataFrame, rank_by: str) -> pd.DataFrame:
    """Per symbol: task counts, its best configuration and the mean over configurations."""
    column, ascending = RANKINGS[rank_by]
    rows = []
    for symbol, g in results.groupby("symbol", sort=False):
        ok = g[g["status"] == "ok"].sort_values(column, ascending=ascending, na_position="last")
        best = ok.iloc[0] if len(ok) else None
        rows.append({"symbol": symbol, "n_ok": len(ok), "n_failed": len(g) - len(ok),
                     "best_config": None if best is None else int(best["config"]),
                     "best_sharpe": None if best is None else best["sharpe"],
                     "best_fused_mse_rel_zero": None if best is None else best["fused_mse_rel_zero"],
                     "mean_sharpe": ok["sharpe"].mean(),
                     "mean_fused_mse_rel_zero": ok["fused_mse_rel_zero"].mean()})
    return pd.DataFrame(rows)


def portfolio_returns(records: Sequence[dict[str, Any]], config: int) -> pd.Series:
    """Equal-weight mean of the symbols' daily strategy returns under one configuration."""
    series = [pd.Series(r["returns"]["return"], index=pd.to_datetime(r["returns"]["date"]))
              for r in records
              if r["config"] == config and r["status"] == "ok" and r.get("returns")]
    if not series:
        return pd.Series(dtype=float)
    return pd.concat(series, axis=1).mean(axis=1).sort_index()


def summarize(ranked: pd.DataFrame, records: Sequence[dict[str, Any]],
              variants: Sequence[Variant], rank_by: str) -> dict[str, Any]:
    """summary.json: the ranking and the best configuration with its deflated Sharpe ratio.

    The DSR uses ``n_trials`` = configurations tried and, with two or more, the
    variance of the per-period Sharpe ratio across them (of the equal-weight
    portfolio of symbols).
    """
    from reports.periods import infer_periods_per_year
    from reports.significance import deflated_sharpe_ratio, sharpe_moments
    from reports.trading_metrics import strategy_metrics

    by_number = {v.number: v for v in variants}
    per_period = [sharpe_moments(portfolio_returns(records, v.number))["sr"] for v in variants]
    finite = [s for s in per_period if math.isfinite(s)]
    sr_var = float(np.var(finite, ddof=1)) if len(finite) >= 2 else None
    best = None
    if len(ranked) and ranked.iloc[0]["n_ok"] > 0:
        row = ranked.iloc[0]
        number = int(row["config"])
        r = portfolio_returns(records, number)
        port = strategy_metrics(r, infer_periods_per_year(r.index)) if len(r) > 2 else {}
        best = {"config": number, "config_id": by_number[number].config_id,
                "overrides": by_number[number].overrides,
                **_clean({k: row[k] for k in ("sharpe", "total_return", "max_drawdown",
                                             "fused_mse", "fused_mse_rel_zero")}),
                "portfolio_sharpe": _num(port.get("sharpe")),
                "deflated_sharpe": _num(deflated_sharpe_ratio(r, len(variants), sr_var)),
                "n_trials": len(variants),
                "sr_variance": "across configurations" if sr_var is not None else "own estimate"}
    rows = ranked.replace({np.nan: None}).to_dict(orient="records")
    return {"ranked_by": rank_by, "rank_metric": RANKINGS[rank_by][0],
            "n_configurations": len(variants), "best": best,
            "configurations": [_clean(r) for r in rows]}


# ----------------------------------------------------------------------------- outputs

def write_sweep(out: Path, results: pd.DataFrame, ranked: pd.DataFrame, by_symbol: pd.DataFrame,
                summary: dict[str, Any], records: Sequence[dict[str, Any]]) -> None:
    """results.csv, summary.csv, by_symbol.csv, summary.json and sweep.html (each atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "results.csv", results.to_csv(index=False))
    _write_atomic(out / "summary.csv", ranked.to_csv(index=False))
    _write_atomic(out / "by_symbol.csv", by_symbol.to_csv(index=False))
    _write_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str))
    best = summary["best"]
    equity = portfolio_returns(records, best["config"]) if best else pd.Series(dtype=float)
    _write_atomic(out / "sweep.html", sweep_page(results, ranked, summary, equity))


def sweep_page(results: pd.DataFrame, ranked: pd.DataFrame, summary: dict[str, Any],
               best_returns: pd.Series) -> str:
    """A self-contained HTML page (base64 PNG figures): Sharpe and fused MSE by configuration."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from reports.plots import fig_to_img

    order = list(ranked["config"])
    x = np.arange(len(order))
    ok = results[results["status"] == "ok"]

    def bars(column: str, title: str, line: float | None) -> str:
        fig = Figure(figsize=(max(6.0, 0.45 * len(order) + 2), 3.2))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        base = line or 0.0  # bars grow from the reference line
        ax.bar(x, ranked[column].to_numpy(float) - base, bottom=base, color="#7aa6c2",
               label="mean over symbols")
        for symbol, g in ok.groupby("symbol"):
            pos = [order.index(c) for c in g["config"]]
            ax.scatter(pos, g[column], s=14, zorder=3, label=str(symbol))
        if line is not None:
            ax.axhline(line, color="grey", lw=0.8)
        ax.set_xticks(x, [f"#{c}" for c in order], rotation=90 if len(order) > 20 else 0)
        ax.set_title(title)
        ax.legend(fontsize=7)
        return fig_to_img(fig, title)

    figures = [bars("sharpe", "Sharpe ratio by configuration (ranked)", 0.0),
               bars("fused_mse_rel_zero", "Fused MSE relative to the zero forecast", 1.0)]
    if len(best_returns):
        fig = Figure(figsize=(8, 3))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        ax.plot((1 + best_returns).cumprod())
        ax.set_title("Best configuration: growth of 1 (equal-weight over symbols)")
        figures.append(fig_to_img(fig, "best configuration equity"))
    best = summary.get("best") or {}
    head = (f"<p>{summary['n_configurations']} configurations x {len(summary.get('data', []))} "
            f"symbols, ranked by {html.escape(summary['rank_metric'])}. Best: "
            f"#{best.get('config')} ({html.escape(_label(best.get('overrides') or {}))}), "
            f"deflated Sharpe {best.get('deflated_sharpe')} (n_trials {best.get('n_trials')}).</p>"
            if best else "<p>No configuration completed.</p>")
    failed = results[results["status"] != "ok"][["symbol", "config", "error"]]
    fail_html = failed.to_html(index=False) if len(failed) else "<p>None.</p>"
    table = ranked.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="")
    style = ("body{font-family:sans-serif;margin:1.5em;max-width:1200px}"
             "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
             "padding:2px 6px}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>lstmknn sweep</title>"
            f"<style>{style}</style></head><body><h1>lstmknn sweep</h1>{head}"
            f"{''.join(figures)}<h2>Configurations</h2>{table}<h2>Failed tasks</h2>{fail_html}"
            f"</body></html>")


def _label(overrides: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_text(v)}" for k, v in overrides.items()) or "base"


# ----------------------------------------------------------------------------- CLI

def cmd_sweep(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    overrides = {k: v for k, v in (("seed", args.seed), ("lstm.device", args.device)) if v}
    if overrides:
        cfg = with_overrides(cfg, overrides)
    res = run_sweep(args.data or ["sp500"], cfg, args.grid, args.out, jobs=args.jobs,
                    scheduler=args.scheduler, rank_by=args.rank, cache_dir=args.cache,
                    progress=not args.quiet)
    s, best = res.summary, res.summary["best"]
    t = s["tasks"]
    line = (f"wrote {res.out_dir}/ (results.csv summary.csv summary.json by_symbol.csv sweep.html): "
            f"{t['total']} tasks ({t['run']} run, {t['resumed']} resumed, {t['failed']} failed) "
            f"in {s['elapsed_seconds']:.1f}s on {s['execution']}")
    if best:
        dsr = best["deflated_sharpe"]
        line += (f"; best #{best['config']} ({_label(best['overrides'])}) sharpe "
                 f"{best['sharpe']:.2f}, deflated sharpe "
                 f"{'n/a' if dsr is None else format(dsr, '.2f')} over {best['n_trials']} trials")
    print(line)
    return 1 if t["failed"] else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lstmknn sweep`` to the CLI."""
    sp = subparsers.add_parser(
        "sweep", help="run a grid of configurations x symbols in parallel (resumable)",
        description="Walk-forward + vectorized backtest of every symbol x grid configuration. "
                    "Exit status 1 when some tasks failed (they are listed in results.csv).")
    sp.add_argument("--data", action="extend", nargs="+",
                    help="bundled names, CSV paths or folders of CSVs (default sp500)")
    sp.add_argument("--config", help="base TOML config file")
    sp.add_argument("--grid", required=True,
                    help='grid TOML: values per dotted key, e.g. "lstm.lookback" = [10, 20, 60]')
    sp.add_argument("--out", default="runs/sweep", help="output folder (default runs/sweep)")
    sp.add_argument("--jobs", type=int, default=1,
                    help="local worker processes (default 1); with --scheduler local, its workers")
    sp.add_argument("--scheduler",
                    help="Dask scheduler address (tcp://host:8786), or 'local' for a LocalCluster "
                         "on 127.0.0.1 (default $DASK_SCHEDULER_ADDRESS when set)")
    sp.add_argument("--rank", choices=sorted(RANKINGS), default="sharpe",
                    help="rank configurations by mean Sharpe or fused MSE (default sharpe)")
    sp.add_argument("--seed", type=int, help="root random seed (overrides the config)")
    sp.add_argument("--device", choices=["cpu", "cuda", "auto"], help="overrides lstm.device")
    sp.add_argument("--cache", help="fold model cache folder (default: none)")
    sp.add_argument("--quiet", action="store_true", help="no progress line")
    sp.set_defaults(func=cmd_sweep)
