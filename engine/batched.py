"""Per-symbol walk-forwards of many symbols as one batched computation (``lstm.batched_symbols``).

Each symbol keeps its own models, folds and data exactly as :func:`engine.walk_forward.
run_walk_forward` defines them (its own calendar, warm-start chain, seeds, cache entries);
only the arithmetic is shared. Fold ``k`` of every symbol has the same shapes (training rows,
lookbacks, test step) and the same seeds, so the LSTMs of fold ``k`` of a batch of symbols
(:func:`group_size`) train as one :class:`engine.models.grouped_lstm.GroupedLSTM` and their
KNNs search as one :class:`engine.models.grouped_knn.GroupedKNN`.

A symbol's forecasts never depend on which symbols share its batch (see the grouped
models), so a universe run serially, split into parallel tasks, cut at a date for
``signal``, or one symbol alone gives every symbol the same numbers. They are not the numbers
of the unbatched models (other kernels round differently), so this is a switch and its
fold cache entries are its own.

Memory: symbols are processed one batch at a time (prepared features, windows and fitted
states of one batch of symbols at once, never all folds' states); a training step keeps about
``symbols x batch_size x lookback x 13 hidden`` floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lstmknn.data.errors import TooLittleDataError
from lstmknn.engine.cache import FoldCache
from lstmknn.engine.config import Config
from lstmknn.engine.folds import Fold
from lstmknn.engine.models.grouped_knn import GroupedKNN
from lstmknn.engine.models.grouped_lstm import GroupedLSTM, one_thread, workspace
from lstmknn.engine.models.lstm import LSTMRegressor
from lstmknn.engine.progress import Progress
from lstmknn.engine.seeding import derive_seed
from lstmknn.engine.walk_forward import (
    Prepared,
    WalkForwardResult,
    _entry_check,
    _fold_cache_key,
    _window,
    assemble,
    fold_output,
    folds_for,
    knn_estimator,
    lstm_estimator,
    padded_test,
    prepare,
    warm_params,
)

MAX_GROUP = 32  # most symbols trained as one batch
# Bytes of training trace (activations kept for backpropagation) a batch of symbols should
# fit in: larger batches leave the CPU caches and are no faster per sample.
TRACE_BUDGET = 64 << 20


@dataclass
class SymbolInput:
    """One symbol's data for a batched run (``available``: the price columns from the file)."""

    frame: pd.DataFrame
    available: tuple[str, ...] | None = None


@dataclass
class _Run:
    """A symbol's state during the batched walk-forward."""

    prep: Prepared
    folds: list[Fold]
    first: int  # first fold whose predictions are returned (``since``)
    start: int  # first fold to fit (the warm-start chain after the latest cached link)
    states: dict[int, dict] | None = None  # the last fitted fold's states (warm start)
    outputs: list[dict] = field(default_factory=list)


def run_batched(inputs: Sequence[SymbolInput], cfg: Config, *, cache: FoldCache | None = None,
                since: pd.Timestamp | str | None = None, progress: Progress | None = None
                ) -> list[WalkForwardResult | TooLittleDataError]:
    """Per-symbol walk-forwards of ``inputs``; per symbol its result or why it has none.

    Same contract as :func:`engine.walk_forward.run_walk_forward` for each symbol
    (``since``, the fold cache, the warm-start chain), one batch of symbols at a time.
    """
    out: list[WalkForwardResult | TooLittleDataError] = []
    size = group_size(cfg)
    chunks = [inputs[i:i + size] for i in range(0, len(inputs), size)]
    for n, chunk in enumerate(chunks):
        sub = None
        if progress is not None:
            def sub(done: int, total: int, n: int = n) -> None:
                progress(n * 1000 + int(1000 * done / max(total, 1)), 1000 * len(chunks))
        out.extend(_run_group(chunk, cfg, cache, since, sub))
    return out


def group_size(cfg: Config) -> int:
    """Symbols per batch: as many as keep a training step's trace within ``TRACE_BUDGET``
    (about ``lookback x batch x 13 hidden`` floats per symbol and layer), 2 to ``MAX_GROUP``.
    Only speed and memory depend on it, never a forecast."""
    c = cfg.lstm
    per_symbol = 4 * cfg.max_lookback * c.batch_size * 13 * c.hidden_size * c.num_layers
    return int(min(MAX_GROUP, max(2, TRACE_BUDGET // per_symbol)))


def _run_group(inputs: Sequence[SymbolInput], cfg: Config, cache: FoldCache | None,
               since: pd.Timestamp | str | None, progress: Progress | None
               ) -> list[WalkForwardResult | TooLittleDataError]:
    runs: list[_Run | TooLittleDataError] = []
    for s in inputs:
        try:
            runs.append(_start(s.frame, cfg, cache, since, s.available))
        except TooLittleDataError as exc:
            runs.append(exc)
    live = [r for r in runs if isinstance(r, _Run)]
    n_folds = max((len(r.folds) for r in live), default=0)
    with one_thread(), workspace():
        for k in range(n_folds):
            members = [r for r in live if r.start <= k < len(r.folds)]
            if members:
                _fold_step(members, k, cfg, cache)
            if progress is not None:
                progress(k + 1, n_folds)
    results: list[WalkForwardResult | TooLittleDataError] = []
    for r in runs:
        if isinstance(r, TooLittleDataError):
            results.append(r)
        else:
            results.append(assemble(r.prep, r.folds[r.first:], r.outputs, cfg, cache))
    return results


def _start(frame: pd.DataFrame, cfg: Config, cache: FoldCache | None,
           since: pd.Timestamp | str | None, available: Iterable[str] | None) -> _Run:
    """Prepare a symbol; its first returned fold and where its fitting starts (as
    ``run_walk_forward`` and ``_fit_folds``: after the latest cached link before ``first``)."""
    prep = prepare(frame, cfg, available)
    folds = folds_for(prep, cfg)
    first = 0
    if since is not None and cfg.fusion.method in ("fixed", "regime"):
        pos = int(prep.index.searchsorted(pd.Timestamp(since)))
        first = next((f.index for f in folds if f.test_end > pos), len(folds) - 1)
    run = _Run(prep, folds, first, first)
    if cfg.lstm.warm_start and first > 0:  # the warm-start chain: from the latest cached link
        j = first - 1
        if cache is not None:
            check = _entry_check(cfg, prep.features.shape[1])
            while j >= 0 and (entry := cache.get(_fold_cache_key(prep, folds[j], cfg),
                                                 check=check)) is None:
                j -= 1
            if j >= 0:
                run.states = entry["states"]
        else:
            j = -1
        run.start = j + 1
    return run


def _fold_step(members: list[_Run], k: int, cfg: Config, cache: FoldCache | None) -> None:
    """Fit (or load) fold ``k`` of every member, then predict it where it is returned."""
    warm = cfg.lstm.warm_start and k > 0
    fit: list[_Run] = []
    for r in members:
        entry = None
        if cache is not None and k >= r.first:
            check = _entry_check(cfg, r.prep.features.shape[1])
            entry = cache.get(_fold_cache_key(r.prep, r.folds[k], cfg), check=check)
        if entry is not None:
            r.states = entry["states"]
        else:
            fit.append(r)
    sizes = sorted({r.folds[k].train_size for r in fit})  # one size (k and the config fix it)
    for size in sizes:
        same = [r for r in fit if r.folds[k].train_size == size]
        for r, st in zip(same, _fit(same, k, cfg, warm), strict=True):
            r.states = st
            if cache is not None:
                cache.put(_fold_cache_key(r.prep, r.folds[k], cfg), {"states": st})
    shown = [r for r in members if k >= r.first]
    if shown:
        for r, out in zip(shown, _predict(shown, k, cfg), strict=True):
            r.outputs.append({"preds": out})


def _estimator(cfg: Config, lb: int, k: int) -> LSTMRegressor:
    """Fold ``k``'s LSTM for lookback ``lb`` (the unbatched seed; the CPU, whatever ``auto`` finds)."""
    return lstm_estimator(cfg, derive_seed(cfg.seed, "lstm", lb, k)).set_params(device="cpu")


def _fit(runs: list[_Run], k: int, cfg: Config, warm: bool) -> list[dict[int, dict]]:
    """Fold ``k``'s LSTM states (by lookback) of every run, fitted as one batch per lookback."""
    trains = [np.arange(r.folds[k].train_start, r.folds[k].train_end) for r in runs]
    y = np.stack([r.prep.labels[t] for r, t in zip(runs, trains, strict=True)])
    states: list[dict[int, dict]] = [{} for _ in runs]
    for lb in cfg.lookbacks:
        model = GroupedLSTM(_estimator(cfg, lb, k))
        X = np.stack([_window(r.prep, lb, t) for r, t in zip(runs, trains, strict=True)])
        init = [warm_params(r.states, lb) for r in runs] if warm else None
        for st, s in zip(states, model.fit(X, y, init_params=init), strict=True):
            st[lb] = s
    return states


def _predict(runs: list[_Run], k: int, cfg: Config) -> list[dict]:
    """Fold ``k``'s outputs of every run (as :func:`engine.walk_forward.predict_fold`)."""
    folds = [r.folds[k] for r in runs]
    lstm_preds: list[list[np.ndarray]] = [[] for _ in runs]
    lstm_confs: list[list[np.ndarray]] = [[] for _ in runs]
    for lb in cfg.lookbacks:
        model = GroupedLSTM(_estimator(cfg, lb, k))
        X = np.stack([_window(r.prep, lb, padded_test(f, cfg))
                      for r, f in zip(runs, folds, strict=True)])
        pred, conf = model.predict_with_confidence([r.states[lb] for r in runs], X)  # type: ignore[index]
        for j, f in enumerate(folds):
            n = f.test_end - f.test_start
            lstm_preds[j].append(pred[j, :n])
            lstm_confs[j].append(conf[j, :n])
    knn = GroupedKNN(knn_estimator(cfg))
    trains = [np.arange(f.train_start, f.train_end) for f in folds]
    tests = [np.arange(f.test_start, f.test_end) for f in folds]
    knn_out = knn.fit_predict([r.prep.features[t] for r, t in zip(runs, trains, strict=True)],
                              [r.prep.labels[t] for r, t in zip(runs, trains, strict=True)],
                              [r.prep.features[t] for r, t in zip(runs, tests, strict=True)])
    return [fold_output(r.prep, f, cfg, lstm_preds[j], lstm_confs[j], *knn_out[j])
            for j, (r, f) in enumerate(zip(runs, folds, strict=True))]
