"""The synthetic factor-model universe: shape, validity, planted signal and the null version."""

import numpy as np
import pandas as pd
import pytest

from lstmknn.data.loader import validate_ohlcv
from lstmknn.data.synthetic import make_universe, null_universe, planted_ic, to_price_data


def test_long_frame_has_every_symbol_and_day_with_valid_ohlcv():
    f = make_universe(7, 120, seed=0)
    assert len(f) == 7 * 120 and f["symbol"].nunique() == 7
    for d in to_price_data(f):
        validate_ohlcv(d.frame.reset_index(), d.symbol)  # raises on any invalid bar
        assert d.rows == 120


def test_same_seed_same_universe_other_seed_other_universe():
    a, b, c = make_universe(5, 60, seed=1), make_universe(5, 60, seed=1), make_universe(5, 60, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["close"], c["close"])


def test_next_return_correlates_with_the_signal_at_the_planted_strength():
    f = make_universe(300, 300, ic=0.2, seed=3).sort_values(["symbol", "date"])
    nxt = f.groupby("symbol")["close"].shift(-1) / f["close"] - 1.0
    ok = nxt.notna()
    # demean per date: the market term is common to every symbol
    dm = nxt[ok] - nxt[ok].groupby(f.loc[ok, "date"]).transform("mean")
    assert np.corrcoef(f.loc[ok, "signal"], dm)[0, 1] == pytest.approx(0.2, abs=0.01)
    null = null_universe(300, 300, seed=3).sort_values(["symbol", "date"])
    nn = null.groupby("symbol")["close"].shift(-1) / null["close"] - 1.0
    assert abs(np.corrcoef(null.loc[nn.notna(), "signal"], nn.dropna())[0, 1]) < 0.01


def test_staggered_symbols_list_and_delist_at_different_dates():
    f = make_universe(20, 200, seed=4, staggered=True)
    spans = f.groupby("symbol")["date"].agg(["min", "max", "size"])
    assert spans["min"].nunique() > 5 and spans["max"].nunique() > 5
    assert (spans["size"] >= 100).all()


def test_planted_ic_of_a_noisy_forecaster_and_bad_ic_refused():
    assert planted_ic(0.1, 0.0) == 0.1
    assert planted_ic(0.1, 1.0) == pytest.approx(0.1 / np.sqrt(2))
    with pytest.raises(ValueError, match="ic"):
        make_universe(3, 10, ic=1.0)
