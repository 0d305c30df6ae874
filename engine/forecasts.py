"""The one walk-forward entry: price data of one symbol or a universe -> out-of-sample forecasts.

Every command (backtest, signal, paper accounts, sweeps, the audit) gets its forecasts
from :func:`forecast`, in either scope:

* ``per_symbol``: each symbol its own model (a one-symbol universe), serially or as
  parallel tasks through :mod:`engine.parallel`; with ``lstm.batched_symbols`` the models of
  many symbols train as one batched computation (:mod:`engine.batched`), in this process or
  as parallel tasks of blocks of symbols, and a symbol's numbers never depend on the others;
* ``pooled``: one model for the universe (:mod:`engine.pooled`).

Both give one :class:`Forecasts`: predictions with a ``symbol`` column, fold table,
scored model columns, and the symbols left out for too little data with the reason.
``asof`` cuts every symbol's data at a bar first, exactly as a run on that data would
see it (for ``signal`` and paper accounts); nothing after the cut is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from lstmknn.data.errors import DataError, TooLittleDataError
from lstmknn.data.loader import PriceData
from lstmknn.engine.batched import SymbolInput, run_batched
from lstmknn.engine.cache import FoldCache
from lstmknn.engine.config import Config
from lstmknn.engine.folds import bars_needed
from lstmknn.engine.parallel import Task, plan, run_tasks
from lstmknn.engine.pooled import run_pooled_walk_forward
from lstmknn.engine.progress import Progress, progress_bar
from lstmknn.engine.runio import format_timestamp
from lstmknn.engine.walk_forward import WalkForwardResult, folds_for, prepare, run_walk_forward

BASELINES = ["train_mean", "persistence"]


@dataclass
class Forecasts:
    """Out-of-sample forecasts of a universe (one symbol or many), in either model scope.

    ``predictions``: one row per symbol and decision bar (``date, symbol, fold, y_true``,
    every model's forecast, ``regime, alpha, fused``, confidences, baselines). ``folds``:
    fold boundaries (with ``symbol`` in per-symbol scope). ``excluded``: symbol -> why it
    has no forecasts.
    """

    predictions: pd.DataFrame
    folds: pd.DataFrame
    models: list[str]
    scope: str
    excluded: dict[str, str] = field(default_factory=dict)
    cache_hits: int = 0
    cache_misses: int = 0
    alternatives: dict[str, pd.DataFrame] = field(default_factory=dict)


def model_columns(wf: WalkForwardResult) -> list[str]:
    """Forecast columns scored in reports: components, fusion and baselines."""
    cols = list(wf.lstm_columns)
    if "lstm" not in cols:
        cols.append("lstm")
    return [*cols, "knn", "fused", *BASELINES]


def too_little(symbol: str, cut: pd.Timestamp | None, exc: DataError) -> str:
    """The one "too little data" line: the symbol, the cut (when the data was cut) and why."""
    where = f"{symbol} as of {format_timestamp(cut)}" if cut is not None else symbol
    return f"{where}: {exc}"


def cut_at(datas: Sequence[PriceData], asof: pd.Timestamp) -> list[PriceData]:
    """Every symbol's data up to and including ``asof`` (symbols starting later left out)."""
    out = []
    for d in datas:
        frame = d.frame.loc[:asof]
        if len(frame):
            out.append(replace(d, frame=frame))
    return out


def _padded(prices: pd.DataFrame, n: int) -> pd.DataFrame:
    """``prices`` followed by ``n`` copies of its last bar, 1 ns apart."""
    if n <= 0:
        return prices
    pad = pd.DataFrame(np.repeat(prices.iloc[-1:].to_numpy(), n, axis=0), columns=prices.columns,
                       index=prices.index[-1] + pd.to_timedelta(np.arange(1, n + 1), unit="ns"))
    return pd.concat([prices, pad.rename_axis(prices.index.name)])


def padding(prices: pd.DataFrame, cfg: Config, available: tuple[str, ...] | None = None) -> int:
    """Dummy bars to append to data cut at its last bar so that bar's fold is predicted whole.

    Rows after a bar never change its forecast, but the LSTM's float32 kernels depend
    on the batch shape (~1e-7 relative) and fold cache entries on the fold's bounds:
    predicting the fold's full ``step`` rows reproduces the full run bit for bit. The
    walk-forward also wants ``horizon`` bars after the first decision bar (to score it);
    padding gives the first decision bars their forecast at their own close.
    :class:`TooLittleDataError` when the data is too short for a forecast of the last bar.
    """
    wf = cfg.walk_forward
    n = len(prices)
    try:
        prep = prepare(_padded(prices, wf.horizon), cfg, available)
    except DataError:
        prepare(prices, cfg, available)  # raises with the unpadded numbers
        raise  # pragma: no cover
    fold = next(f for f in folds_for(prep, cfg) if f.test_start <= n - 1 < f.test_end)
    needed = bars_needed(prep.first_sample, wf.train_window, wf.gap, wf.horizon)
    return max(fold.test_start + wf.step - n, needed - n, 0)


def symbol_task(frame: pd.DataFrame, cfg: Config, cache_root: str | None,
                available: tuple[str, ...] | None = None, since: pd.Timestamp | None = None,
                pad: bool = False) -> WalkForwardResult:
    """One symbol's walk-forward (a pure task: frame and config in, predictions out).

    ``pad``: the frame is data cut at its last bar; pad it (see :func:`padding`) and
    return only the rows of real bars.
    """
    cache = FoldCache(cache_root) if cache_root else None
    return symbol_forecasts(frame, cfg, cache, available, since, pad, None)


def symbol_forecasts(frame: pd.DataFrame, cfg: Config, cache: FoldCache | None,
                     available: tuple[str, ...] | None, since: pd.Timestamp | None, pad: bool,
                     progress: Progress | None = None) -> WalkForwardResult:
    """One symbol's walk-forward (``pad``: data cut at its last bar, see :func:`symbol_task`)."""
    run = _padded(frame, padding(frame, cfg, available)) if pad else frame
    if cfg.lstm.batched_symbols:  # the batched path of a universe, with one symbol
        (res,) = run_batched([SymbolInput(run, available)], cfg, cache=cache, since=since,
                             progress=progress)
        if isinstance(res, Exception):
            raise res
        wf = res
    else:
        wf = run_walk_forward(run, cfg, cache=cache, since=since, progress=progress,
                              available=available)
    if pad:
        wf.predictions = wf.predictions[wf.predictions["date"] <= frame.index[-1]]
    return wf


# Backwards-compatible name of the task (tests and benchmarks build tasks with it).
walk_forward_task = symbol_task


def symbols_forecasts(datas: Sequence[PriceData], cfg: Config, cache: FoldCache | None,
                      since: pd.Timestamp | None, pad: bool, progress: Progress | None = None
                      ) -> list[WalkForwardResult | TooLittleDataError]:
    """Per-symbol walk-forwards of ``datas`` batched (``lstm.batched_symbols``); per symbol its
    result or its too-little-data error (``pad``: data cut at its last bar, see
    :func:`symbol_task`). A symbol's numbers do not depend on the other symbols."""
    inputs: list[SymbolInput | None] = []
    errors: dict[int, TooLittleDataError] = {}
    for i, d in enumerate(datas):
        try:
            frame = _padded(d.frame, padding(d.frame, cfg, d.available)) if pad else d.frame
            inputs.append(SymbolInput(frame, d.available))
        except TooLittleDataError as exc:
            inputs.append(None)
            errors[i] = exc
    ran = iter(run_batched([s for s in inputs if s is not None], cfg, cache=cache, since=since,
                           progress=progress))
    out: list[WalkForwardResult | TooLittleDataError] = []
    for i, d in enumerate(datas):
        res = errors[i] if i in errors else next(ran)
        if pad and isinstance(res, WalkForwardResult):
            res.predictions = res.predictions[res.predictions["date"] <= d.frame.index[-1]]
        out.append(res)
    return out


def symbols_task(datas: Sequence[PriceData], cfg: Config, cache_root: str | None,
                 since: pd.Timestamp | None = None, pad: bool = False
                 ) -> tuple[list[WalkForwardResult | TooLittleDataError], int, int]:
    """A block of symbols' batched walk-forwards as one task: results, cache hits and misses."""
    cache = FoldCache(cache_root) if cache_root else None
    res = symbols_forecasts(datas, cfg, cache, since, pad)
    return res, (cache.hits if cache else 0), (cache.misses if cache else 0)


def forecast(datas: Sequence[PriceData], cfg: Config, *, cache: FoldCache | None = None,
             asof: pd.Timestamp | None = None, since: pd.Timestamp | None = None,
             jobs: int = 1, scheduler: str | None = None, quiet: bool = True,
             fusions: Sequence[str] = ()) -> Forecasts:
    """Walk-forward forecasts of ``datas`` under ``cfg`` (scope ``cfg.model.scope``).

    ``asof``: cut every symbol's data at this bar first (symbols that start later are
    left out). ``since``: rows from this date on are enough (earlier folds still come
    from the cache where the warm-start chain needs them). ``jobs``/``scheduler``: run
    per-symbol walk-forwards as parallel tasks (the result is the same). ``fusions``:
    other fusion methods of the same pooled forecasts (``Forecasts.alternatives``).

    In a universe, a symbol with too little data is left out and named in
    ``Forecasts.excluded``; with one symbol (or none left) it is a
    :class:`TooLittleDataError` naming the symbol (and the cut).
    """
    if asof is not None:
        datas = cut_at(datas, pd.Timestamp(asof))
        if not datas:
            raise DataError(f"no symbol has data on or before {format_timestamp(asof)}")
    if cfg.model.scope == "pooled":
        return _pooled(datas, cfg, cache, asof, quiet, fusions)
    return _per_symbol(datas, cfg, cache, asof, since, jobs, scheduler, quiet)


def _pooled(datas: Sequence[PriceData], cfg: Config, cache: FoldCache | None,
            asof: pd.Timestamp | None, quiet: bool, fusions: Sequence[str]) -> Forecasts:
    with progress_bar(not quiet, desc=f"pooled {len(datas)} symbols") as progress:
        try:
            wf = run_pooled_walk_forward(datas, cfg, cache=cache, progress=progress,
                                         fusions=fusions)
        except TooLittleDataError as exc:
            names = ", ".join(d.symbol for d in datas[:5]) + (", ..." if len(datas) > 5 else "")
            raise TooLittleDataError(too_little(f"pooled universe ({names})", asof, exc)) from None
    excluded = {s: "too little data: no bar with a full feature window (feature warm-up + "
                   f"lookback {cfg.max_lookback})" for s in wf.excluded}
    return Forecasts(wf.predictions, wf.folds, model_columns(wf), "pooled", excluded,
                     wf.cache_hits, wf.cache_misses,
                     {m: r.predictions for m, r in wf.alternatives.items()})


def _per_symbol(datas: Sequence[PriceData], cfg: Config, cache: FoldCache | None,
                asof: pd.Timestamp | None, since: pd.Timestamp | None, jobs: int,
                scheduler: str | None, quiet: bool) -> Forecasts:
    pad = asof is not None
    results: list[WalkForwardResult | None] = []
    errors: list[BaseException | None] = []
    if cfg.lstm.batched_symbols:
        for r in _batched(datas, cfg, cache, since, pad, jobs, scheduler, quiet):
            ok = isinstance(r, WalkForwardResult)
            results.append(r if ok else None)
            errors.append(None if ok else r)
    elif plan(jobs, scheduler).serial:
        for d in datas:
            try:
                with progress_bar(not quiet, desc=f"{d.symbol} folds") as progress:
                    results.append(symbol_forecasts(d.frame, cfg, cache, d.available, since, pad,
                                               progress))
                errors.append(None)
            except TooLittleDataError as exc:
                results.append(None)
                errors.append(exc)
    else:
        root = str(Path(cache.root).resolve()) if cache is not None else None
        tasks = [Task(d.symbol, symbol_task, (d.frame, cfg, root, d.available, since, pad))
                 for d in datas]
        for o in run_tasks(tasks, jobs=jobs, scheduler=scheduler, progress=not quiet,
                           label="symbols"):
            if o.ok:
                results.append(o.value)
                errors.append(None)
            elif isinstance(o.exception, TooLittleDataError):
                results.append(None)
                errors.append(o.exception)
            else:
                raise o.exception or RuntimeError(o.error)
        if cache is not None:
            cache.hits += sum(r.cache_hits for r in results if r is not None)
            cache.misses += sum(r.cache_misses for r in results if r is not None)
    return _gathered(datas, results, errors, cfg, cache, asof)


def _batched(datas: Sequence[PriceData], cfg: Config, cache: FoldCache | None,
             since: pd.Timestamp | None, pad: bool, jobs: int, scheduler: str | None,
             quiet: bool) -> list[WalkForwardResult | TooLittleDataError]:
    """Batched per-symbol walk-forwards, in this process or as ``jobs`` blocks of symbols."""
    p = plan(jobs, scheduler)
    if p.serial:
        with progress_bar(not quiet, desc=f"{len(datas)} symbols batched") as progress:
            return symbols_forecasts(datas, cfg, cache, since, pad, progress)
    n = max(1, min(p.workers, len(datas)))
    bounds = np.linspace(0, len(datas), n + 1).round().astype(int)
    root = str(Path(cache.root).resolve()) if cache is not None else None
    tasks = [Task(f"{datas[a].symbol}..{datas[b - 1].symbol}", symbols_task,
                  (list(datas[a:b]), cfg, root, since, pad))
             for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    out: list[WalkForwardResult | TooLittleDataError] = []
    for o in run_tasks(tasks, jobs=jobs, scheduler=scheduler, progress=not quiet,
                       label="symbol blocks"):
        if not o.ok:
            raise o.exception or RuntimeError(o.error)
        res, hits, misses = o.value
        out.extend(res)
        if cache is not None:
            cache.hits += hits
            cache.misses += misses
    return out


def _gathered(datas: Sequence[PriceData], results: list[WalkForwardResult | None],
              errors: list[BaseException | None], cfg: Config, cache: FoldCache | None,
              asof: pd.Timestamp | None) -> Forecasts:
    excluded = {d.symbol: str(e) for d, e in zip(datas, errors, strict=True) if e is not None}
    kept = [(d, r) for d, r in zip(datas, results, strict=True) if r is not None]
    if len(datas) == 1 and excluded or not kept:
        d, exc = next((d, e) for d, e in zip(datas, errors, strict=True) if e is not None)
        raise TooLittleDataError(too_little(d.symbol, asof, exc)) from None  # type: ignore[arg-type]
    for d, r in kept:  # in place: the results are ours, one copy less of every row
        r.predictions["symbol"] = d.symbol
    preds = [r.predictions for _, r in kept]
    folds = [r.folds.assign(symbol=d.symbol) for d, r in kept]
    hits = cache.hits if cache is not None else 0
    misses = cache.misses if cache is not None else 0
    return Forecasts(pd.concat(preds, ignore_index=True), pd.concat(folds, ignore_index=True),
                     model_columns(kept[-1][1]), "per_symbol", excluded, hits, misses)
