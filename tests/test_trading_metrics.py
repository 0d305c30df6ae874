"""Strategy statistics and the annualisation-factor inference."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from lstmknn.reports.trading_metrics import (
    activity_metrics,
    drawdown_series,
    infer_periods_per_year,
    metrics_table,
    strategy_metrics,
)

R = [0.1, -0.05, 0.02, -0.1, 0.04]


def test_hand_computed_metrics() -> None:
    ppy = 252.0
    m = strategy_metrics(pd.Series(R), ppy)
    wealth = [1.1, 1.1 * 0.95]
    wealth += [wealth[-1] * 1.02, wealth[-1] * 1.02 * 0.9]
    wealth += [wealth[-1] * 1.04]
    total = wealth[-1] - 1
    mean = sum(R) / 5
    sd = math.sqrt(sum((x - mean) ** 2 for x in R) / 4)
    downside = math.sqrt((0.05**2 + 0.1**2) / 5)
    cagr = (1 + total) ** (ppy / 5) - 1
    mdd = wealth[3] / 1.1 - 1
    assert m["total_return"] == pytest.approx(total)
    assert m["cagr"] == pytest.approx(cagr)
    assert m["volatility"] == pytest.approx(sd * math.sqrt(ppy))
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(ppy))
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(ppy))
    assert m["max_drawdown"] == pytest.approx(mdd)
    assert m["calmar"] == pytest.approx(cagr / abs(mdd))
    assert m["n_periods"] == 5
    assert m["periods_per_year"] == ppy


def test_periods_per_year_is_not_hardcoded() -> None:
    daily = strategy_metrics(pd.Series(R), 252)
    hourly = strategy_metrics(pd.Series(R), 1638)
    assert hourly["sharpe"] / daily["sharpe"] == pytest.approx(math.sqrt(1638 / 252))
    assert hourly["volatility"] / daily["volatility"] == pytest.approx(math.sqrt(1638 / 252))
    assert hourly["cagr"] != pytest.approx(daily["cagr"])


def test_periods_inferred_or_required() -> None:
    s = pd.Series(R, index=pd.bdate_range("2024-01-01", periods=5))
    assert strategy_metrics(s)["periods_per_year"] == 252.0
    with pytest.raises(ValueError):
        strategy_metrics(pd.Series(R))
    with pytest.raises(ValueError):
        strategy_metrics(s, 0)


def test_drawdown_counts_first_period_loss() -> None:
    dd = drawdown_series(pd.Series([-0.1, 0.05, 0.1]))
    assert dd.iloc[0] == pytest.approx(-0.1)
    assert dd.iloc[-1] == pytest.approx(0.0)
    assert strategy_metrics(pd.Series([-0.1, 0.05]), 252)["max_drawdown"] == pytest.approx(-0.1)


def test_degenerate_series() -> None:
    empty = strategy_metrics(pd.Series([], dtype=float), 252)
    assert empty["n_periods"] == 0 and math.isnan(empty["sharpe"])
    flat = strategy_metrics(pd.Series([0.0, 0.0, 0.0]), 252)
    assert flat["total_return"] == 0 and math.isnan(flat["sharpe"]) and math.isnan(flat["calmar"])
    wiped = strategy_metrics(pd.Series([0.5, -1.0]), 252)
    assert wiped["cagr"] == -1.0 and wiped["max_drawdown"] == pytest.approx(-1.0)


def test_cross_check_with_quantstats() -> None:
    qs = pytest.importorskip("quantstats")
    rng = np.random.default_rng(7)
    s = pd.Series(rng.normal(4e-4, 0.01, 400), index=pd.bdate_range("2020-01-01", periods=400))
    m = strategy_metrics(s, 252)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert m["sharpe"] == pytest.approx(qs.stats.sharpe(s, periods=252), rel=1e-6)
        assert m["max_drawdown"] == pytest.approx(qs.stats.max_drawdown(s), rel=1e-6)
        assert m["volatility"] == pytest.approx(qs.stats.volatility(s, periods=252), rel=1e-6)
        assert m["total_return"] == pytest.approx(qs.stats.comp(s), rel=1e-9)


def test_activity_metrics() -> None:
    idx = pd.bdate_range("2024-01-01", periods=4)
    positions = pd.DataFrame({"SPY": [0, 10, 10, 0]}, index=idx)
    trades = pd.DataFrame(
        {
            "date": [idx[1], idx[3], idx[3]],
            "symbol": "SPY",
            "side": ["buy", "sell", "buy"],
            "size": [10.0, -10.0, 5.0],
            "price": [100.0, 110.0, 110.0],
            "commission": [1.0, 1.1, 0.0],
            "status": ["Completed", "Completed", "Canceled"],
        }
    )
    equity = pd.DataFrame({"date": idx, "value": [1000.0, 1000.0, 1050.0, 1100.0]})
    a = activity_metrics(positions, trades, equity, 252)
    assert a["exposure"] == 0.5
    assert a["n_trades"] == 2
    assert a["total_commission"] == pytest.approx(2.1)
    assert a["turnover"] == pytest.approx((1000 + 1100) / 1037.5 / (4 / 252))
    m = strategy_metrics(pd.Series([0.0, 0.0, 0.05, 0.0476]), 252, positions=positions)
    assert m["exposure"] == 0.5


def test_metrics_table() -> None:
    t = metrics_table({"s": pd.Series(R), "b": pd.Series([0.01] * 5)}, 252)
    assert list(t.columns) == ["s", "b"]
    assert t.loc["n_periods", "b"] == 5


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (pd.bdate_range("2020-01-01", periods=300), 252.0),
        (pd.date_range("2020-01-01", periods=300, freq="D"), 365.0),
        (pd.date_range("2020-01-03", periods=100, freq="W-FRI"), 52.0),
        (pd.date_range("2020-01-31", periods=36, freq="ME"), 12.0),
        (pd.date_range("2020-03-31", periods=12, freq="QE"), 4.0),
        (pd.date_range("2000-12-31", periods=10, freq="YE"), 1.0),
        (pd.date_range("2020-01-01", periods=24 * 60, freq="h"), 365.0 * 24),
        (pd.DatetimeIndex(["2020-01-01"]), 252.0),
    ],
)
def test_infer_periods_per_year(index: pd.DatetimeIndex, expected: float) -> None:
    assert infer_periods_per_year(index) == pytest.approx(expected)


def _session(freq: str, end: str) -> pd.DatetimeIndex:
    days = pd.bdate_range("2024-01-01", periods=40)
    return pd.DatetimeIndex(
        np.concatenate(
            [pd.date_range(f"{d:%Y-%m-%d} 09:30", f"{d:%Y-%m-%d} {end}", freq=freq) for d in days]
        )
    )


def test_infer_intraday_sessions() -> None:
    assert infer_periods_per_year(_session("h", "15:30")) == pytest.approx(252 * 6.5)
    assert infer_periods_per_year(_session("min", "15:59")) == pytest.approx(252 * 390)
    tz = _session("h", "15:30").tz_localize("America/New_York")
    assert infer_periods_per_year(tz) == pytest.approx(252 * 6.5)


def test_costs_are_commission_plus_slippage_when_trades_record_slippage() -> None:
    idx = pd.bdate_range("2024-01-01", periods=3)
    trades = pd.DataFrame({"date": idx, "size": [10.0, 10.0, 4.0], "price": [100.0, 101.0, None],
                           "commission": [1.0, 1.5, 0.0], "slippage": [0.5, 0.25, 0.0],
                           "status": ["filled", "partial", "cancelled"]})
    a = activity_metrics(None, trades, None, 252)
    assert a["total_commission"] == pytest.approx(2.5)  # the partial fill's commission too
    assert a["slippage_cost"] == pytest.approx(0.75)
    assert a["costs"] == pytest.approx(3.25)
    assert "costs" not in activity_metrics(None, trades.drop(columns="slippage"), None, 252)
