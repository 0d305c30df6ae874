"""Fused forecasts to target positions (fractions of equity), decided at each close.

The same function serves backtests, the signal command and paper trading.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.config import SignalConfig


def target_positions(fused: np.ndarray | pd.Series, cfg: SignalConfig, *,
                     vol: np.ndarray | pd.Series | None = None,
                     periods_per_year: float = 252.0) -> np.ndarray:
    """Target position per bar.

    ``threshold``: +max_leverage above ``threshold``, -max_leverage below
    ``-threshold``, flat in between. ``proportional``: ``clip(fused / scale)``
    scaled to ``max_leverage``. ``vol_target``: the threshold direction sized
    to ``target_vol`` annualised from the bar's past realised volatility
    ``vol`` (log-return std), capped at ``max_leverage``. ``long_only``
    clips short targets to flat.
    """
    f = np.asarray(fused, dtype=float)
    direction = np.where(f > cfg.threshold, 1.0, np.where(f < -cfg.threshold, -1.0, 0.0))
    if cfg.sizing == "threshold":
        target = direction * cfg.max_leverage
    elif cfg.sizing == "proportional":
        target = np.clip(f / cfg.scale, -1.0, 1.0) * cfg.max_leverage
    else:
        if vol is None:
            raise ValueError("vol_target sizing needs realised volatility")
        ann = np.asarray(vol, dtype=float) * np.sqrt(periods_per_year)
        size = np.where(ann > 0, cfg.target_vol / np.maximum(ann, 1e-12), 0.0)
        target = direction * np.minimum(size, cfg.max_leverage)
    target = np.nan_to_num(target, nan=0.0)
    if cfg.long_only:
        target = np.maximum(target, 0.0)
    return target
