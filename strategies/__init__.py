"""Execution layer: target weights -> orders -> fills, via backtrader or the vectorized twin.

Works only on pandas objects; imports nothing from ``engine``/``reports``.
``run_backtrader`` is imported lazily so paper trading does not load backtrader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strategies.account import (
    AccountState,
    OrderOutcome,
    OrderRequest,
    fill_orders,
    plan_orders,
    submission_check,
)
from strategies.costs import (
    ExecutionParams,
    cap_fill_size,
    commission_amount,
    fill_price,
    order_size,
)
from strategies.result import TRADE_COLUMNS, BacktestResult
from strategies.vectorized import run_stepwise, run_vectorized

if TYPE_CHECKING:
    from strategies.bt_engine import run_backtrader

__all__ = [
    "TRADE_COLUMNS",
    "AccountState",
    "BacktestResult",
    "ExecutionParams",
    "OrderOutcome",
    "OrderRequest",
    "cap_fill_size",
    "commission_amount",
    "fill_orders",
    "fill_price",
    "order_size",
    "plan_orders",
    "run_backtrader",
    "run_stepwise",
    "run_vectorized",
    "submission_check",
]


def __getattr__(name: str) -> Any:
    if name == "run_backtrader":
        from strategies.bt_engine import run_backtrader

        return run_backtrader
    raise AttributeError(name)
