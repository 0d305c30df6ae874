"""Fusion of LSTM and KNN forecasts: fixed, regime, learned regime alpha, stacking.

Learned methods see, at each fold, only out-of-sample rows of earlier folds
whose labels are known at that fold's first decision (``known_until``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from lstmknn.engine.config import Config
from lstmknn.engine.regime import VOLATILE

MIN_ROWS_PER_REGIME = 20


def regime_alpha(regime: np.ndarray, cfg: Config) -> np.ndarray:
    """Configured alpha per row: ``alpha_calm`` or ``alpha_volatile``."""
    return np.where(regime == VOLATILE, cfg.regime.alpha_volatile, cfg.regime.alpha_calm)


def learned_alpha(lstm: np.ndarray, knn: np.ndarray, y: np.ndarray) -> float | None:
    """Closed-form alpha in [0, 1] minimising ``sum((y - a*lstm - (1-a)*knn)**2)``."""
    d = lstm - knn
    denom = float(d @ d)
    if len(y) < MIN_ROWS_PER_REGIME or denom <= 0:
        return None
    return float(np.clip(((y - knn) @ d) / denom, 0.0, 1.0))


def stacking_design(frame: pd.DataFrame, lstm_cols: list[str], hist: np.ndarray) -> np.ndarray:
    """Meta-model inputs: each component, components x regime, components x confidence.

    Confidences enter as multipliers of their model's forecast, z-scored with
    the history rows' statistics only. There is no constant column: a meta
    forecast is zero when every model forecasts zero.
    """
    vol = (frame["regime"].to_numpy() == VOLATILE).astype(float)
    comps = [frame[c].to_numpy(float) for c in [*lstm_cols, "knn"]]
    lstm = np.mean(comps[:-1], axis=0)
    knn = comps[-1]
    cols = [*comps, vol * lstm, vol * knn]
    for conf, comp in (("lstm_conf", lstm), ("knn_conf", knn)):
        c = frame[conf].to_numpy(float) if conf in frame else None
        if c is None or not np.isfinite(c).all():
            continue
        sd = c[hist].std()
        if sd > 0:
            cols.append(comp * (c - c[hist].mean()) / sd)
    return np.column_stack(cols)


def fuse(pred: pd.DataFrame, known_until: np.ndarray, test_start: np.ndarray, cfg: Config,
         lstm_cols: list[str]) -> pd.DataFrame:
    """Add ``alpha``, ``fused`` and ``fusion_used`` to the predictions frame.

    ``known_until[i]`` is the bar position at whose close row i's label is
    known; ``test_start[i]`` is the position of the first decision of row i's
    fold. A fold may learn from rows with ``known_until <= test_start``.
    """
    out = pred.copy()
    lstm = out[lstm_cols].to_numpy(float).mean(axis=1)
    knn = out["knn"].to_numpy(float)
    regime = out["regime"].to_numpy()
    alpha = regime_alpha(regime, cfg) if cfg.fusion.method != "fixed" else np.full(len(out), cfg.fusion.alpha)
    fused = alpha * lstm + (1 - alpha) * knn
    used = np.full(len(out), "fixed" if cfg.fusion.method == "fixed" else "regime", dtype=object)
    method = cfg.fusion.method
    if method in ("regime_learned", "stacking"):
        y = out["y_true"].to_numpy(float)
        for start in np.unique(test_start):
            rows = np.flatnonzero(test_start == start)
            hist = np.flatnonzero((known_until <= start) & np.isfinite(y))
            if len(hist) < cfg.fusion.min_history:
                used[rows] = "regime_fallback"
                continue
            if method == "regime_learned":
                for r in np.unique(regime[rows]):
                    h = hist[regime[hist] == r]
                    a = learned_alpha(lstm[h], knn[h], y[h])
                    sel = rows[regime[rows] == r]
                    if a is None:
                        used[sel] = "regime_fallback"
                        continue
                    alpha[sel] = a
                    fused[sel] = a * lstm[sel] + (1 - a) * knn[sel]
                    used[sel] = "regime_learned"
            else:
                fused[rows] = _stack(out, lstm_cols, hist, rows, y, cfg)
                alpha[rows] = np.nan
                used[rows] = "stacking"
    out["alpha"] = alpha
    out["fused"] = fused
    out["fusion_used"] = used
    return out


def _stack(frame: pd.DataFrame, lstm_cols: list[str], hist: np.ndarray, rows: np.ndarray,
           y: np.ndarray, cfg: Config) -> np.ndarray:
    Z = stacking_design(frame, lstm_cols, hist)
    if cfg.fusion.meta_model == "ridge":
        rms = np.sqrt(np.mean(Z[hist] ** 2, axis=0)) + 1e-12  # scale without centring
        ridge = Ridge(alpha=cfg.fusion.ridge_alpha, fit_intercept=False)
        return ridge.fit(Z[hist] / rms, y[hist]).predict(Z[rows] / rms)
    scaler = StandardScaler().fit(Z[hist])
    up = (y[hist] > 0).astype(int)
    if up.min() == up.max():
        return np.full(len(rows), float(np.mean(y[hist])))
    clf = LogisticRegression(C=1.0 / max(cfg.fusion.ridge_alpha, 1e-6)).fit(scaler.transform(Z[hist]), up)
    p = clf.predict_proba(scaler.transform(Z[rows]))[:, 1]
    return (2 * p - 1) * float(np.mean(np.abs(y[hist])))
