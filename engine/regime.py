"""Volatility regimes with thresholds fitted on the training window only."""

from __future__ import annotations

import numpy as np

CALM, VOLATILE = "calm", "volatile"


def fit_threshold(train_vol: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of realised volatility over a training window."""
    v = np.asarray(train_vol, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("no finite volatility in the training window")
    return float(np.quantile(v, quantile))


def classify(vol: np.ndarray, threshold: float) -> np.ndarray:
    """``volatile`` where volatility is above the threshold, else ``calm``."""
    return np.where(np.asarray(vol, dtype=float) > threshold, VOLATILE, CALM)
