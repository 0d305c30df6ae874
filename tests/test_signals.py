import numpy as np

from engine.config import SignalConfig
from engine.signals import target_positions


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
