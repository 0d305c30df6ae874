"""Configuration sweeps over symbols, run through the execution layer (:mod:`engine.parallel`).

A sweep task is one symbol x one configuration, or the whole universe x one
configuration when that configuration decides across symbols (pooled models, rank
sizing), as the backtest would (:mod:`engine.sweep.task`). Each
finished task is written at once to ``OUT/tasks/<key>.json``
(:mod:`engine.sweep.store`), so a re-run skips it; a task that failed is
recorded with its error and tried again on the next run. Ranking and the
deflated Sharpe ratio: :mod:`engine.sweep.ranking`; the page:
:mod:`reports.sweep_page`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lstmknn.engine.backtest import load_data
from lstmknn.engine.config import Config, ConfigError, validate_universe
from lstmknn.engine.parallel import Outcome, Task, plan, run_tasks
from lstmknn.engine.runio import check_out_dir, dumps, mark, write_atomic
from lstmknn.engine.sweep.grid import expand_grid, load_grid
from lstmknn.engine.sweep.ranking import (
    RANKINGS,
    portfolio_returns,
    rank_configurations,
    results_table,
    summarize,
    symbol_table,
)
from lstmknn.engine.sweep.store import TaskStore, task_key
from lstmknn.engine.sweep.task import UNIVERSE, evaluate_task, universe_level
from lstmknn.reports.sweep_page import sweep_page

RUN_KIND = "sweep"


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
              progress: bool = False, data_options: Any = None) -> SweepResult:
    """Run (or resume) a sweep of ``grid`` over ``sources`` and write its outputs to ``out_dir``.

    ``out_dir`` must be new, empty, or an earlier sweep's folder (resumed).
    """
    t0 = time.perf_counter()
    check_out_dir(out_dir, RUN_KIND)
    if rank_by not in RANKINGS:
        raise ConfigError(f"rank_by must be one of {', '.join(RANKINGS)} (got {rank_by!r})")
    where = str(grid) if isinstance(grid, (str, Path)) else "grid"
    values = load_grid(grid) if isinstance(grid, (str, Path)) else dict(grid)
    variants = expand_grid(base, values, where)
    datas = load_data(sources, data_options)
    execution = plan(jobs, scheduler)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mark(out, RUN_KIND)  # before the first task lands, so a resumed sweep is recognised
    store = TaskStore(out / "tasks")
    cache_root = str(Path(cache_dir).resolve()) if cache_dir else None
    meta: dict[str, dict[str, Any]] = {}
    tasks = []
    for v in variants:
        validate_universe(v.cfg, [d.symbol for d in datas])
        units = [(UNIVERSE, datas)] if universe_level(v.cfg) else [(d.symbol, [d]) for d in datas]
        for symbol, members in units:
            key = task_key(symbol, v, members)
            meta[key] = {"key": key, "symbol": symbol, "config": v.number,
                         "config_id": v.config_id, "overrides": v.overrides}
            done = store.load(key)
            if done is None or done.get("status") != "ok":
                tasks.append(Task(key, evaluate_task, (members, v.cfg, cache_root)))

    def persist(o: Outcome) -> None:
        value = o.value or {}
        store.save({**meta[o.key], "status": "ok" if o.ok else "error", "error": o.error,
                    "elapsed": round(o.elapsed, 3), "metrics": value.get("metrics", {}),
                    "returns": value.get("returns"), "fingerprint": value.get("fingerprint")})

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


def write_sweep(out: Path, results: pd.DataFrame, ranked: pd.DataFrame, by_symbol: pd.DataFrame,
                summary: dict[str, Any], records: Sequence[dict[str, Any]]) -> None:
    """results.csv, summary.csv, by_symbol.csv, summary.json and sweep.html (each atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "results.csv", results.to_csv(index=False))
    write_atomic(out / "summary.csv", ranked.to_csv(index=False))
    write_atomic(out / "by_symbol.csv", by_symbol.to_csv(index=False))
    write_atomic(out / "summary.json", dumps(summary))
    best = summary["best"]
    equity = portfolio_returns(records, best["config"]) if best else pd.Series(dtype=float)
    write_atomic(out / "sweep.html", sweep_page(results, ranked, summary, equity))
