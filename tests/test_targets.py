import numpy as np

from lstmknn.engine.config import SignalConfig
from lstmknn.strategies.targets import target_positions


def test_threshold_sizing_goes_long_short_or_flat():
    t = target_positions(np.array([0.002, -0.002, 0.0005, -0.0005]), SignalConfig(threshold=0.001))
    np.testing.assert_array_equal(t, [1, -1, 0, 0])


def test_long_only_never_shorts():
    t = target_positions(np.array([0.01, -0.01]), SignalConfig(long_only=True))
    np.testing.assert_array_equal(t, [1, 0])


def test_proportional_sizing_is_clipped_at_max_leverage():
    cfg = SignalConfig(sizing="proportional", scale=0.01, max_leverage=1.5)
    np.testing.assert_allclose(target_positions(np.array([0.005, 0.05, -0.02]), cfg), [0.75, 1.5, -1.5])


def test_vol_targeting_scales_down_in_turbulent_markets():
    cfg = SignalConfig(sizing="vol_target", target_vol=0.10, max_leverage=2.0)
    t = target_positions(np.array([0.01, 0.01]), cfg, vol=np.array([0.005, 0.03]), periods_per_year=252)
    np.testing.assert_allclose(t, [min(2.0, 0.10 / (0.005 * np.sqrt(252))), 0.10 / (0.03 * np.sqrt(252))])


def test_no_position_changes_when_the_forecast_is_below_the_cost_rate():
    rng = np.random.default_rng(3)
    fused = rng.normal(0, 0.002, 2000)
    cost = 0.001
    t = target_positions(fused, SignalConfig(), cost_rate=cost)
    changed = np.flatnonzero(np.diff(np.concatenate([[0.0], t])) != 0)
    assert len(changed) > 10  # the rule still trades on large forecasts
    up = np.diff(np.concatenate([[0.0], t]))[changed] > 0
    assert (fused[changed][up] > cost).all()
    assert (fused[changed][~up] < -cost).all()
    small = np.abs(fused) <= cost
    held = np.concatenate([[0.0], t[:-1]])
    np.testing.assert_array_equal(t[small], held[small])


def test_with_zero_costs_the_cost_aware_rule_is_the_sign_of_the_forecast():
    fused = np.array([0.003, -0.001, 0.0, 0.002, -0.004, 0.0005, 0.0])
    t = target_positions(fused, SignalConfig(), cost_rate=0.0)
    np.testing.assert_array_equal(t, np.sign(fused))


def test_cost_aware_rule_can_be_switched_off_in_one_config_line():
    fused = np.array([0.0002, -0.0002, 0.0002])
    on = target_positions(fused, SignalConfig(), cost_rate=0.001)
    off = target_positions(fused, SignalConfig(cost_aware=False), cost_rate=0.001)
    np.testing.assert_array_equal(on, [0, 0, 0])
    np.testing.assert_array_equal(off, [1, -1, 1])


def test_portfolio_capital_follows_the_symbols_that_trade_and_never_knows_a_symbol_will_end():
    import pandas as pd

    from lstmknn.engine.config import Config
    from lstmknn.engine.params import strategy_for

    dates = pd.date_range("2020-01-01", periods=6, freq="D")
    a = pd.DataFrame({"date": dates, "symbol": "a", "fused": 0.01, "vol": 0.01})
    b = pd.DataFrame({"date": dates[2:4], "symbol": "b", "fused": 0.01, "vol": 0.01})
    out = strategy_for(Config(), 252.0).targets(pd.concat([a, b], ignore_index=True))
    ta = out[out.symbol == "a"].set_index("date")["target"]
    tb = out[out.symbol == "b"].set_index("date")["target"]
    assert ta.iloc[0] == 1.0  # alone: all the capital, not half of it idle
    assert ta.loc[dates[2]] == 0.5 and tb.loc[dates[2]] == 0.5
    # b's last decision is a decision: that its data ends is not known at that close
    assert tb.loc[dates[3]] == 0.5 and ta.loc[dates[4]] == 1.0


def test_the_exchange_closes_out_a_symbol_whose_bars_end_before_the_others_at_its_last_open():
    import numpy as np
    import pandas as pd

    from lstmknn.strategies.market import market_data

    dates = pd.date_range("2020-01-01", periods=6, freq="D")
    bar = {"open": 10.0, "high": 10.0, "low": 10.0, "close": 10.0, "volume": 1e6}
    prices = {"a": pd.DataFrame(bar, index=dates), "b": pd.DataFrame(bar, index=dates[:4])}
    targets = pd.DataFrame({"a": 0.5, "b": 0.5}, index=dates)
    md = market_data(prices, targets)
    b = md.targets[:, md.symbols.index("b")]
    # decided flat at the close before its last bar (filled at that bar's open), then no bar
    assert b[2] == 0.0 and np.isnan(b[3:]).all() and (b[:2] == 0.5).all()
    assert (md.targets[:-1, md.symbols.index("a")] == 0.5).all()
