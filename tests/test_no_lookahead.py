"""No look-ahead, as a property: predictions up to T ignore everything after T."""

import numpy as np
import pandas as pd
import pytest

from lstmknn.engine.config import with_overrides
from lstmknn.engine.walk_forward import run_walk_forward

COLUMNS = ["lstm", "knn", "fused", "alpha", "regime", "lstm_conf", "knn_conf", "train_mean"]


def _upto(pred: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    return pred[pred["date"] <= cut][["date", *COLUMNS]].reset_index(drop=True)


@pytest.mark.parametrize("method", ["regime", "fixed", "regime_learned", "stacking"])
def test_truncating_or_altering_data_after_t_changes_no_prediction_up_to_t(small_cfg, small_prices, method):
    cfg = with_overrides(small_cfg, {"fusion.method": method, "lstm.mc_passes": 3})
    full = run_walk_forward(small_prices, cfg).predictions
    cut = small_prices.index[340]
    truncated = run_walk_forward(small_prices.loc[:cut], cfg).predictions
    altered_prices = small_prices.copy()
    after = altered_prices.index > cut
    rng = np.random.default_rng(0)
    shock = np.exp(rng.normal(0, 0.05, after.sum()).cumsum())
    for col in ("open", "high", "low", "close"):
        altered_prices.loc[after, col] *= shock
    altered_prices.loc[after, "volume"] *= 3
    altered = run_walk_forward(altered_prices, cfg).predictions
    expected = _upto(full, cut)
    assert len(expected) > 50
    if method in ("regime_learned", "stacking"):
        assert (full["fusion_used"] == method).any(), "learned fusion never kicked in"
    pd.testing.assert_frame_equal(_upto(truncated, cut), expected, check_exact=True)
    pd.testing.assert_frame_equal(_upto(altered, cut), expected, check_exact=True)
    # and the alteration is visible after T, so the test could fail
    later = full["date"] > cut
    assert not np.allclose(full.loc[later, "knn"], altered.loc[later.to_numpy(), "knn"])


def test_label_of_the_decision_bar_is_not_used_for_training(small_cfg, small_prices):
    """Changing only the close after the last decision bar leaves every prediction as it was."""
    full = run_walk_forward(small_prices, small_cfg).predictions
    changed = small_prices.copy()
    changed.iloc[-1, changed.columns.get_loc("close")] *= 1.5
    changed.iloc[-1, changed.columns.get_loc("high")] *= 1.5
    again = run_walk_forward(changed, small_cfg).predictions
    pd.testing.assert_frame_equal(again.iloc[:-1][COLUMNS], full.iloc[:-1][COLUMNS], check_exact=True)
    assert np.isnan(full["y_true"].iloc[-1])
