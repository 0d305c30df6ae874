"""Cross-sectional normalisation uses only the rows of its own date."""

import numpy as np
import pandas as pd
import pytest

from lstmknn.data.cross_section import cs_rank, cs_zscore, normalise


def test_rank_of_one_date_is_centred_with_unit_spacing_by_hand():
    dates = np.array([1, 1, 1, 1])
    out = cs_rank(np.array([0.3, -1.0, 5.0, 0.1]), dates)
    # ranks 3, 1, 4, 2 of n = 4 -> ((r - 0.5) / 4 - 0.5) * sqrt(12)
    expected = (np.array([2.5, 0.5, 3.5, 1.5]) / 4 - 0.5) * np.sqrt(12)
    np.testing.assert_allclose(out, expected)
    assert out.mean() == pytest.approx(0.0)


def test_zscore_of_one_date_by_hand_and_constant_date_gives_zero():
    dates = np.array(["a", "a", "a", "b", "b"])
    out = cs_zscore(np.array([1.0, 2.0, 3.0, 7.0, 7.0]), dates)
    sd = np.std([1.0, 2.0, 3.0])
    np.testing.assert_allclose(out[:3], [-1 / sd, 0.0, 1 / sd])
    np.testing.assert_array_equal(out[3:], [0.0, 0.0])


def test_values_of_one_date_do_not_depend_on_other_dates_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    dates = np.repeat(np.arange(8), 5)
    for method in ("rank", "zscore"):
        full = normalise(x, dates, method)
        altered = x.copy()
        altered[dates != 3] *= 100.0
        altered[dates == 5] = rng.normal(size=(5, 3))
        again = normalise(altered, dates, method)
        np.testing.assert_array_equal(full[dates == 3], again[dates == 3])
        # and dropping every other date leaves date 3 bit-identical
        only = normalise(x[dates == 3], dates[dates == 3], method)
        np.testing.assert_array_equal(only, full[dates == 3])


def test_nan_stays_nan_and_is_left_out_of_its_dates_statistics():
    x = np.array([1.0, np.nan, 3.0])
    d = np.zeros(3)
    z = cs_zscore(x, d)
    assert np.isnan(z[1])
    np.testing.assert_allclose(z[[0, 2]], [-1.0, 1.0])
    r = cs_rank(x, d)
    assert np.isnan(r[1])
    np.testing.assert_allclose(r[[0, 2]], (np.array([0.5, 1.5]) / 2 - 0.5) * np.sqrt(12))


def test_dataframe_input_keeps_columns_independent():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [4.0, 3.0, 2.0, 1.0]})
    out = cs_rank(frame, np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(out[:, 0], -out[:, 1])


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown"):
        normalise(np.ones(3), np.zeros(3), "minmax")
