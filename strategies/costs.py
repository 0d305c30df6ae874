"""Pure fill / cost model shared by every execution path.

Backtrader (through :mod:`strategies.bt_engine`), the vectorized twin and a
bar-stepping paper broker all price fills, commissions, volume caps and order
sizes with these functions, so they cannot drift apart.  Arithmetic is written
in the same order as backtrader's broker to keep the paths bit-close.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# An order whose unfilled remainder is below this fraction of its size counts as
# fully filled (float residue of position arithmetic, e.g. 0.1 + -0.3).
FILL_TOL = 1e-9
# Weight changes below this are dust: no order even with min_change=0, so that
# float noise (a value 1 ulp apart) cannot create or suppress an order.
DUST_WEIGHT = 1e-9


@dataclass(frozen=True)
class ExecutionParams:
    """Execution settings common to every engine.

    ``commission`` is a fraction of traded notional (0.0005 = 5 bp),
    ``commission_fixed`` a flat fee per filled order, ``slippage`` a fraction
    of the open price (buys pay ``open*(1+s)``, sells get ``open*(1-s)``).
    ``volume_cap`` caps a fill at that fraction of the fill bar's volume (the
    remainder is cancelled); ``min_change`` skips a rebalance when
    ``|target - current weight| < min_change``; ``allow_short=False`` clips
    negative targets to 0.  ``leverage`` is the buying power on long opens
    (backtrader ``CommInfo`` leverage: opening a long consumes
    ``notional / leverage`` of margin cash); 1.0 is a pure cash account, where
    a target of exactly 1.0 is always rejected because commission does not fit.
    """

    cash: float = 100_000.0
    commission: float = 0.0005
    commission_fixed: float = 0.0
    slippage: float = 0.0005
    volume_cap: float | None = None
    min_change: float = 0.0
    allow_short: bool = True
    leverage: float = 2.0

    def __post_init__(self) -> None:
        checks = {
            "cash must be > 0": self.cash > 0,
            "commission must be >= 0": self.commission >= 0,
            "commission_fixed must be >= 0": self.commission_fixed >= 0,
            "slippage must be in [0, 1)": 0 <= self.slippage < 1,
            "volume_cap must be None or > 0": self.volume_cap is None or self.volume_cap > 0,
            "min_change must be >= 0": self.min_change >= 0,
            "leverage must be > 0": self.leverage > 0,
        }
        bad = [msg for msg, ok in checks.items() if not ok]
        if bad:
            raise ValueError("ExecutionParams: " + "; ".join(bad))


def fill_price(open_price: float, size: float, slippage: float) -> float:
    """Market fill price at the open: buys slip up, sells slip down."""
    return open_price * (1.0 + slippage) if size > 0 else open_price * (1.0 - slippage)


def commission_amount(size: float, price: float, pct: float, fixed: float = 0.0) -> float:
    """Percentage commission on ``|size| * price`` plus a fixed fee."""
    return abs(size) * pct * price + fixed


def cap_fill_size(size: float, volume: float, volume_cap: float | None) -> float:
    """Signed fill size after clipping ``|size|`` to ``volume_cap * volume``."""
    if volume_cap is None:
        return size
    cap = volume_cap * volume
    return size if abs(size) <= cap else math.copysign(cap, size)


def order_size(
    target: float, value: float, close: float, current: float, params: ExecutionParams
) -> float:
    """Signed order size that moves ``current`` shares to ``target`` weight (0.0 = no order).

    ``target_shares = target * value / close``; negative targets are clipped to
    0 when shorting is not allowed; the order is skipped when the weight change
    is below ``params.min_change`` (or below :data:`DUST_WEIGHT`) or when
    value/price are not positive.
    """
    if target != target or value <= 0 or close <= 0:
        return 0.0
    if not params.allow_short and target < 0:
        target = 0.0
    if abs(target - current * close / value) < max(params.min_change, DUST_WEIGHT):
        return 0.0
    return target * value / close - current


def position_update(
    size: float, avg_price: float, delta: float, price: float
) -> tuple[float, float, float, float]:
    """Apply ``delta`` shares at ``price`` to a position (mirror of backtrader ``Position.update``).

    Returns ``(new_size, new_avg_price, opened, closed)`` where ``opened`` and
    ``closed`` carry the sign of ``delta``: the parts that open/increase and
    close/reduce the position (a reversal has both).
    """
    new = size + delta
    if not new:
        return 0.0, 0.0, 0.0, delta
    if not size:
        return new, price, delta, 0.0
    if (size > 0 and delta > 0) or (size < 0 and delta < 0):  # increase
        return new, (avg_price * size + delta * price) / new, delta, 0.0
    if (new > 0) == (size > 0):  # reduce
        return new, avg_price, 0.0, delta
    return new, price, new, -size  # reversal
