"""Pooled walk-forward: one LSTM and one KNN per fold, fitted on every symbol of a universe.

Folds are positional on the union calendar of the symbols, anchored at its
start, so a fold's boundaries never depend on data after them. At each fold
the models are fitted on the training samples of every symbol that has
enough history (features per symbol and scale-free; the estimators' scalers
see the pooled training rows only), and predict every symbol trading in the
fold's test span. A training sample is used only if its label is known at
the close of the fold's first decision bar on the union calendar (a symbol
with missing bars learns its label later).

Labels may be normalised per date across the universe (``model.label``:
``cs_rank``/``cs_zscore``, computed per fold from the training rows only);
forecasts are then mapped back to return units with the training span's
mean cross-sectional std of raw labels (a forecast of the return relative to
the day's cross-section). ``y_true`` and every metric stay raw.

Predictions are computed one decision date at a time, so a row's forecast
never depends on which rows (symbols, later dates) are predicted with it.

Pooled defaults (a pooled fold has ``symbols x train_window`` rows, hundreds of
times a per-symbol fold, so fits are budgeted in samples, not epochs):

- the LSTM batch is ``lstm.batch_size x symbols``, capped at ``MAX_POOLED_BATCH``;
- a cold fit (the first fold, or ``warm_start = false``) makes about
  ``COLD_FIT_SAMPLES`` sample passes: ``min(lstm.epochs, COLD_FIT_SAMPLES // rows)``
  epochs (at least one) over at most ``COLD_FIT_SAMPLES`` rows;
- a warm-started fit fine-tunes for ``lstm.warm_epochs`` over at most
  ``WARM_FIT_ROWS`` rows of its window;
- the KNN remembers at most ``MAX_KNN_ROWS`` rows and searches them exhaustively.

Rows are a seeded uniform draw from the fold's training rows, kept in time
order (the LSTM's validation tail stays the latest rows); labels are normalised
on the full training rows first. ``folds.csv`` records the rows and epochs used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from sklearn.neighbors import KNeighborsRegressor
from sklearn.preprocessing import StandardScaler

from lstmknn.data.cross_section import normalise
from lstmknn.data.errors import DataError, TooLittleDataError
from lstmknn.data.features import first_valid_row, next_return, realized_volatility
from lstmknn.data.loader import PriceData
from lstmknn.engine.cache import FoldCache, fold_key
from lstmknn.engine.config import Config
from lstmknn.engine.feature_set import feature_frame, feature_set_id, frozen_panel
from lstmknn.engine.folds import Fold, bars_needed, make_folds
from lstmknn.engine.models.knn import KNNRegressor
from lstmknn.engine.models.lstm import MODEL_VERSION
from lstmknn.engine.regime import classify, fit_threshold
from lstmknn.engine.runio import format_timestamp
from lstmknn.engine.seeding import derive_seed
from lstmknn.engine.walk_forward import (
    NonFiniteForecastError,
    Progress,
    WalkForwardResult,
    _entry_check,
    fold_row,
    fuse_parts,
    lstm_columns,
    lstm_estimator,
    warm_params,
)

# Pooled LSTM batch: ``lstm.batch_size`` x symbols in the fold's training set, capped here
# (larger batches cost about the same per sample on a CPU but give fewer optimiser steps).
MAX_POOLED_BATCH = 1024
COLD_FIT_SAMPLES = 1 << 17  # sample passes of a cold LSTM fit (~2 epochs of sp500_members)
WARM_FIT_ROWS = 1 << 12  # rows a warm-started fit fine-tunes on
MAX_KNN_ROWS = 1 << 15  # rows the KNN remembers (exhaustive search costs rows x queries)
POOLED_VERSION = "pooled-2"


class _ExhaustiveKNN(KNNRegressor):
    """:class:`KNNRegressor` with brute-force neighbour search (same neighbours as a tree, ties
    aside, and several times faster on tens of thousands of 10-20 dimensional rows)."""

    # TODO: an ``algorithm`` parameter on KNNRegressor (engine/models/knn.py) would replace this.
    def _fit_k(self, X: np.ndarray, y: np.ndarray, k: int) -> tuple[StandardScaler, KNeighborsRegressor]:
        scaler = StandardScaler().fit(X)
        knn = KNeighborsRegressor(n_neighbors=min(k, len(X)), weights=self.weights, algorithm="brute")
        return scaler, knn.fit(scaler.transform(X), y)


@dataclass
class PooledResult(WalkForwardResult):
    """:class:`WalkForwardResult` of a pooled run; ``excluded`` lists symbols too short to enter."""

    excluded: list[str] = field(default_factory=list)
    alternatives: dict[str, PooledResult] = field(default_factory=dict)  # other fusion methods


@dataclass
class Universe:
    """Features, labels and sample table of every symbol, on the union calendar."""

    dates: pd.DatetimeIndex
    symbols: list[str]
    X: np.ndarray  # [all bars of all symbols, features] float32, symbols concatenated
    first_sample: int  # union position of the earliest sample
    # sample table: one entry per (symbol, bar) with a full feature window, sorted by (pos, symbol)
    sym: np.ndarray
    row: np.ndarray  # row in X
    pos: np.ndarray  # union calendar position
    label: np.ndarray  # raw next-horizon return (NaN if unknown)
    known: np.ndarray  # union position at whose close the label is known (+gap); huge if never
    vol: np.ndarray
    persistence: np.ndarray
    market_vol: np.ndarray  # [union bars] cross-sectional median of realised vol
    date_starts: np.ndarray  # [union bars + 1] sample-table slice of each union position
    # per symbol: union positions of its bars, and its price frame (hashed for cache keys only)
    upos: list[np.ndarray]
    frames: list[pd.DataFrame]
    offsets: np.ndarray  # [symbols + 1] each symbol's first row in X
    excluded: list[str]

    def rows(self, j: int, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Symbol ``j``'s bars ``a:b``: OHLCV rows and feature rows as the models see them."""
        raw = np.ascontiguousarray(self.frames[j][OHLCV].iloc[a:b].to_numpy(float))
        return raw, np.ascontiguousarray(self.X[self.offsets[j] + a:self.offsets[j] + b])


OHLCV = ["open", "high", "low", "close", "volume"]


def _features(data: PriceData, cfg: Config, panel: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The configured feature set of one symbol (custom features see the universe's panel)."""
    # ``available``: the price columns that truly came from the file, when the loader records them
    return feature_frame(data.frame, cfg.features, getattr(data, "available", None), panel=panel)


def _feature_matrix(datas: Sequence[PriceData], cfg: Config, upos: list[np.ndarray]
                    ) -> tuple[np.ndarray, list[np.ndarray], list[int]]:
    """Every symbol's features as one float32 ``X`` (NaN as 0), realised vols and the row of
    each symbol's first valid feature and vol. Without cross-sectional features each symbol is
    converted as it comes (memory: ``X`` and one symbol's frame, not all symbols in float64)."""
    panel = frozen_panel({d.symbol: d.frame for d in datas}) if cfg.features.custom else {}
    vols, valid, feats = [], [], []
    stream = cfg.model.cs_features == "none"
    offsets = np.cumsum([0, *(len(d.frame) for d in datas)])
    X: np.ndarray | None = None
    for j, d in enumerate(datas):
        f = _features(d, cfg, panel)
        v = realized_volatility(d.frame["close"], cfg.regime.vol_window)
        vols.append(v.to_numpy(float))
        valid.append(max(first_valid_row(f), first_valid_row(v.to_frame())))
        values = f.to_numpy(float)
        if X is not None and values.shape[1] != X.shape[1] or feats and values.shape[1] != feats[0].shape[1]:
            raise DataError("symbols of a universe must have the same features (same OHLCV columns)")
        if stream:
            if X is None:
                X = np.empty((offsets[-1], values.shape[1]), dtype=np.float32)
            X[offsets[j]:offsets[j + 1]] = np.nan_to_num(values, nan=0.0).astype(np.float32)
        else:
            feats.append(values)
    if not stream:
        all_feat = np.concatenate(feats)
        del feats
        cs = normalise(all_feat, np.concatenate(upos), cfg.model.cs_features)
        all_feat = np.concatenate([all_feat, cs], axis=1)
        X = np.ascontiguousarray(np.nan_to_num(all_feat, nan=0.0).astype(np.float32))
    return X, vols, valid  # type: ignore[return-value]


def prepare_universe(datas: Sequence[PriceData], cfg: Config) -> Universe:
    """Per-symbol features and labels, mapped onto the union calendar (built once)."""
    if len(datas) < 1:
        raise DataError("a pooled walk-forward needs at least one symbol")
    names = [d.symbol for d in datas]
    if len(set(names)) != len(names):
        raise DataError("symbol names must be unique in a universe")
    dates = pd.DatetimeIndex(sorted(set().union(*(d.frame.index for d in datas))), name="date")
    h, gap = cfg.walk_forward.horizon, cfg.walk_forward.gap
    never = np.iinfo(np.int64).max // 4
    upos = [dates.get_indexer(d.frame.index) for d in datas]
    X, vols, valid = _feature_matrix(datas, cfg, upos)
    all_vol = np.concatenate(vols)
    mv = pd.Series(all_vol).groupby(np.concatenate(upos)).median()
    market_vol = mv.reindex(range(len(dates))).to_numpy(float)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in
                                         ("sym", "row", "pos", "label", "known", "vol", "persistence")}
    excluded = []
    offset = 0
    for j, d in enumerate(datas):
        n = len(d.frame)
        close = d.frame["close"]
        first = valid[j] + cfg.max_lookback - 1
        if first >= n:
            excluded.append(d.symbol)
            offset += n
            continue
        bars = np.arange(first, n)
        known = np.full(n, never, dtype=np.int64)
        known[: n - h] = upos[j][h:] + gap
        cols["sym"].append(np.full(len(bars), j))
        cols["row"].append(offset + bars)
        cols["pos"].append(upos[j][bars])
        cols["label"].append(next_return(close, h).to_numpy(float)[bars])
        cols["known"].append(known[bars])
        cols["vol"].append(vols[j][bars])
        cols["persistence"].append((close / close.shift(h) - 1.0).to_numpy(float)[bars])
        offset += n
    if not cols["sym"]:
        raise TooLittleDataError(f"too little data: no symbol reaches its first sample "
                        f"(feature warm-up + lookback {cfg.max_lookback})")
    order = np.lexsort((np.concatenate(cols["sym"]), np.concatenate(cols["pos"])))
    table = {}
    for k in list(cols):  # one column at a time: the unsorted and sorted copies of one only
        table[k] = np.concatenate(cols.pop(k))[order]
    first_sample = int(table["pos"][0])
    return Universe(dates=dates, symbols=names, X=X, first_sample=first_sample,
                    market_vol=market_vol,
                    date_starts=np.searchsorted(table["pos"], np.arange(len(dates) + 1)),
                    upos=upos, frames=[d.frame for d in datas],
                    offsets=np.cumsum([0, *(len(d.frame) for d in datas)]),
                    excluded=excluded, **table)


def pooled_folds(uni: Universe, cfg: Config) -> list[Fold]:
    """Positional folds on the union calendar, anchored at its first sample."""
    wf = cfg.walk_forward
    needed = bars_needed(uni.first_sample, wf.train_window, wf.gap, wf.horizon)
    if len(uni.dates) < needed:
        raise TooLittleDataError(
            f"too little data: the union calendar has {len(uni.dates)} dates, the configuration "
            f"needs at least {needed} ({uni.first_sample} warm-up + train_window {wf.train_window} "
            f"+ purge and {wf.horizon + 1} bars to decide and score)")
    return make_folds(len(uni.dates), uni.first_sample, wf.train_window, wf.step,
                      mode=wf.mode, gap=wf.gap, horizon=wf.horizon)


def _windows(uni: Universe, lb: int, rows: np.ndarray) -> np.ndarray:
    return uni.X[uni.row[rows][:, None] + np.arange(1 - lb, 1)[None, :]]


def train_rows(uni: Universe, fold: Fold) -> np.ndarray:
    """Sample-table rows a fold may learn from: in its window, label known at its first decision."""
    lo, hi = uni.date_starts[fold.train_start], uni.date_starts[fold.train_end]
    rows = np.arange(lo, hi)
    ok = (uni.known[rows] <= fold.test_start) & np.isfinite(uni.label[rows])
    return rows[ok]


def _targets(uni: Universe, rows: np.ndarray, cfg: Config) -> tuple[np.ndarray, float]:
    """Training targets (raw or normalised per date over the training rows) and their return scale."""
    y = uni.label[rows]
    if cfg.model.label == "raw":
        return y, 1.0
    pos = uni.pos[rows]
    cs_std = pd.Series(y).groupby(pos).std(ddof=0).to_numpy()
    scale = float(np.nanmean(cs_std)) if np.isfinite(cs_std).any() else 1.0
    return normalise(y, pos, cfg.model.label), scale


def _batch_size(cfg: Config, n_symbols: int) -> int:
    return int(min(MAX_POOLED_BATCH, max(cfg.lstm.batch_size, cfg.lstm.batch_size * n_symbols)))


def _draw(rows: np.ndarray, n: int, cfg: Config, what: str, fold: Fold) -> np.ndarray:
    """Positions (into ``rows``) of at most ``n`` rows, a seeded uniform draw kept in order."""
    if len(rows) <= n:
        return np.arange(len(rows))
    rng = np.random.default_rng(derive_seed(cfg.seed, "pooled-rows", what, fold.index))
    return np.sort(rng.choice(len(rows), size=n, replace=False))


def fit_plan(n_rows: int, cfg: Config, warm: bool) -> tuple[int, int]:
    """(rows, epochs) of a pooled LSTM fit on a window of ``n_rows`` training rows."""
    if warm:
        return min(n_rows, WARM_FIT_ROWS), cfg.lstm.warm_epochs
    rows = min(n_rows, COLD_FIT_SAMPLES)
    return rows, max(1, min(cfg.lstm.epochs, COLD_FIT_SAMPLES // max(rows, 1)))


def fit_pooled_fold(uni: Universe, fold: Fold, cfg: Config,
                    init: dict[int, dict] | None = None) -> dict[int, dict]:
    """Fit the fold's pooled LSTM(s); their states by lookback."""
    rows = train_rows(uni, fold)
    y, _ = _targets(uni, rows, cfg)
    batch = _batch_size(cfg, len(np.unique(uni.sym[rows])))
    n, epochs = fit_plan(len(rows), cfg, warm=init is not None)
    pick = _draw(rows, n, cfg, "lstm", fold)
    rows, y = rows[pick], y[pick]
    states = {}
    for lb in cfg.lookbacks:
        seed = derive_seed(cfg.seed, "pooled-lstm", lb, fold.index)
        warm = warm_params(init, lb)
        model = lstm_estimator(cfg, seed).set_params(batch_size=batch)
        model.set_params(**({"warm_epochs": epochs} if warm is not None else {"epochs": epochs}))
        model.fit(_windows(uni, lb, rows), y, init_params=warm)
        states[lb] = model.get_state()
    return states


def predict_pooled_fold(uni: Universe, fold: Fold, cfg: Config, states: dict[int, dict]) -> dict:
    """Forecasts of every (symbol, bar) in the fold's test span, one decision date at a time."""
    rows = train_rows(uni, fold)
    y, scale = _targets(uni, rows, cfg)
    c = cfg.knn
    knn = _ExhaustiveKNN(n_neighbors=c.n_neighbors, validation_fraction=c.validation_fraction)
    pick = _draw(rows, MAX_KNN_ROWS, cfg, "knn", fold)
    knn.fit(uni.X[uni.row[rows[pick]]], y[pick])
    models = []
    for lb in cfg.lookbacks:
        seed = derive_seed(cfg.seed, "pooled-lstm", lb, fold.index)
        models.append((lb, lstm_estimator(cfg, seed).set_state(states[lb])))
    test = np.arange(uni.date_starts[fold.test_start], uni.date_starts[fold.test_end])
    lstm_pred = np.empty((len(models), len(test)))
    lstm_conf = np.empty((len(models), len(test)))
    knn_pred, knn_conf = np.empty(len(test)), np.empty(len(test))
    base = uni.date_starts[fold.test_start]
    for p in range(fold.test_start, fold.test_end):
        lo, hi = uni.date_starts[p], uni.date_starts[p + 1]
        if hi == lo:
            continue
        sl = slice(lo - base, hi - base)
        day = np.arange(lo, hi)
        for i, (lb, m) in enumerate(models):
            lstm_pred[i, sl], lstm_conf[i, sl] = m.predict_with_confidence(_windows(uni, lb, day))
        knn_pred[sl], knn_conf[sl] = knn.predict_with_confidence(uni.X[uni.row[day]])
    _check_finite(uni, fold, cfg, lstm_pred, knn_pred, test)
    conf = np.mean(lstm_conf, axis=0)
    if np.isnan(conf).all() and len(models) > 1:
        conf = -np.log(np.std(lstm_pred, axis=0) + 1e-12)
    # per-symbol training mean of raw labels (pooled mean for a symbol without training rows)
    raw = uni.label[rows]
    n_sym = len(uni.symbols)
    cnt = np.bincount(uni.sym[rows], minlength=n_sym)
    tot = np.bincount(uni.sym[rows], weights=raw, minlength=n_sym)
    sym_mean = np.where(cnt > 0, tot / np.maximum(cnt, 1), float(raw.mean()))
    if cfg.model.regime_source == "market":
        regime_vol = uni.market_vol[fold.train_start:fold.train_end]
        test_vol = uni.market_vol[uni.pos[test]]
    else:
        regime_vol = uni.vol[rows]
        test_vol = uni.vol[test]
    return {
        "rows": test, "lstm": lstm_pred * scale, "lstm_conf": conf,
        "knn": knn_pred * scale, "knn_conf": knn_conf, "knn_k": knn.k_,
        "threshold": fit_threshold(regime_vol, cfg.regime.quantile), "regime_vol": test_vol,
        "train_mean": sym_mean[uni.sym[test]], "n_train": len(rows),
        "n_symbols": int((cnt > 0).sum()), "label_scale": scale, "knn_rows": len(pick),
    }


def _check_finite(uni: Universe, fold: Fold, cfg: Config, lstm_pred: np.ndarray,
                  knn_pred: np.ndarray, test: np.ndarray) -> None:
    """Raise :class:`NonFiniteForecastError` naming the fold, model and first row if any forecast is NaN/inf."""
    named = [(f"LSTM (lookback {lb})", p) for lb, p in zip(cfg.lookbacks, lstm_pred, strict=True)]
    for name, pred in [*named, ("KNN", knn_pred)]:
        bad = ~np.isfinite(pred)
        if bad.any():
            i = test[int(np.argmax(bad))]
            day = format_timestamp(uni.dates[uni.pos[i]])
            raise NonFiniteForecastError(
                f"pooled fold {fold.index} (trained {format_timestamp(uni.dates[fold.train_start])} "
                f"to {format_timestamp(uni.dates[fold.train_end - 1])}): the {name} forecast NaN or inf "
                f"for {int(bad.sum())} of {len(pred)} rows (first: {uni.symbols[uni.sym[i]]} at "
                f"{day}); stopping rather than trading them. Check that window's prices for "
                "degenerate values")


def fit_span(fold: Fold) -> dict[str, int]:
    """What of a fold determines its fit: index and boundaries up to its first decision (not
    ``test_end``, so the cut-short last fold of data cut at a bar shares the full run's entry)."""
    return {"index": fold.index, "train_start": fold.train_start, "train_end": fold.train_end,
            "test_start": fold.test_start}


def _cache_keys(uni: Universe, folds: list[Fold], cfg: Config) -> list[str]:
    """Per fold: model config, seed, boundaries, fit budgets, and a hash of every symbol's price
    and feature rows up to the fold's first decision (as ``engine.walk_forward._fold_cache_key``:
    a feature that reads later rows changes the key, so it is never a cache hit)."""
    d = cfg.to_dict()
    model_cfg = {k: d[k] for k in ("walk_forward", "lstm")}
    model_cfg["features"] = {**feature_set_id(cfg.features), "shape": int(uni.X.shape[1])}
    model_cfg["model"] = {k: d["model"][k] for k in ("scope", "label", "cs_features")}
    for volatile in ("device", "threads", "mc_passes", "batched_symbols"):
        model_cfg["lstm"].pop(volatile)
    budgets = {"batch": MAX_POOLED_BATCH, "cold": COLD_FIT_SAMPLES, "warm": WARM_FIT_ROWS}
    prices, feats = hashlib.sha256(), hashlib.sha256()
    done = [0] * len(uni.symbols)
    keys = []
    for f in folds:
        for j, pos in enumerate(uni.upos):
            upto = int(np.searchsorted(pos, f.test_start, side="right"))
            if upto > done[j]:
                raw, X = uni.rows(j, done[j], upto)
                name = uni.symbols[j].encode() + b"\0"
                prices.update(name)
                prices.update(uni.dates[pos[done[j]:upto]].asi8.tobytes())
                prices.update(raw.tobytes())
                feats.update(name)
                feats.update(X.tobytes())
                done[j] = upto
        keys.append(fold_key({"v": MODEL_VERSION, "pooled": POOLED_VERSION, "torch": torch.__version__,
                              "cfg": model_cfg, "seed": cfg.seed, "first": uni.first_sample,
                              "budgets": budgets, "fold": fit_span(f),
                              "data": prices.copy().hexdigest(),
                              "feature_rows": feats.copy().hexdigest()}))
    return keys


def run_pooled_walk_forward(datas: Sequence[PriceData], cfg: Config, *,
                            cache: FoldCache | None = None,
                            progress: Progress | None = None,
                            fusions: Sequence[str] = ()) -> PooledResult:
    """Pooled walk-forward over a universe; predictions have one row per symbol and decision bar.

    ``fusions``: other ``fusion.method`` values to apply to the same model forecasts (no
    refit); their results are in ``PooledResult.alternatives`` by method.
    """
    uni = prepare_universe(datas, cfg)
    folds = pooled_folds(uni, cfg)
    outputs = _fold_outputs(uni, folds, cfg, cache, progress)
    result = _assemble(uni, folds, outputs, cfg, cache)
    for method in fusions:
        other = replace(cfg, fusion=replace(cfg.fusion, method=method))
        result.alternatives[method] = _assemble(uni, folds, outputs, other, cache)
    return result


def _fold_outputs(uni: Universe, folds: list[Fold], cfg: Config, cache: FoldCache | None,
                  progress: Progress | None) -> list[dict]:
    """Fit (or load) and predict every fold in order, along the warm-start chain."""
    keys = _cache_keys(uni, folds, cfg) if cache is not None else []
    check = _entry_check(cfg, uni.X.shape[1]) if cache is not None else None
    old_threads = torch.get_num_threads()
    if cfg.lstm.threads:
        torch.set_num_threads(cfg.lstm.threads)
    outputs = []
    if progress is not None:
        progress(0, len(folds))
    try:
        states: dict[int, dict] | None = None
        for k, fold in enumerate(folds):
            st = None
            if cache is not None:
                entry = cache.get(keys[k], check=check)
                if entry is not None:
                    st = entry["states"]
            if st is None:
                init = states if cfg.lstm.warm_start and k > 0 else None
                st = fit_pooled_fold(uni, fold, cfg, init=init)
                if cache is not None:
                    cache.put(keys[k], {"states": st})
            states = st
            out = predict_pooled_fold(uni, fold, cfg, st)
            out["lstm_rows"], out["lstm_epochs"] = fit_plan(
                out["n_train"], cfg, warm=cfg.lstm.warm_start and k > 0)
            outputs.append(out)
            if progress is not None:
                progress(k + 1, len(folds))
    finally:
        torch.set_num_threads(old_threads)
    return outputs


def _assemble(uni: Universe, folds: list[Fold], outputs: list[dict], cfg: Config,
              cache: FoldCache | None) -> PooledResult:
    cols = lstm_columns(cfg)
    test = np.concatenate([o["rows"] for o in outputs])

    def per_fold(value) -> np.ndarray:  # noqa: ANN001
        return np.concatenate([np.full(len(o["rows"]), value(f, o))
                               for f, o in zip(folds, outputs, strict=True)])

    def stacked(key: str) -> np.ndarray:
        return np.concatenate([o[key] for o in outputs], axis=-1)

    frame = pd.DataFrame({"date": uni.dates[uni.pos[test]],
                          "symbol": np.asarray(uni.symbols, dtype=object)[uni.sym[test]],
                          "fold": per_fold(lambda f, o: f.index), "y_true": uni.label[test]})
    lstm = stacked("lstm")
    for i, c in enumerate(cols):
        frame[c] = lstm[i]
    frame["knn"] = stacked("knn")
    frame["regime"] = np.concatenate([classify(o["regime_vol"], o["threshold"]) for o in outputs])
    frame["lstm_conf"] = stacked("lstm_conf")
    frame["knn_conf"] = stacked("knn_conf")
    frame["knn_k"] = per_fold(lambda f, o: int(o["knn_k"]))
    frame["train_mean"] = stacked("train_mean")
    frame["persistence"] = uni.persistence[test]
    frame["vol"] = uni.vol[test]
    frame["_known_until"] = uni.known[test]
    frame["_test_start"] = per_fold(lambda f, o: f.test_start)
    parts = [frame]
    pred = fuse_parts(parts, cfg, cols, lstm_at=4)
    fold_table = pd.DataFrame(
        [{**fold_row(f, uni.dates, o["n_train"], float(o["threshold"])),
          "n_symbols": o["n_symbols"], "label_scale": o["label_scale"],
          "lstm_rows": o["lstm_rows"], "lstm_epochs": o["lstm_epochs"], "knn_rows": o["knn_rows"]}
         for f, o in zip(folds, outputs, strict=True)])
    return PooledResult(pred, fold_table, cols, cache.hits if cache else 0,
                        cache.misses if cache else 0, excluded=list(uni.excluded))
