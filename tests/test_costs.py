"""Pure fill/cost model and the bar-step account (paper-broker API)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from backtrader.position import Position

from lstmknn.strategies import (
    AccountState,
    ExecutionParams,
    OrderRequest,
    cap_fill_size,
    commission_amount,
    fill_orders,
    fill_price,
    order_size,
    plan_orders,
)
from lstmknn.strategies.costs import position_update


def test_params_defaults_and_validation() -> None:
    p = ExecutionParams()
    assert (p.cash, p.commission, p.commission_fixed, p.slippage) == (
        100_000.0,
        0.0005,
        0.0,
        0.0005,
    )
    assert p.volume_cap is None and p.min_change == 0.0 and p.allow_short is True
    with pytest.raises(ValueError, match="slippage"):
        ExecutionParams(slippage=-0.1)
    with pytest.raises(ValueError, match="cash"):
        ExecutionParams(cash=0.0)
    with pytest.raises(AttributeError):
        p.cash = 1.0  # type: ignore[misc]


def test_fill_price_and_commission() -> None:
    assert fill_price(100.0, 3.0, 0.01) == pytest.approx(101.0)
    assert fill_price(100.0, -3.0, 0.01) == pytest.approx(99.0)
    assert commission_amount(-2.0, 50.0, 0.001, 1.5) == pytest.approx(2 * 50 * 0.001 + 1.5)
    # arrays work too (used by the twin to precompute fill prices)
    np.testing.assert_allclose(fill_price(np.array([10.0, 20.0]), 1.0, 0.5), [15.0, 30.0])


def test_cap_fill_size() -> None:
    assert cap_fill_size(50.0, 20.0, None) == 50.0
    assert cap_fill_size(50.0, 20.0, 0.5) == 10.0
    assert cap_fill_size(-50.0, 20.0, 0.5) == -10.0
    assert cap_fill_size(-5.0, 20.0, 0.5) == -5.0
    assert cap_fill_size(5.0, 0.0, 0.5) == 0.0


def test_order_size_rules() -> None:
    p = ExecutionParams()
    assert order_size(0.5, 10_000.0, 100.0, 0.0, p) == pytest.approx(50.0)
    assert order_size(-1.0, 10_000.0, 100.0, 20.0, p) == pytest.approx(-120.0)
    assert order_size(math.nan, 10_000.0, 100.0, 20.0, p) == 0.0
    assert order_size(1.0, -5.0, 100.0, 20.0, p) == 0.0  # no orders from a blown account
    long_only = ExecutionParams(allow_short=False)
    assert order_size(-1.0, 10_000.0, 100.0, 20.0, long_only) == pytest.approx(-20.0)
    lazy = ExecutionParams(min_change=0.1)
    assert order_size(0.25, 10_000.0, 100.0, 20.0, lazy) == 0.0  # weight 0.20 -> 0.25
    assert order_size(0.35, 10_000.0, 100.0, 20.0, lazy) == pytest.approx(15.0)
    # min_change=0 rebalances to the exact target, but float dust is not an order
    assert order_size(0.2, 10_000.0, 100.0, 20.0 + 1e-12, p) == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_position_update_mirrors_backtrader(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(300):
        size = float(rng.choice([0.0, rng.normal() * 10]))
        price = float(rng.uniform(1, 100))
        delta = float(rng.choice([-size, rng.normal() * 10, -2 * size]))
        pos = Position(size=size, price=price if size else 0.0)
        expected = pos.update(delta, 42.0)
        got = position_update(size, price if size else 0.0, delta, 42.0)
        assert got == expected


def test_paper_broker_step() -> None:
    """plan at a close, fill at the next open: the API a paper broker uses."""
    p = ExecutionParams(cash=10_000.0, commission=0.001, slippage=0.01, commission_fixed=1.0)
    state = AccountState(cash=p.cash)
    orders = plan_orders(state, {"X": 0.5, "Y": math.nan}, {"X": 100.0, "Y": 10.0}, p)
    assert orders == [OrderRequest("X", 50.0, 100.0)]
    out = fill_orders(state, orders, {"X": 102.0}, {"X": 1e6}, p)
    assert [(o.symbol, o.side, o.status) for o in out] == [("X", "buy", "filled")]
    assert out[0].price == pytest.approx(103.02)
    assert out[0].commission == pytest.approx(50 * 103.02 * 0.001 + 1.0)
    assert state.positions["X"] == pytest.approx(50.0)
    assert state.cash == pytest.approx(10_000.0 - 50 * 103.02 - out[0].commission)
    assert state.value({"X": 104.0}) == pytest.approx(state.cash + 50 * 104.0)


def test_submission_check_is_cumulative_sells_first() -> None:
    """Sells are planned first so that their proceeds fund the buys of the same bar."""
    p = ExecutionParams(cash=1_000.0, commission=0.0, slippage=0.0, leverage=1.0)
    state = AccountState(cash=0.0, positions={"A": 10.0, "B": 0.0}, avg_price={"A": 100.0})
    close = {"A": 100.0, "B": 50.0}
    orders = plan_orders(state, {"B": 1.0, "A": 0.0}, close, p)
    assert [o.symbol for o in orders] == ["A", "B"]
    out = fill_orders(state, orders, close, None, p)
    assert [o.status for o in out] == ["filled", "filled"]
    assert state.positions == {"A": 0.0, "B": pytest.approx(20.0)}
    # the buy alone, without the sale, does not fit in a cash account
    broke = AccountState(cash=0.0, positions={"A": 10.0}, avg_price={"A": 100.0})
    out = fill_orders(broke, [OrderRequest("B", 20.0, 50.0)], close, None, p)
    assert [o.status for o in out] == ["margin"] and broke.positions == {"A": 10.0}
