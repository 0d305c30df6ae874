"""No user feature can alter the engine's inputs: prices, labels or another symbol's rows."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from lstmknn.data.synthetic import make_universe, to_price_data
from lstmknn.engine.backtest import run_backtest
from lstmknn.engine.config import from_dict
from tests.helpers import TINY


@pytest.fixture(scope="module")
def universe():
    return to_price_data(make_universe(3, 240, ic=0.1, seed=9))


def config(scope: str, custom: list[str]):
    raw = copy.deepcopy(TINY)
    raw["walk_forward"] = {"train_window": 80, "step": 40}
    raw["model"] = {"scope": scope}
    raw["features"] = {"include": ["ret_1", "vol_20"], "custom": custom}
    return from_dict(raw)


@pytest.mark.parametrize("scope", ["per_symbol", "pooled"])
def test_a_feature_that_edits_its_inputs_in_place_changes_nothing_the_engine_holds(universe,
                                                                                   scope):
    before = {d.symbol: d.frame.copy() for d in universe}
    vandal = run_backtest(universe, config(scope, ["tests.feature_examples:vandal"]),
                          engine="vectorized")
    for d in universe:  # the caller's frames
        pd.testing.assert_frame_equal(d.frame, before[d.symbol], check_exact=True)
    # the labels and the trades are those of the same data: y_true is the true next return
    pred = vandal.predictions
    for d in universe:
        rows = pred[pred["symbol"] == d.symbol].set_index("date")
        truth = d.frame["close"].pct_change().shift(-1).reindex(rows.index)
        pd.testing.assert_series_equal(rows["y_true"], truth, check_names=False, rtol=1e-12)
    filled = vandal.result.trades.dropna(subset=["price"])
    for _, t in filled.head(20).iterrows():  # fills at the real opens (+/- slippage)
        real_open = before[t["symbol"]].loc[t["date"], "open"]
        assert abs(t["price"] / real_open - 1) < 2e-3


def test_a_feature_that_edits_the_panel_sees_the_same_values_for_every_symbol(universe):
    """Each call gets its own view of the panel: one symbol's edits never reach the next."""
    from lstmknn.engine.feature_set import compute_custom, frozen_panel

    panel = frozen_panel({d.symbol: d.frame for d in universe})
    seen = []
    for d in universe:
        out = compute_custom(d.frame, ["tests.feature_examples:relative_to_market"], panel)
        seen.append(out)
        compute_custom(d.frame, ["tests.feature_examples:vandal"], panel)
    again = [compute_custom(d.frame, ["tests.feature_examples:relative_to_market"], panel)
             for d in universe]
    for a, b in zip(seen, again, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
