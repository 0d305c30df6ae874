"""Walk-forward retraining that produces out-of-sample forecasts.

Layer two of three: estimators ``fit/predict`` (``engine.models``), this
walk-forward (predictions only), and the backtest that trades and scores
them (``engine.pipeline``), which also accepts precomputed predictions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from numpy.lib.stride_tricks import sliding_window_view

from lstmknn.data.errors import TooLittleDataError
from lstmknn.data.features import first_valid_row, next_return, realized_volatility
from lstmknn.engine.cache import FoldCache, fold_key
from lstmknn.engine.config import Config, ConfigError
from lstmknn.engine.errors import NonFiniteForecastError
from lstmknn.engine.feature_set import feature_frame, feature_set_id
from lstmknn.engine.folds import Fold, bars_needed, make_folds
from lstmknn.engine.fusion import fuse
from lstmknn.engine.models import KNNRegressor, LSTMRegressor, params_from
from lstmknn.engine.models.grouped_lstm import GROUPED_VERSION
from lstmknn.engine.models.lstm import MODEL_VERSION, resolve_device
from lstmknn.engine.progress import Progress
from lstmknn.engine.regime import classify, fit_threshold
from lstmknn.engine.runio import format_timestamp
from lstmknn.engine.seeding import derive_seed


@dataclass
class Prepared:
    """Everything the folds need, computed once per price frame."""

    index: pd.DatetimeIndex
    features: np.ndarray  # [bars, features] float32
    labels: np.ndarray  # [bars] next-horizon return, NaN where unknown
    vol: np.ndarray  # [bars] realised volatility at each close
    persistence: np.ndarray  # [bars] last horizon's return, known at each close
    windows: dict[int, np.ndarray]  # lookback -> [bars - L + 1, L, features] view
    first_sample: int
    raw: np.ndarray


@dataclass
class WalkForwardResult:
    predictions: pd.DataFrame
    folds: pd.DataFrame
    lstm_columns: list[str]
    cache_hits: int = 0
    cache_misses: int = 0


def lstm_columns(cfg: Config) -> list[str]:
    lbs = cfg.lookbacks
    return ["lstm"] if len(lbs) == 1 else [f"lstm_{lb}" for lb in lbs]


def prepare(prices: pd.DataFrame, cfg: Config, available: Iterable[str] | None = None,
            custom: pd.DataFrame | None = None) -> Prepared:
    """Features, labels, regimes and lookback windows for the whole frame (built once).

    The features are ``cfg.features``: the built-ins it names (default: all that
    ``available``, the price columns that truly came from the file, allow) and
    the custom ones, computed here or passed precomputed as ``custom``.
    """
    feats = feature_frame(prices, cfg.features, available, custom=custom)
    vol = realized_volatility(prices["close"], cfg.regime.vol_window)
    start = max(first_valid_row(feats), first_valid_row(vol.to_frame()))
    first_sample = start + cfg.max_lookback - 1
    needed = bars_needed(first_sample, cfg.walk_forward.train_window, cfg.walk_forward.gap,
                         cfg.walk_forward.horizon)
    if len(prices) < needed:
        raise TooLittleDataError(
            f"too little data: {len(prices)} rows, the configuration needs at least {needed} "
            f"({first_sample} warm-up + train_window {cfg.walk_forward.train_window} + purge and "
            f"{cfg.walk_forward.horizon + 1} bars to decide and score)"
        )
    X = np.nan_to_num(feats.to_numpy(np.float32), nan=0.0)
    h = cfg.walk_forward.horizon
    close = prices["close"]
    windows = {lb: sliding_window_view(X, lb, axis=0).transpose(0, 2, 1) for lb in cfg.lookbacks}
    return Prepared(
        index=prices.index,
        features=X,
        labels=next_return(close, h).to_numpy(float),
        vol=vol.to_numpy(float),
        persistence=(close / close.shift(h) - 1.0).to_numpy(float),
        windows=windows,
        first_sample=first_sample,
        raw=np.ascontiguousarray(prices[["open", "high", "low", "close", "volume"]].to_numpy(float)),
    )


def folds_for(prep: Prepared, cfg: Config) -> list[Fold]:
    wf = cfg.walk_forward
    return make_folds(len(prep.index), prep.first_sample, wf.train_window, wf.step,
                      mode=wf.mode, gap=wf.gap, horizon=wf.horizon)


def _window(prep: Prepared, lb: int, rows: np.ndarray) -> np.ndarray:
    return prep.windows[lb][rows - lb + 1]


def model_device(cfg: Config) -> str:
    """The torch device ``lstm.device`` resolves to here; a missing CUDA is a :class:`ConfigError`."""
    try:
        return str(resolve_device(cfg.lstm.device))
    except RuntimeError as exc:
        raise ConfigError(str(exc)) from None


def lstm_estimator(cfg: Config, seed: int) -> LSTMRegressor:
    """An unfitted LSTM from ``[lstm]``, matched by the estimator's own parameter names."""
    params = params_from(LSTMRegressor, cfg.lstm)
    return LSTMRegressor(**{**params, "random_state": seed, "device": model_device(cfg)})


def knn_estimator(cfg: Config) -> KNNRegressor:
    """An unfitted KNN from ``[knn]``, matched by the estimator's own parameter names."""
    return KNNRegressor(**params_from(KNNRegressor, cfg.knn))


def warm_params(init: dict[int, dict] | None, lookback: int) -> dict | None:
    """The previous fold's network weights for lookback ``lookback`` (explicit warm start),
    or None for a cold start."""
    if init is None:
        return None
    return {k[len("module."):]: v for k, v in init[lookback].items() if k.startswith("module.")}


def fit_fold(prep: Prepared, fold: Fold, cfg: Config,
             init: dict[int, dict] | None = None) -> dict[int, dict]:
    """Fit fresh (or explicitly warm-started) LSTMs on one fold; their states by lookback."""
    train = np.arange(fold.train_start, fold.train_end)
    y = prep.labels[train]
    states = {}
    for lb in cfg.lookbacks:
        seed = derive_seed(cfg.seed, "lstm", lb, fold.index)
        warm = warm_params(init, lb)
        model = lstm_estimator(cfg, seed).fit(_window(prep, lb, train), y, init_params=warm)
        states[lb] = model.get_state()
    return states


def predict_fold(prep: Prepared, fold: Fold, cfg: Config, states: dict[int, dict]) -> dict:
    """Out-of-sample forecasts of one fold: LSTMs from their states, KNN, regime, baselines."""
    test = np.arange(fold.test_start, fold.test_end)
    padded = padded_test(fold, cfg)
    lstm_preds, lstm_confs = [], []
    for lb in cfg.lookbacks:
        seed = derive_seed(cfg.seed, "lstm", lb, fold.index)
        model = lstm_estimator(cfg, seed).set_state(states[lb])
        pred, conf = model.predict_with_confidence(_window(prep, lb, padded))
        lstm_preds.append(pred[: len(test)])
        lstm_confs.append(conf[: len(test)])
    train = np.arange(fold.train_start, fold.train_end)
    knn = knn_estimator(cfg)
    knn.fit(prep.features[train], prep.labels[train])
    knn_pred, knn_conf = knn.predict_with_confidence(prep.features[test])
    return fold_output(prep, fold, cfg, lstm_preds, lstm_confs, knn_pred, knn_conf, knn.k_)


def padded_test(fold: Fold, cfg: Config) -> np.ndarray:
    """The fold's test rows, a cut-short last fold padded to a whole step (repeating its last bar).

    The LSTM always sees the same batch shape: float32 kernels round differently for other
    shapes, and a bar's forecast must not depend on how many bars follow it."""
    test = np.arange(fold.test_start, fold.test_end)
    return np.concatenate([test, np.full(cfg.walk_forward.step - len(test), test[-1])])


def fold_output(prep: Prepared, fold: Fold, cfg: Config, lstm_preds: list[np.ndarray],
                lstm_confs: list[np.ndarray], knn_pred: np.ndarray, knn_conf: np.ndarray,
                knn_k: int) -> dict:
    """A fold's outputs from its model forecasts (one per lookback, then the KNN's): checked
    for NaN/inf, the LSTM confidence, the regime threshold and the training-mean baseline."""
    train = np.arange(fold.train_start, fold.train_end)
    n_test = fold.test_end - fold.test_start
    y = prep.labels[train]
    check_forecasts(prep, fold, cfg, lstm_preds, knn_pred)
    lstm_conf = np.mean(lstm_confs, axis=0)
    if np.isnan(lstm_conf).all() and len(lstm_preds) > 1:
        lstm_conf = -np.log(np.std(lstm_preds, axis=0) + 1e-12)
    return {
        "lstm": np.stack(lstm_preds),
        "lstm_conf": lstm_conf,
        "knn": knn_pred,
        "knn_conf": knn_conf,
        "knn_k": np.full(n_test, knn_k, dtype=float),
        "threshold": np.array([fit_threshold(prep.vol[train], cfg.regime.quantile)]),
        "train_mean": np.full(n_test, float(y.mean())),
    }


def check_forecasts(prep: Prepared, fold: Fold, cfg: Config, lstm_preds: list[np.ndarray],
                    knn_pred: np.ndarray) -> None:
    """Raise :class:`NonFiniteForecastError` naming the fold and model if any forecast is NaN/inf."""
    models = [(f"LSTM (lookback {lb})", p) for lb, p in zip(cfg.lookbacks, lstm_preds, strict=True)]
    for name, pred in [*models, ("KNN", knn_pred)]:
        bad = ~np.isfinite(pred)
        if bad.any():
            ix = prep.index
            raise NonFiniteForecastError(
                f"fold {fold.index} (trained {format_timestamp(ix[fold.train_start])} to "
                f"{format_timestamp(ix[fold.train_end - 1])}, testing {format_timestamp(ix[fold.test_start])} to "
                f"{format_timestamp(ix[fold.test_end - 1])}): the {name} forecast NaN or inf for "
                f"{int(bad.sum())} of {len(pred)} bars (first at "
                f"{format_timestamp(ix[fold.test_start + int(np.argmax(bad))])}); stopping rather than trading "
                "them. Check that window's prices for degenerate values (e.g. a jump that "
                "overflows float32)"
            )


def _fold_cache_key(prep: Prepared, fold: Fold, cfg: Config) -> str:
    """Key of a fold's fitted models: model config, seed, boundaries, and every row they saw.

    Training ends with the label known at the close of ``test_start``, so rows
    ``[0, test_start]`` determine the fit (warm-start chain included). The
    feature set (names, custom references and their source hashes) and the
    feature rows the fit saw are part of the key too, so feature sets never
    share entries and a feature that reads later rows is never a cache hit.
    """
    model_cfg = {k: cfg.to_dict()[k] for k in ("walk_forward", "lstm")}
    for volatile in ("device", "threads", "mc_passes"):
        model_cfg["lstm"].pop(volatile)
    if model_cfg["lstm"].pop("batched_symbols"):  # its own entries (other kernels, other numbers)
        model_cfg["lstm"]["grouped"] = GROUPED_VERSION
    rows = fold.test_start + 1
    digest = hashlib.sha256(prep.raw[:rows].tobytes()).hexdigest()
    feats = hashlib.sha256(np.ascontiguousarray(prep.features[:rows]).tobytes()).hexdigest()
    return fold_key({"v": MODEL_VERSION, "torch": torch.__version__, "cfg": model_cfg, "seed": cfg.seed, "first": prep.first_sample,
                     "fold": fold.__dict__, "data": digest,
                     "features": {**feature_set_id(cfg.features), "shape": prep.features.shape[1],
                                  "rows": feats}})


def run_walk_forward(prices: pd.DataFrame, cfg: Config, *, cache: FoldCache | None = None,
                     progress: Progress | None = None,
                     since: pd.Timestamp | str | None = None,
                     available: Iterable[str] | None = None) -> WalkForwardResult:
    """Retrain on every fold and return the out-of-sample predictions, fused.

    ``since`` limits the output to folds whose test bars reach that date
    (earlier folds are still fitted, or loaded from ``cache``, when the warm
    start chain needs them). Learned fusion methods always use every fold.
    ``available``: the price columns that truly came from the data
    (``PriceData.available``); features needing others are left out.
    """
    if cfg.lstm.batched_symbols:
        raise ConfigError("`lstm.batched_symbols` = true runs through engine.forecasts.forecast "
                          "(the batched walk-forward of a universe), not run_walk_forward")
    prep = prepare(prices, cfg, available)
    folds = folds_for(prep, cfg)
    first = 0
    if since is not None and cfg.fusion.method in ("fixed", "regime"):
        pos = int(prep.index.searchsorted(pd.Timestamp(since)))
        first = next((f.index for f in folds if f.test_end > pos), len(folds) - 1)
    old_threads = torch.get_num_threads()
    if cfg.lstm.threads:
        torch.set_num_threads(cfg.lstm.threads)
    try:
        states = _fit_folds(prep, folds, first, cfg, cache, progress)
        outputs = [{"preds": predict_fold(prep, f, cfg, states[f.index])} for f in folds[first:]]
    finally:
        torch.set_num_threads(old_threads)
    return assemble(prep, folds[first:], outputs, cfg, cache)


def _fit_folds(prep: Prepared, folds: list[Fold], first: int, cfg: Config,
               cache: FoldCache | None, progress: Progress | None) -> dict[int, dict]:
    """Fitted LSTM states of folds ``first..`` (and of the warm-start chain before them)."""
    warm = cfg.lstm.warm_start
    states: dict[int, dict] = {}

    check = _entry_check(cfg, prep.features.shape[1])

    def cached(k: int) -> dict | None:
        if cache is None:
            return None
        entry = cache.get(_fold_cache_key(prep, folds[k], cfg), check=check)
        return None if entry is None else entry["states"]

    def fit(k: int) -> dict:
        init = states.get(k - 1) if warm and k > 0 else None
        st = fit_fold(prep, folds[k], cfg, init=init)
        if cache is not None:
            cache.put(_fold_cache_key(prep, folds[k], cfg), {"states": st})
        return st

    start = first
    if warm and first > 0:  # find the latest cached link of the chain before `first`
        j = first - 1
        while j >= 0 and (st := cached(j)) is None:
            j -= 1
        if j >= 0:
            states[j] = st
        start = j + 1
    total = len(folds) - start
    if progress is not None:
        progress(0, total)
    for n, k in enumerate(range(start, len(folds)), 1):
        states[k] = (cached(k) if k >= first else None) or fit(k)
        if progress is not None:
            progress(n, total)
    return states


def _entry_check(cfg: Config, n_features: int) -> Callable[[dict], str | None]:
    """A cache check: why an entry's LSTM states do not fit this config's models, or None."""
    model = lstm_estimator(cfg, 0)

    def check(entry: dict) -> str | None:
        states = entry.get("states")
        if not isinstance(states, dict) or set(states) != set(cfg.lookbacks):
            return f"its lookbacks are not {cfg.lookbacks}"
        for lb in cfg.lookbacks:
            if (problem := model.state_problem(states[lb], n_features)) is not None:
                return f"lookback {lb}: {problem}"
        return None

    return check


def assemble(prep: Prepared, folds: list[Fold], outputs: list[dict], cfg: Config,
             cache: FoldCache | None = None) -> WalkForwardResult:
    """Stack fold outputs into the predictions frame and apply the fusion."""
    cols = lstm_columns(cfg)
    h, gap = cfg.walk_forward.horizon, cfg.walk_forward.gap
    tests = [np.arange(f.test_start, f.test_end) for f in folds]
    test = np.concatenate(tests)
    preds = [o["preds"] for o in outputs]

    def stacked(key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in preds], axis=-1)

    frame = pd.DataFrame({"date": prep.index[test],
                          "fold": np.concatenate([np.full(len(t), f.index)
                                                  for f, t in zip(folds, tests, strict=True)]),
                          "y_true": prep.labels[test]})
    lstm = stacked("lstm")
    for i, c in enumerate(cols):
        frame[c] = lstm[i]
    frame["knn"] = stacked("knn")
    frame["regime"] = np.concatenate([classify(prep.vol[t], float(p["threshold"][0]))
                                      for t, p in zip(tests, preds, strict=True)])
    frame["lstm_conf"] = stacked("lstm_conf")
    frame["knn_conf"] = stacked("knn_conf")
    frame["knn_k"] = stacked("knn_k").astype(int)
    frame["train_mean"] = stacked("train_mean")
    frame["persistence"] = prep.persistence[test]
    frame["vol"] = prep.vol[test]
    frame["_known_until"] = test + h + gap
    frame["_test_start"] = np.concatenate([np.full(len(t), f.test_start)
                                           for f, t in zip(folds, tests, strict=True)])
    pred = fuse_parts([frame], cfg, cols, lstm_at=3)
    fold_table = pd.DataFrame(
        [fold_row(f, prep.index, f.train_size, float(o["preds"]["threshold"][0]))
         for f, o in zip(folds, outputs, strict=True)]
    )
    return WalkForwardResult(pred, fold_table, cols,
                             cache.hits if cache else 0, cache.misses if cache else 0)


def fuse_parts(parts: list[pd.DataFrame], cfg: Config, cols: list[str], lstm_at: int
               ) -> pd.DataFrame:
    """Stack per-fold prediction frames, add the mean ``lstm`` of a multi-window ensemble
    (at column ``lstm_at``) and apply the fusion, which reads ``_known_until`` (the bar at
    which each row's label is known) and ``_test_start`` and drops them."""
    # one part (the frame is the caller's to change): no copy
    pred = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    if len(cols) > 1:
        pred.insert(lstm_at, "lstm", pred[cols].mean(axis=1))
    return fuse(pred, pred.pop("_known_until").to_numpy(), pred.pop("_test_start").to_numpy(),
                cfg, cols)


def fold_row(fold: Fold, index: pd.DatetimeIndex, train_size: int, threshold: float
             ) -> dict[str, object]:
    """One row of ``folds.csv``: the fold's boundaries as timestamps, size and regime threshold."""
    return {"fold": fold.index, "train_start": index[fold.train_start],
            "train_end": index[fold.train_end - 1], "test_start": index[fold.test_start],
            "test_end": index[fold.test_end - 1], "train_size": train_size,
            "vol_threshold": threshold}
