"""Hand-checked fills on a tiny price frame, for every engine.

Each scenario runs through backtrader, the vectorized twin and the stepwise
(paper-broker) path; all must give the numbers computed by hand here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lstmknn.strategies import ExecutionParams, run_backtrader, run_stepwise, run_vectorized
from lstmknn.strategies.result import TRADE_COLUMNS

ENGINES = {"backtrader": run_backtrader, "vectorized": run_vectorized, "stepwise": run_stepwise}
OPEN = [100.0, 102.0, 105.0, 101.0, 99.0]
CLOSE = [100.0, 104.0, 103.0, 100.0, 98.0]
DATES = pd.bdate_range("2024-01-01", periods=5, name="date")
COMM, SLIP, FIXED = 0.001, 0.01, 1.0


def tiny(volume: float = 1e6, scale: float = 1.0) -> pd.DataFrame:
    o, c = np.array(OPEN) * scale, np.array(CLOSE) * scale
    return pd.DataFrame(
        {
            "open": o,
            "high": np.maximum(o, c),
            "low": np.minimum(o, c),
            "close": c,
            "volume": volume,
        },
        index=DATES,
    )


def params(**kw: float) -> ExecutionParams:
    base = {"cash": 10_000.0, "commission": COMM, "slippage": SLIP, "commission_fixed": FIXED}
    return ExecutionParams(**(base | kw))


def targets(*values: float) -> pd.Series:
    return pd.Series(values, index=DATES[: len(values)], dtype=float)


@pytest.fixture(params=list(ENGINES))
def run(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return ENGINES[request.param]


def test_output_shapes(run) -> None:  # type: ignore[no-untyped-def]
    res = run(tiny(), targets(0.5, math.nan), params())
    assert list(res.equity.columns) == ["date", "value", "return"]
    assert list(res.equity["date"]) == list(DATES)  # first target date -> last price date
    assert res.equity["return"].iloc[0] == 0.0
    assert list(res.trades.columns) == TRADE_COLUMNS
    assert list(res.positions.columns) == ["asset"] and res.positions.index.name == "date"


def test_long_fills_next_open_with_costs(run) -> None:  # type: ignore[no-untyped-def]
    res = run(tiny(), targets(0.5), params())
    px = 102.0 * (1 + SLIP)  # bought at the next open, slipped up
    comm = 50 * px * COMM + FIXED  # 0.5 * 10000 / close 100 = 50 shares
    cash = 10_000.0 - 50 * px - comm
    t = res.trades.iloc[0]
    assert (t["date"], t["side"], t["status"]) == (DATES[1], "buy", "filled")
    assert (t["size"], t["price"], t["commission"]) == pytest.approx((50.0, px, comm))
    expected = [10_000.0] + [cash + 50 * c for c in CLOSE[1:]]
    np.testing.assert_allclose(res.equity["value"], expected, rtol=1e-12)
    np.testing.assert_allclose(res.positions["asset"], [0, 50, 50, 50, 50])
    assert res.commission_paid == pytest.approx(comm)
    assert res.slippage_cost == pytest.approx(50 * 102.0 * SLIP)


def test_costs_are_commission_plus_slippage_and_each_trade_carries_its_slippage(run) -> None:  # type: ignore[no-untyped-def]
    res = run(tiny(), targets(0.5, -0.5), params())
    slip = res.trades_with_costs()["slippage"]
    filled = res.trades["price"].notna()
    opens = pd.Series(OPEN, index=DATES).reindex(res.trades["date"]).to_numpy()
    expected = (res.trades["price"] - opens).abs() * res.trades["size"]
    np.testing.assert_allclose(slip[filled], expected[filled], rtol=1e-12)
    assert (slip[~filled] == 0.0).all()
    assert res.slippage_cost == pytest.approx(slip.sum()) and res.slippage_cost > 0
    assert res.commission_paid == pytest.approx(res.trades["commission"].sum())
    assert res.costs == pytest.approx(res.commission_paid + res.slippage_cost)


def test_short_credits_proceeds(run) -> None:  # type: ignore[no-untyped-def]
    res = run(tiny(), targets(-0.5), params())
    px = 102.0 * (1 - SLIP)
    comm = 50 * px * COMM + FIXED
    t = res.trades.iloc[0]
    assert (t["side"], t["size"], t["price"]) == ("sell", pytest.approx(50.0), pytest.approx(px))
    assert res.equity["value"].iloc[1] == pytest.approx(10_000.0 + 50 * px - comm - 50 * 104.0)
    assert res.positions["asset"].iloc[-1] == pytest.approx(-50.0)


def test_reversal_long_to_short_is_one_order(run) -> None:  # type: ignore[no-untyped-def]
    res = run(tiny(), targets(0.5, -0.5), params())
    px1 = 102.0 * (1 + SLIP)
    cash1 = 10_000.0 - 50 * px1 - (50 * px1 * COMM + FIXED)
    v1 = cash1 + 50 * 104.0
    short = -0.5 * v1 / 104.0
    size = 50 - short
    px2 = 105.0 * (1 - SLIP)
    comm2 = size * px2 * COMM + FIXED  # fixed fee once although it closes and opens
    assert len(res.trades) == 2
    t = res.trades.iloc[1]
    assert (t["date"], t["side"], t["status"]) == (DATES[2], "sell", "filled")
    assert (t["size"], t["price"], t["commission"]) == pytest.approx((size, px2, comm2))
    cash2 = cash1 + size * px2 - comm2
    assert res.positions["asset"].iloc[2] == pytest.approx(short)
    assert res.equity["value"].iloc[3] == pytest.approx(cash2 + short * 100.0)


def test_long_only_clips_negative_target(run) -> None:  # type: ignore[no-untyped-def]
    res = run(tiny(), targets(0.5, -0.5), params(allow_short=False))
    t = res.trades.iloc[1]
    assert (t["side"], t["size"], t["price"]) == (
        "sell",
        pytest.approx(50.0),
        pytest.approx(103.95),
    )
    assert res.positions["asset"].iloc[-1] == 0.0
    px1 = 102.0 * (1 + SLIP)
    cash = (
        10_000.0 - 50 * px1 - (50 * px1 * COMM + FIXED) + 50 * 103.95 - (50 * 103.95 * COMM + FIXED)
    )
    assert res.final_value == pytest.approx(cash)


def test_volume_cap_partial_fill_cancels_rest(run) -> None:  # type: ignore[no-untyped-def]
    res = run(tiny(volume=20.0), targets(0.5), params(volume_cap=0.5))
    px = 102.0 * (1 + SLIP)
    rows = res.trades[["status", "size", "price", "commission"]].to_numpy().tolist()
    assert rows[0] == [
        "partial",
        pytest.approx(10.0),
        pytest.approx(px),
        pytest.approx(10 * px * COMM + FIXED),
    ]
    assert rows[1][:2] == ["cancelled", pytest.approx(40.0)] and math.isnan(rows[1][2])
    assert len(rows) == 2  # the remainder is not retried on later bars
    np.testing.assert_allclose(res.positions["asset"], [0, 10, 10, 10, 10])


def test_zero_volume_bar_cancels_whole_order(run) -> None:  # type: ignore[no-untyped-def]
    prices = tiny()
    prices.loc[DATES[1], "volume"] = 0.0
    res = run(prices, targets(0.5), params(volume_cap=0.1))
    assert res.trades[["status", "size"]].to_numpy().tolist() == [
        ["cancelled", pytest.approx(50.0)]
    ]
    assert res.final_value == 10_000.0


def test_margin_at_submission_is_recorded(run) -> None:  # type: ignore[no-untyped-def]
    # cash account: 100% of equity plus commission does not fit at the decision close
    res = run(tiny(), targets(1.0), params(leverage=1.0))
    t = res.trades.iloc[0]
    assert (t["date"], t["side"], t["status"], t["commission"]) == (DATES[1], "buy", "margin", 0.0)
    assert t["size"] == pytest.approx(100.0) and math.isnan(t["price"])
    assert res.final_value == 10_000.0 and res.costs == 0.0


def test_margin_at_fill_after_gap_up(run) -> None:  # type: ignore[no-untyped-def]
    # 98 shares fit at the close of 100 but not at the open 102 * 1.01
    res = run(tiny(), targets(0.98), params(leverage=1.0))
    assert res.trades[["status", "size"]].to_numpy().tolist() == [["margin", pytest.approx(98.0)]]
    # with 2x buying power it fills
    res2 = run(tiny(), targets(0.98), params(leverage=2.0))
    assert res2.trades["status"].tolist() == ["filled"]


def test_reversal_opening_leg_refused_keeps_the_close(run) -> None:  # type: ignore[no-untyped-def]
    # short -> long in a cash account: passes the check at close 104, but at the
    # open 105 * 1.01 the cover fills and the new long no longer fits
    res = run(tiny(), targets(-0.5, 0.98), params(leverage=1.0))
    rows = res.trades[["date", "status"]].to_numpy().tolist()
    assert rows == [[DATES[1], "filled"], [DATES[2], "partial"], [DATES[2], "margin"]]
    assert res.positions["asset"].iloc[2] == 0.0
    assert res.trades["size"].iloc[1] == pytest.approx(50.0)


def test_fractional_shares_at_7000_with_1000_cash(run) -> None:  # type: ignore[no-untyped-def]
    res = run(tiny(scale=70.0), targets(0.9), params(cash=1000.0, commission_fixed=0.0))
    shares = 0.9 * 1000.0 / 7000.0
    t = res.trades.iloc[0]
    assert t["status"] == "filled" and t["size"] == pytest.approx(shares)
    assert t["price"] == pytest.approx(7140.0 * (1 + SLIP))
    assert res.positions["asset"].iloc[-1] == pytest.approx(shares)


def test_nan_and_last_bar_targets_send_nothing(run) -> None:  # type: ignore[no-untyped-def]
    t = pd.Series([math.nan, math.nan, math.nan, math.nan, 1.0], index=DATES)
    res = run(tiny(), t, params())
    assert res.trades.empty and res.final_value == 10_000.0
    assert len(res.equity) == 5


def test_equity_starts_at_first_target_date(run) -> None:  # type: ignore[no-untyped-def]
    t = pd.Series([0.5, 0.5], index=DATES[2:4])
    res = run(tiny(), t, params())
    assert list(res.equity["date"]) == list(DATES[2:])
    assert res.trades["date"].iloc[0] == DATES[3]


def test_whole_reversal_refused_at_submission(run) -> None:  # type: ignore[no-untyped-def]
    # checked at the decision close, as backtrader does: cover + new long do not fit
    res = run(tiny(), targets(-0.5, 1.0), params(leverage=1.0))
    assert res.trades["status"].tolist() == ["filled", "margin"]
    assert res.positions["asset"].iloc[-1] == pytest.approx(-50.0)


def test_zero_costs_equity_is_cash_plus_shares(run) -> None:  # type: ignore[no-untyped-def]
    p = ExecutionParams(cash=10_000.0, commission=0.0, slippage=0.0)
    res = run(tiny(), targets(1.0), p)
    cash = 10_000.0 - 100.0 * 102.0  # bought 100 shares at the next open (2x buying power)
    np.testing.assert_allclose(
        res.equity["value"], [10_000.0] + [cash + 100 * c for c in CLOSE[1:]]
    )
    assert res.costs == 0.0 and res.slippage_cost == 0.0
