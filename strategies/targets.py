"""Per-symbol sizing rules: one symbol's fused forecasts to its positions (fractions of equity).

The building blocks of :class:`strategies.strategy.Strategy` (the one place targets are
computed); ``params`` is a :class:`strategies.strategy.StrategyParams` (or any object with
the same fields).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lstmknn.strategies.params import StrategyParams


def desired_positions(fused: np.ndarray | pd.Series, cfg: StrategyParams, *,
                      vol: np.ndarray | pd.Series | None = None,
                      periods_per_year: float = 252.0) -> np.ndarray:
    """The position each bar's forecast asks for, before the cost-aware rule.

    ``threshold``: +max_leverage above ``threshold``, -max_leverage below
    ``-threshold``, flat in between. ``proportional``: ``clip(fused / scale)``
    scaled to ``max_leverage``. ``vol_target``: the threshold direction sized
    to ``target_vol`` annualised from the bar's past realised volatility
    ``vol`` (log-return std), capped at ``max_leverage``. ``long_only``
    clips short targets to flat.
    """
    f = np.asarray(fused, dtype=float)
    direction = np.where(f > cfg.threshold, 1.0, np.where(f < -cfg.threshold, -1.0, 0.0))
    if cfg.sizing in ("threshold", "rank"):
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


def cost_aware(desired: np.ndarray, fused: np.ndarray, cost_rate: float,
               start: float = 0.0) -> np.ndarray:
    """Hold the position unless the forecast, in the direction of the change, beats the cost.

    The position moves up to ``desired[t]`` only when ``fused[t] > cost_rate``
    and down only when ``fused[t] < -cost_rate`` (with no costs: ``>= 0`` /
    ``<= 0``, so a threshold-0 signal is the sign of the forecast). A forecast
    smaller than the cost of trading cannot pay for the trade, so it changes
    nothing. Path-dependent: row ``t`` depends on rows before it only.
    """
    d = np.asarray(desired, dtype=float)
    f = np.asarray(fused, dtype=float)
    out = np.empty_like(d)
    cur = float(start)
    for i in range(len(d)):
        fi = f[i]
        if d[i] > cur and (fi > cost_rate or (cost_rate == 0.0 and fi >= 0.0)) or \
                d[i] < cur and (fi < -cost_rate or (cost_rate == 0.0 and fi <= 0.0)):
            cur = float(d[i])
        out[i] = cur
    return out


def target_positions(fused: np.ndarray | pd.Series, cfg: StrategyParams, *,
                     vol: np.ndarray | pd.Series | None = None, periods_per_year: float = 252.0,
                     cost_rate: float | None = None, start: float = 0.0) -> np.ndarray:
    """Target position per bar of one symbol (rows in time order).

    With ``cost_rate`` (and ``cfg.cost_aware``) the cost-aware rule of
    :func:`cost_aware` applies from position ``start``; otherwise the desired
    position is traded as is.
    """
    desired = desired_positions(fused, cfg, vol=vol, periods_per_year=periods_per_year)
    if cost_rate is None or not cfg.cost_aware:
        return desired
    return cost_aware(desired, np.asarray(fused, dtype=float), cost_rate, start=start)

