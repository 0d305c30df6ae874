"""The strategy's own parameters (built from a run configuration by ``engine.params``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Sizing = Literal["threshold", "proportional", "vol_target", "rank"]


@dataclass(frozen=True)
class StrategyParams:
    """What the strategy needs to decide: sizing rule, limits, cost rate and bar frequency.

    Built from a run configuration by ``engine.params.strategy_params``; the field
    names are those of the ``[signal]`` section, plus ``cost_rate`` (commission +
    slippage, a fraction of the traded value) and ``periods_per_year``.
    """

    sizing: Sizing = "threshold"
    threshold: float = 0.0
    scale: float = 0.005
    target_vol: float = 0.15
    max_leverage: float = 1.0
    long_only: bool = False
    allocation: Literal["equal", "strength"] = "equal"
    top_k: int = 10
    bottom_k: int = 0
    buffer: int = 0
    max_replace: int = 0
    weighting: Literal["equal", "forecast"] = "equal"
    max_weight: float = 1.0
    max_gross: float = 1.0
    cost_aware: bool = True
    cost_rate: float = 0.0
    periods_per_year: float = 252.0
