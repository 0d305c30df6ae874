"""Cross-sectional top-k/drop-n targets on constructed rankings."""

import numpy as np
import pandas as pd
import pytest

from lstmknn.engine.config import SignalConfig
from lstmknn.strategies.ranking import rank_targets

SYMS = list("abcdefgh")


def _preds(scores: list[list[float]], syms: list[str] = SYMS) -> pd.DataFrame:
    dates = pd.bdate_range("2021-01-04", periods=len(scores))
    rows = [(d, s, v) for d, day in zip(dates, scores, strict=True)
            for s, v in zip(syms, day, strict=True) if v == v]
    return pd.DataFrame(rows, columns=["date", "symbol", "fused"])


def _book(targets: pd.DataFrame) -> list[set[str]]:
    return [set(g.loc[g["target"] > 0, "symbol"]) for _, g in targets.groupby("date")]


def _cfg(**kw) -> SignalConfig:
    base = {"sizing": "rank", "top_k": 3, "cost_aware": False}
    return SignalConfig(**{**base, **kw})


# a ranking that rotates one place per day: a..h scores, shifted
ROTATING = [list(np.roll(np.arange(8, 0, -1) / 100.0, i)) for i in range(6)]


def test_plain_top_k_rebuys_the_top_three_every_day():
    books = _book(rank_targets(_preds(ROTATING), _cfg(), 0.0))
    assert books[0] == {"a", "b", "c"}
    assert books[1] == {"b", "c", "d"}
    assert books[5] == {"f", "g", "h"}


def test_buffer_keeps_holdings_until_they_leave_top_k_plus_buffer():
    day0 = [0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01]
    day1 = [0.045, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01]  # a falls to rank 4
    day2 = [0.035, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01]  # a falls to rank 5
    no_buffer = _book(rank_targets(_preds([day0, day1, day2]), _cfg(), 0.0))
    assert no_buffer[1] == {"b", "c", "d"}
    buffered = _book(rank_targets(_preds([day0, day1, day2]), _cfg(buffer=1), 0.0))
    assert buffered[1] == {"a", "b", "c"}  # rank 4 < 3 + 1: kept
    assert buffered[2] == {"b", "c", "d"}  # rank 5: out of the band, replaced by d


def test_max_replace_limits_names_sold_per_rebalance():
    day0 = [0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01]
    day1 = day0[::-1]  # the whole top falls to the bottom
    t = rank_targets(_preds([day0, day1, day1, day1]), _cfg(max_replace=1), 0.0)
    books = _book(t)
    assert books[0] == {"a", "b", "c"}
    assert books[1] == {"b", "c", "h"}  # worst-ranked holding (a) replaced by the best new (h)
    assert books[2] == {"c", "h", "g"}
    assert books[3] == {"h", "g", "f"}
    sold_per_day = [len(books[i] - books[i + 1]) for i in range(3)]
    assert sold_per_day == [1, 1, 1]


def test_cost_aware_rule_leaves_a_slot_in_cash_instead_of_buying_a_small_forecast():
    day = [0.01, 0.004, 0.0005, -0.01, np.nan, np.nan, np.nan, np.nan]
    t = rank_targets(_preds([day]), _cfg(cost_aware=True), cost_rate=0.001)
    assert _book(t)[0] == {"a", "b"}
    w = t.set_index("symbol")["target"]
    assert w["a"] == pytest.approx(1 / 3) and w["c"] == 0.0


def test_symbols_without_a_bar_get_no_target_and_keep_their_slot():
    day0 = [0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01]
    day1 = [np.nan, 0.01, 0.02, 0.08, 0.07, 0.06, 0.05, 0.04]
    t = rank_targets(_preds([day0, day1]), _cfg(), 0.0)
    d1 = t[t["date"] == t["date"].max()].set_index("symbol")["target"]
    assert "a" not in d1.index  # no bar: no target, position left as it is
    assert set(d1[d1 > 0].index) == {"d", "e"}  # one slot still taken by a
    assert t.attrs["holdings"].keys() == {"a", "d", "e"}


def test_long_short_equal_weights_capped_per_name_and_on_gross():
    day = [0.08, 0.07, 0.06, 0.05, -0.04, -0.05, -0.06, -0.07]
    t = rank_targets(_preds([day]), _cfg(top_k=2, bottom_k=2, max_weight=0.2, max_gross=1.0), 0.0)
    w = t.set_index("symbol")["target"]
    assert w[["a", "b"]].tolist() == [0.2, 0.2]
    assert w[["g", "h"]].tolist() == [-0.2, -0.2]
    assert w[["c", "d", "e", "f"]].eq(0).all()
    t2 = rank_targets(_preds([day]), _cfg(top_k=2, bottom_k=2, max_gross=0.5), 0.0)
    assert t2["target"].abs().sum() == pytest.approx(0.5)


def test_forecast_weighting_scales_by_strength_and_respects_the_gross_cap():
    day = [0.03, 0.01, 0.0, -0.01, -0.02, -0.03, -0.04, -0.05]
    t = rank_targets(_preds([day]), _cfg(top_k=2, weighting="forecast", max_gross=1.0), 0.0)
    w = t.set_index("symbol")["target"]
    assert w["a"] == pytest.approx(3 * w["b"])
    assert w.abs().sum() == pytest.approx(1.0)
    assert w["a"] == pytest.approx(0.75)


def test_previous_holdings_continue_a_live_book():
    day = [0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01]
    t = rank_targets(_preds([day]), _cfg(buffer=2), 0.0, previous={"e": 0.3})
    assert _book(t)[0] == {"e", "a", "b"}  # e ranks 5th, inside top 3 + 2


def test_a_date_uses_only_its_own_and_earlier_forecasts():
    full = rank_targets(_preds(ROTATING), _cfg(buffer=1, max_replace=1), 0.0)
    cut = rank_targets(_preds(ROTATING[:3]), _cfg(buffer=1, max_replace=1), 0.0)
    pd.testing.assert_frame_equal(full.iloc[:len(cut)], cut)
