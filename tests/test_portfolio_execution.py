"""Several symbols with their own calendars in one cash account."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lstmknn.strategies import ExecutionParams, run_backtrader, run_stepwise, run_vectorized

ENGINES = {"backtrader": run_backtrader, "vectorized": run_vectorized, "stepwise": run_stepwise}
D = pd.bdate_range("2024-03-04", periods=5, name="date")
NAN = math.nan


def flat(prices: list[float], dates: pd.DatetimeIndex) -> pd.DataFrame:
    p = np.asarray(prices, dtype=float)
    return pd.DataFrame(
        {"open": p, "high": p, "low": p, "close": p, "volume": 1e9}, index=dates.rename("date")
    )


@pytest.fixture(params=list(ENGINES))
def run(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return ENGINES[request.param]


def test_union_calendar_by_hand(run) -> None:  # type: ignore[no-untyped-def]
    """Y has no bar on D2: no Y order fills there, Y is valued at its last close."""
    prices = {
        "X": flat([100, 110, 120, 130, 140], D),
        "Y": flat([50, 40, 60, 70], D.delete(2)),
    }
    t = pd.DataFrame({"X": [0.5, 0.5, NAN, NAN], "Y": [0.5, 0.5, 0.9, NAN]}, index=D[:4])
    res = run(prices, t, ExecutionParams(cash=10_000.0, commission=0.0, slippage=0.0))
    rows = res.trades[["date", "symbol", "side", "size", "price"]].to_numpy().tolist()
    sell = 50 - 5000 / 110
    assert rows == [
        [D[1], "X", "buy", pytest.approx(50.0), pytest.approx(110.0)],
        [D[1], "Y", "buy", pytest.approx(100.0), pytest.approx(40.0)],
        [D[2], "X", "sell", pytest.approx(sell), pytest.approx(120.0)],
    ]
    cash = 10_000.0 - 50 * 110 - 100 * 40 + sell * 120
    x = 50 - sell
    expected = [10_000.0, 10_000.0, cash + x * 120 + 100 * 40, cash + x * 130 + 100 * 60]
    expected.append(cash + x * 140 + 100 * 70)
    np.testing.assert_allclose(res.equity["value"], expected, rtol=1e-12)
    np.testing.assert_allclose(res.positions["Y"], [0, 100, 100, 100, 100])
    assert list(res.equity["date"]) == list(D)


def _frame(n: int, seed: int, level: float, start: str, drop: list[int]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range(start, periods=n, name="date")
    c = level * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    o = c * np.exp(rng.normal(0, 0.01, n))
    df = pd.DataFrame(
        {"open": o, "high": np.maximum(o, c), "low": np.minimum(o, c), "close": c},
        index=idx,
    ).assign(volume=rng.uniform(0.2, 1.0, n) * 5e4)
    return df.drop(df.index[drop])


@pytest.fixture(scope="module")
def portfolio() -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    a = _frame(260, 1, 7000.0, "2022-01-03", [30, 31, 90, 91, 92, 200])
    b = _frame(250, 2, 0.07, "2022-01-10", [15, 60, 61, 150])
    union = a.index.union(b.index)
    rng = np.random.default_rng(5)
    t = pd.DataFrame(
        {
            "A": rng.choice([-0.8, -0.4, 0.0, 0.5, 0.9], len(union)),
            "B": rng.choice([-0.6, 0.0, 0.3, 0.7, 1.1], len(union)),
        },
        index=union,
    ).iloc[12:]
    t.iloc[20:30, 1] = NAN  # B not trading for a while
    return {"A": a, "B": b}, t


PORTFOLIO_PARAMS = [
    ExecutionParams(cash=1_000.0, commission=0.001, commission_fixed=0.1, slippage=0.002),
    ExecutionParams(cash=1_000.0, leverage=1.0, commission_fixed=0.5),
    ExecutionParams(cash=50_000.0, volume_cap=0.01, allow_short=False, min_change=0.02),
]


@pytest.mark.parametrize("params", PORTFOLIO_PARAMS, ids=["costs", "cash-account", "capped"])
def test_portfolio_engines_agree(portfolio, params: ExecutionParams) -> None:  # type: ignore[no-untyped-def]
    prices, t = portfolio
    bt_res = run_backtrader(prices, t, params)
    tw_res = run_vectorized(prices, t, params)
    for other in (tw_res, run_stepwise(prices, t, params)):
        ret = (bt_res.equity["return"] - other.equity["return"]).abs().max()
        assert ret < 1e-9 and abs(bt_res.final_value / other.final_value - 1) < 1e-9
        pd.testing.assert_frame_equal(bt_res.trades, other.trades, rtol=1e-9, atol=1e-12)
        pd.testing.assert_frame_equal(bt_res.positions, other.positions, rtol=1e-9, atol=1e-12)
    assert set(tw_res.trades["symbol"]) == {"A", "B"}


def test_portfolio_trades_only_on_real_bars(portfolio) -> None:  # type: ignore[no-untyped-def]
    prices, t = portfolio
    res = run_vectorized(prices, t, PORTFOLIO_PARAMS[0])
    dates = res.equity["date"]
    prev = dict(zip(dates.iloc[1:], dates.iloc[:-1], strict=True))
    for d, sym in res.trades[["date", "symbol"]].itertuples(index=False):
        idx = prices[sym].index
        assert d in idx and prev[d] in idx  # decided and filled on the symbol's own bars
        assert not (sym == "B" and t.index[20] < d <= t.index[30])  # NaN target: no order
    # positions only change on that symbol's real bars
    for sym, df in prices.items():
        changed = res.positions[sym].diff().fillna(0.0) != 0
        assert changed[changed].index.isin(df.index).all()
    # one account: value = cash + sum(shares * last close), cash moves only with fills
    closes = pd.DataFrame({s: df["close"] for s, df in prices.items()}).ffill()
    closes = closes.reindex(res.positions.index)
    cash = res.equity.set_index("date")["value"] - (res.positions * closes).sum(axis=1)
    moved = cash.diff().abs() > 1e-9
    assert moved[moved].index.isin(res.trades["date"]).all()


def test_portfolio_fractional_sizes(portfolio) -> None:  # type: ignore[no-untyped-def]
    prices, t = portfolio
    res = run_vectorized(prices, t, PORTFOLIO_PARAMS[0])
    sizes = res.trades.loc[res.trades["symbol"] == "A", "size"]
    assert (sizes < 1).any()  # 1000 cash cannot buy a whole 7000 share: fractions trade


def test_input_validation() -> None:
    x = flat([1, 2, 3, 4, 5], D)
    with pytest.raises(ValueError, match="not in the price index"):
        run_vectorized(
            {"X": x},
            pd.DataFrame({"X": [1.0]}, index=[D[0] - pd.Timedelta(days=3)]),
            ExecutionParams(),
        )
    with pytest.raises(ValueError, match="without prices"):
        run_vectorized({"X": x}, pd.DataFrame({"Z": [1.0]}, index=D[:1]), ExecutionParams())
    with pytest.raises(ValueError, match="lacks columns"):
        run_vectorized(x.drop(columns="volume"), pd.Series([1.0], index=D[:1]), ExecutionParams())
