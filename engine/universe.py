"""Walk-forward of many symbols: one model per symbol, serially or through :mod:`engine.parallel`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from data.loader import PriceData
from engine.cache import FoldCache
from engine.config import Config
from engine.parallel import Task, plan, run_tasks
from engine.progress import progress_bar
from engine.walk_forward import WalkForwardResult, run_walk_forward

BASELINES = ["train_mean", "persistence"]


def model_columns(wf: WalkForwardResult) -> list[str]:
    """Forecast columns scored in reports: components, fusion and baselines."""
    cols = list(wf.lstm_columns)
    if "lstm" not in cols:
        cols.append("lstm")
    return [*cols, "knn", "fused", *BASELINES]


def walk_forward_task(frame: pd.DataFrame, cfg: Config, cache_root: str | None,
                      available: tuple[str, ...] | None = None) -> WalkForwardResult:
    """One symbol's walk-forward (a pure task: frame and config in, predictions out)."""
    return run_walk_forward(frame, cfg, cache=FoldCache(cache_root) if cache_root else None,
                            available=available)


def walk_forward_symbols(datas: Sequence[PriceData], cfg: Config, *, cache: FoldCache | None = None,
                         jobs: int = 1, scheduler: str | None = None, quiet: bool = True
                         ) -> list[WalkForwardResult]:
    """Walk-forward of every symbol through the execution layer (results in ``datas`` order).

    The first failing symbol's exception is raised after all have run.
    """
    root = str(Path(cache.root).resolve()) if cache is not None else None
    tasks = [Task(d.symbol, walk_forward_task, (d.frame, cfg, root, d.available)) for d in datas]
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


def walk_forward_all(datas: Sequence[PriceData], cfg: Config, *, cache: FoldCache | None,
                     quiet: bool, jobs: int = 1, scheduler: str | None = None
                     ) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Walk-forward per symbol; predictions and fold tables stacked with a ``symbol`` column.

    ``jobs``/``scheduler`` (or an active joblib backend) run the symbols as
    parallel tasks; the result is the same.
    """
    if plan(jobs, scheduler).serial:
        results = []
        for d in datas:
            with progress_bar(not quiet, desc=f"{d.symbol} folds") as progress:
                results.append(run_walk_forward(d.frame, cfg, cache=cache, progress=progress,
                                                available=d.available))
    else:
        results = walk_forward_symbols(datas, cfg, cache=cache, jobs=jobs, scheduler=scheduler,
                                       quiet=quiet)
    preds = [wf.predictions.assign(symbol=d.symbol) for d, wf in zip(datas, results, strict=True)]
    folds = [wf.folds.assign(symbol=d.symbol) for d, wf in zip(datas, results, strict=True)]
    return (pd.concat(preds, ignore_index=True), pd.concat(folds, ignore_index=True),
            model_columns(results[-1]))
