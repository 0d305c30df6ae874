import numpy as np
import pandas as pd

from lstmknn.engine.config import Config, with_overrides
from lstmknn.engine.fusion import fuse, learned_alpha


def test_learned_alpha_is_the_closed_form_least_squares_weight():
    rng = np.random.default_rng(0)
    lstm, knn = rng.normal(size=200), rng.normal(size=200)
    y = 0.3 * lstm + 0.7 * knn
    y = y + 0.1 * rng.normal(size=200)
    grid = np.linspace(0, 1, 100001)
    sse = [np.sum((y - (a * lstm + (1 - a) * knn)) ** 2) for a in grid]
    assert abs(learned_alpha(lstm, knn, y) - grid[int(np.argmin(sse))]) < 1e-4
    assert learned_alpha(lstm, knn, 10 * lstm) == 1.0  # clipped to [0, 1]
    assert learned_alpha(lstm, knn, -10 * lstm) == 0.0


def _frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    lstm, knn = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame({"y_true": 0.2 * lstm + 0.8 * knn, "lstm": lstm, "knn": knn,
                         "regime": np.where(np.arange(n) % 3 == 0, "volatile", "calm"),
                         "lstm_conf": np.nan, "knn_conf": rng.normal(size=n)})


def test_learned_fusion_uses_only_rows_known_before_each_fold():
    df = _frame()
    test_start = np.repeat(np.arange(0, 200, 20), 20)
    known = np.arange(200) + 1
    cfg = with_overrides(Config(), {"fusion.method": "regime_learned", "fusion.min_history": 40})
    out = fuse(df, known, test_start, cfg, ["lstm"])
    # early folds fall back, later ones learn alpha close to 0.2
    assert (out["fusion_used"].iloc[:40] == "regime_fallback").all()
    assert (out["fusion_used"].iloc[60:] == "regime_learned").all()
    assert np.allclose(out["alpha"].iloc[60:], 0.2)
    # poisoning the labels of the last fold changes nothing in that fold
    poisoned = df.copy()
    poisoned.loc[180:, "y_true"] = 100.0
    again = fuse(poisoned, known, test_start, cfg, ["lstm"])
    pd.testing.assert_series_equal(out["fused"].iloc[:200], again["fused"].iloc[:200])


def test_stacking_learns_the_combination_and_falls_back_until_min_history():
    df = _frame()
    test_start = np.repeat(np.arange(0, 200, 20), 20)
    cfg = with_overrides(Config(), {"fusion.method": "stacking", "fusion.min_history": 40,
                                    "fusion.ridge_alpha": 0.001})
    out = fuse(df, np.arange(200) + 1, test_start, cfg, ["lstm"])
    assert (out["fusion_used"].iloc[:40] == "regime_fallback").all()
    late = out.iloc[100:]
    assert np.allclose(late["fused"], late["y_true"], atol=1e-3)
