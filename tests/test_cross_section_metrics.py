"""Cross-sectional IC, quantile returns and turnover: by hand and on planted-signal universes."""

import math

import numpy as np
import pandas as pd
import pytest

from lstmknn.data.synthetic import make_universe, null_universe, planted_ic
from lstmknn.reports.cross_section import (
    forecast_autocorrelation,
    ic_by_date,
    ic_summary,
    plot_cumulative_spread,
    plot_ic,
    plot_quantile_returns,
    quantile_returns,
    spread_series,
    turnover,
)


def _frame() -> pd.DataFrame:
    d1, d2 = pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03")
    return pd.DataFrame({
        "date": [d1] * 4 + [d2] * 4,
        "symbol": list("abcd") * 2,
        "f": [1.0, 2.0, 3.0, 4.0, 4.0, 3.0, 1.0, 2.0],
        "y_true": [0.01, 0.03, 0.02, 0.05, -0.01, 0.0, 0.02, 0.01],
    })


def test_ic_by_date_matches_a_hand_computed_pearson_and_spearman():
    ic = ic_by_date(_frame(), "f")
    x, y = np.array([1, 2, 3, 4.0]), np.array([0.01, 0.03, 0.02, 0.05])
    dx, dy = x - x.mean(), y - y.mean()
    by_hand = (dx @ dy) / math.sqrt((dx @ dx) * (dy @ dy))
    assert ic.iloc[0] == pytest.approx(by_hand)
    assert ic.iloc[0] == pytest.approx(0.8315218, abs=1e-6)
    rank = ic_by_date(_frame(), "f", method="spearman")
    # day 1 ranks: f 1,2,3,4 vs y 1,3,2,4 -> 1 - 6*2/(4*15) = 0.8
    assert rank.iloc[0] == pytest.approx(0.8)
    # day 2: f ranks 4,3,1,2 vs y ranks 1,2,4,3 -> perfectly reversed
    assert rank.iloc[1] == pytest.approx(-1.0)


def test_summary_has_the_contract_keys_and_mean_icir_tstat_positive_share():
    s = ic_summary(_frame(), ["f"])["f"]
    assert set(s) >= {"ic", "rank_ic", "icir", "ic_tstat", "positive_share", "n_dates"}
    ic = ic_by_date(_frame(), "f")
    assert s["ic"] == pytest.approx(ic.mean())
    assert s["icir"] == pytest.approx(ic.mean() / ic.std(ddof=1))
    assert s["ic_tstat"] == pytest.approx(s["icir"] * math.sqrt(2))
    assert s["positive_share"] == 0.5 and s["n_dates"] == 2
    assert s["rank_ic"] == pytest.approx((0.8 - 1.0) / 2)


def test_dates_with_one_name_or_a_constant_forecast_are_left_out():
    f = _frame()
    f.loc[f["date"] == f["date"].iloc[-1], "f"] = 2.0
    extra = pd.DataFrame({"date": [pd.Timestamp("2020-01-06")], "symbol": ["a"], "f": [1.0], "y_true": [0.1]})
    ic = ic_by_date(pd.concat([f, extra]), "f")
    assert list(ic.index) == [pd.Timestamp("2020-01-02")]


def test_quantile_returns_and_spread_by_hand():
    q = quantile_returns(_frame(), "f", n=2)
    # day 1: low half (f 1, 2) -> 0.02, high half (3, 4) -> 0.035; day 2: low (1, 2) -> 0.015, high -> -0.005
    assert q["mean"][1] == pytest.approx((0.02 + 0.015) / 2)
    assert q["mean"][2] == pytest.approx((0.035 - 0.005) / 2)
    assert q["spread"] == pytest.approx(q["mean"][2] - q["mean"][1])
    assert q["n_dates"] == 2
    assert len(spread_series(_frame(), "f", n=2)) == 2


def test_turnover_counts_half_the_weight_change_and_carries_missing_names():
    d = pd.to_datetime(["2020-01-02", "2020-01-02", "2020-01-03", "2020-01-06", "2020-01-06"])
    t = pd.DataFrame({"date": d, "symbol": ["a", "b", "a", "a", "b"],
                      "target": [0.5, 0.5, 0.0, 0.0, 1.0]})
    to = turnover(t)
    # first day builds 1.0 of positions; day 2 sells a (b has no bar and stays); day 3 b 0.5 -> 1.0
    np.testing.assert_allclose(to.to_numpy(), [0.5, 0.25, 0.25])


def _with_noisy_signal(frame: pd.DataFrame, noise: float, seed: int = 1) -> pd.DataFrame:
    f = frame.sort_values(["symbol", "date"]).copy()
    f["y_true"] = f.groupby("symbol")["close"].shift(-1) / f["close"] - 1.0
    rng = np.random.default_rng(seed)
    f["forecast"] = f["signal"] + noise * rng.standard_normal(len(f))
    return f.dropna(subset=["y_true"])


def test_planted_universe_ic_is_recovered_within_its_standard_error():
    ic, noise = 0.08, 1.0
    f = _with_noisy_signal(make_universe(200, 400, ic=ic, seed=3), noise)
    s = ic_summary(f, ["forecast", "signal"])
    for col, planted in (("signal", ic), ("forecast", planted_ic(ic, noise))):
        per_date = ic_by_date(f, col)
        se = per_date.std(ddof=1) / math.sqrt(len(per_date))
        assert abs(s[col]["ic"] - planted) < 3 * se, (col, s[col]["ic"], planted, se)
    assert s["signal"]["ic_tstat"] > 10


def test_null_universe_ic_is_indistinguishable_from_zero():
    f = _with_noisy_signal(null_universe(200, 400, seed=4), 0.5)
    s = ic_summary(f, ["forecast", "signal"])
    for col in ("forecast", "signal"):
        assert abs(s[col]["ic_tstat"]) < 3
        assert 0.4 < s[col]["positive_share"] < 0.6


def test_signal_is_visible_in_the_close_location_of_the_bar():
    f = make_universe(5, 50, ic=0.1, seed=0)
    loc = (f["close"] - f["low"]) / (f["high"] - f["low"])
    assert np.corrcoef(loc, f["signal"])[0, 1] > 0.9
    assert (f["high"] >= f[["open", "close"]].max(axis=1)).all()
    assert (f["low"] <= f[["open", "close"]].min(axis=1)).all()


def test_figures_render_with_data_and_without():
    f = _with_noisy_signal(make_universe(30, 60, ic=0.1, seed=0), 1.0)
    ic = ic_by_date(f, "forecast")
    for fig in (plot_ic(ic), plot_ic(ic.iloc[:0]), plot_quantile_returns(quantile_returns(f, "forecast")),
                plot_cumulative_spread(spread_series(f, "forecast"))):
        assert fig.axes
        fig.canvas.draw()


def test_a_persistent_signal_has_high_rank_autocorrelation_and_an_iid_one_none():
    slow = make_universe(40, 80, signal_persistence=0.95, seed=0)
    fast = make_universe(40, 80, signal_persistence=0.0, seed=0)
    assert forecast_autocorrelation(slow, "signal") > 0.8
    assert abs(forecast_autocorrelation(fast, "signal")) < 0.1
