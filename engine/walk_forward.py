"""Walk-forward retraining that produces out-of-sample forecasts.

Layer two of three: estimators ``fit/predict`` (``engine.models``), this
walk-forward (predictions only), and the backtest that trades and scores
them (``engine.pipeline``), which also accepts precomputed predictions.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from numpy.lib.stride_tricks import sliding_window_view

from data.errors import DataError
from data.features import build_features, first_valid_row, next_return, realized_volatility
from engine.cache import FoldCache, fold_key
from engine.config import Config
from engine.folds import Fold, bars_needed, make_folds
from engine.fusion import fuse
from engine.models.knn import KNNRegressor
from engine.models.lstm import LSTMRegressor, resolve_device
from engine.regime import classify, fit_threshold
from engine.seeding import derive_seed

Progress = Callable[[int, int], None]


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
    row_digest: list[str]  # cumulative sha256 of the raw rows, per fold end (lazy)
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


def prepare(prices: pd.DataFrame, cfg: Config) -> Prepared:
    """Features, labels, regimes and lookback windows for the whole frame (built once)."""
    feats = build_features(prices)
    vol = realized_volatility(prices["close"], cfg.regime.vol_window)
    start = max(first_valid_row(feats), first_valid_row(vol.to_frame()))
    first_sample = start + cfg.max_lookback - 1
    needed = bars_needed(first_sample, cfg.walk_forward.train_window, cfg.walk_forward.gap,
                         cfg.walk_forward.horizon)
    if len(prices) < needed:
        raise DataError(
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
        row_digest=[],
        raw=np.ascontiguousarray(prices[["open", "high", "low", "close", "volume"]].to_numpy(float)),
    )


def folds_for(prep: Prepared, cfg: Config) -> list[Fold]:
    wf = cfg.walk_forward
    return make_folds(len(prep.index), prep.first_sample, wf.train_window, wf.step,
                      mode=wf.mode, gap=wf.gap, horizon=wf.horizon)


def _window(prep: Prepared, lb: int, rows: np.ndarray) -> np.ndarray:
    return prep.windows[lb][rows - lb + 1]


def lstm_estimator(cfg: Config, seed: int) -> LSTMRegressor:
    c = cfg.lstm
    return LSTMRegressor(hidden_size=c.hidden_size, num_layers=c.num_layers, head_size=c.head_size,
                         dropout=c.dropout, epochs=c.epochs, warm_epochs=c.warm_epochs,
                         batch_size=c.batch_size, lr=c.lr, weight_decay=c.weight_decay,
                         patience=c.patience, val_fraction=c.val_fraction, mc_passes=c.mc_passes,
                         random_state=seed, device=str(resolve_device(c.device)))


def fit_predict_fold(prep: Prepared, fold: Fold, cfg: Config,
                     init: dict[int, dict] | None = None) -> dict:
    """Fit fresh (or explicitly warm-started) models on one fold and forecast its test bars."""
    train = np.arange(fold.train_start, fold.train_end)
    test = np.arange(fold.test_start, fold.test_end)
    y = prep.labels[train]
    out: dict = {"params": {}}
    lstm_preds, lstm_confs = [], []
    for lb in cfg.lookbacks:
        seed = derive_seed(cfg.seed, "lstm", lb, fold.index)
        model = lstm_estimator(cfg, seed).fit(
            _window(prep, lb, train), y, init_params=(init or {}).get(lb))
        pred, conf = model.predict_with_confidence(_window(prep, lb, test))
        lstm_preds.append(pred)
        lstm_confs.append(conf)
        out["params"][lb] = model.params_
    c = cfg.knn
    knn = KNNRegressor(n_neighbors=c.n_neighbors, validation_fraction=c.validation_fraction)
    knn.fit(prep.features[train], y)
    knn_pred, knn_conf = knn.predict_with_confidence(prep.features[test])
    lstm_conf = np.mean(lstm_confs, axis=0)
    if np.isnan(lstm_conf).all() and len(lstm_preds) > 1:
        lstm_conf = -np.log(np.std(lstm_preds, axis=0) + 1e-12)
    out["preds"] = {
        "lstm": np.stack(lstm_preds),
        "lstm_conf": lstm_conf,
        "knn": knn_pred,
        "knn_conf": knn_conf,
        "knn_k": np.full(len(test), knn.k_, dtype=float),
        "threshold": np.array([fit_threshold(prep.vol[train], cfg.regime.quantile)]),
        "train_mean": np.full(len(test), float(y.mean())),
    }
    return out


def _data_digest(prep: Prepared, end: int) -> str:
    return hashlib.sha256(prep.raw[:end].tobytes()).hexdigest()


def _to_tensors(preds: dict) -> dict:
    return {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in preds.items()}


def run_walk_forward(prices: pd.DataFrame, cfg: Config, *, cache: FoldCache | None = None,
                     progress: Progress | None = None) -> WalkForwardResult:
    """Retrain on every fold and return the out-of-sample predictions, fused."""
    prep = prepare(prices, cfg)
    folds = folds_for(prep, cfg)
    threads = cfg.lstm.threads
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        outputs = _run_folds(prep, folds, cfg, cache, progress)
    finally:
        torch.set_num_threads(old_threads)
    return assemble(prep, folds, outputs, cfg, cache)


def _run_folds(prep: Prepared, folds: list[Fold], cfg: Config, cache: FoldCache | None,
               progress: Progress | None) -> list[dict]:
    model_cfg = {k: cfg.to_dict()[k] for k in ("walk_forward", "lstm", "knn", "regime")}
    model_cfg["lstm"].pop("device")
    model_cfg["lstm"].pop("threads")
    outputs: list[dict] = []
    prev: dict[int, dict] | None = None
    for fold in folds:
        key = None
        entry = None
        if cache is not None:
            key = fold_key({"v": 1, "cfg": model_cfg, "seed": cfg.seed, "fold": fold.__dict__,
                            "data": _data_digest(prep, fold.test_end)})
            entry = cache.get(key)
        if entry is not None:
            out = {"params": entry["params"],
                   "preds": {k: v.numpy() for k, v in entry["preds"].items()}}
        else:
            out = fit_predict_fold(prep, fold, cfg, init=prev if cfg.lstm.warm_start else None)
            if cache is not None and key is not None:
                cache.put(key, {"params": out["params"], "preds": _to_tensors(out["preds"])})
        prev = out["params"]
        outputs.append(out)
        if progress is not None:
            progress(fold.index + 1, len(folds))
    return outputs


def assemble(prep: Prepared, folds: list[Fold], outputs: list[dict], cfg: Config,
             cache: FoldCache | None = None) -> WalkForwardResult:
    """Stack fold outputs into the predictions frame and apply the fusion."""
    cols = lstm_columns(cfg)
    parts = []
    h, gap = cfg.walk_forward.horizon, cfg.walk_forward.gap
    for fold, out in zip(folds, outputs, strict=True):
        test = np.arange(fold.test_start, fold.test_end)
        p = out["preds"]
        frame = pd.DataFrame({"date": prep.index[test], "fold": fold.index,
                              "y_true": prep.labels[test]})
        for i, c in enumerate(cols):
            frame[c] = p["lstm"][i]
        frame["knn"] = p["knn"]
        frame["regime"] = classify(prep.vol[test], float(p["threshold"][0]))
        frame["lstm_conf"] = p["lstm_conf"]
        frame["knn_conf"] = p["knn_conf"]
        frame["knn_k"] = p["knn_k"].astype(int)
        frame["train_mean"] = p["train_mean"]
        frame["persistence"] = prep.persistence[test]
        frame["vol"] = prep.vol[test]
        frame["_known_until"] = test + h + gap
        frame["_test_start"] = fold.test_start
        parts.append(frame)
    pred = pd.concat(parts, ignore_index=True)
    if len(cols) > 1:
        pred.insert(3, "lstm", pred[cols].mean(axis=1))
    pred = fuse(pred, pred.pop("_known_until").to_numpy(), pred.pop("_test_start").to_numpy(),
                cfg, cols)
    fold_table = pd.DataFrame(
        [{"fold": f.index, "train_start": prep.index[f.train_start],
          "train_end": prep.index[f.train_end - 1], "test_start": prep.index[f.test_start],
          "test_end": prep.index[f.test_end - 1], "train_size": f.train_size,
          "vol_threshold": float(o["preds"]["threshold"][0])}
         for f, o in zip(folds, outputs, strict=True)]
    )
    return WalkForwardResult(pred, fold_table, cols,
                             cache.hits if cache else 0, cache.misses if cache else 0)


def tqdm_progress(enabled: bool, desc: str = "folds") -> tuple[Progress | None, Callable[[], None]]:
    """A progress callback drawing a bar on stderr (only when it is a terminal)."""
    if not enabled or not sys.stderr.isatty():
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=None, desc=desc, unit="fold", file=sys.stderr, leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar.close
