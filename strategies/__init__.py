"""The strategy and its execution: forecasts -> target weights -> orders -> fills.

* :mod:`strategies.targets`: fused forecast -> target position per symbol (the
  cost-aware rule); :mod:`strategies.ranking`: cross-sectional top-k / drop-n targets.
* :mod:`strategies.strategy`: the one strategy (forecasts -> target weights), from its own
  :class:`strategies.params.StrategyParams`.
* :mod:`strategies.execution`: one entry point,
  ``execute``, over backtrader or the vectorized twin.

Works on pandas objects and its own parameter objects; imports nothing from ``engine``.

* ``run_backtrader(prices, targets, params)``: a real backtrader Cerebro run.
* ``run_vectorized(prices, targets, params)``: the fast twin (same semantics, same output).
* ``run_stepwise(...)`` / ``plan_orders`` + ``fill_orders`` on an ``AccountState``: the
  bar-step path for a paper broker.

Semantics (identical in all paths, see :mod:`strategies.account` and
:mod:`strategies.market`): at close ``t`` each symbol with a target gets
``target * value / close - shares`` (fractional; skipped when the weight change
is below ``min_change``), sells before buys; orders fill at open ``t+1`` at
``open * (1 +/- slippage)``, paying ``commission * notional + commission_fixed``
per filled order, capped at ``volume_cap * volume`` (rest ``cancelled``);
orders that do not fit the cash account are recorded as ``margin``.  Several
symbols share one account on the union of their calendars.  ``run_backtrader``
is imported lazily so paper trading does not load backtrader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lstmknn.strategies.account import (
    AccountState,
    OrderOutcome,
    OrderRequest,
    fill_orders,
    plan_orders,
    submission_check,
)
from lstmknn.strategies.costs import (
    ExecutionParams,
    cap_fill_size,
    commission_amount,
    fill_price,
    order_size,
)
from lstmknn.strategies.result import TRADE_COLUMNS, BacktestResult
from lstmknn.strategies.vectorized import run_stepwise, run_vectorized

if TYPE_CHECKING:
    from lstmknn.strategies.bt_engine import run_backtrader

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
        from lstmknn.strategies.bt_engine import run_backtrader

        return run_backtrader
    raise AttributeError(name)
