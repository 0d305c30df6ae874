"""Built-in features: chosen by name and by the data's columns, warm-ups, no look-ahead."""

import numpy as np
import pandas as pd
import pytest

from lstmknn.data.errors import DataError
from lstmknn.data.features import (
    FEATURE_NAMES,
    SETTLE_WARMUP,
    build_features,
    feature_table_markdown,
    supported_features,
    warmup_rows,
)
from lstmknn.engine.config import FeaturesConfig


def test_default_set_is_all_fourteen_features_on_ohlcv_data(sp500):
    f = build_features(sp500.iloc[:300])
    assert list(f.columns) == list(FEATURE_NAMES) and len(FEATURE_NAMES) == 14


@pytest.mark.parametrize(("available", "left_out"), [
    (("close",), {"range_hl", "close_loc", "volume_ma20"}),
    (("open", "high", "low", "close"), {"volume_ma20"}),
    (("close", "volume"), {"range_hl", "close_loc"}),
])
def test_default_set_leaves_out_features_the_data_cannot_support(sp500, available, left_out):
    f = build_features(sp500.iloc[:300], available=available)
    assert set(FEATURE_NAMES) - set(f.columns) == left_out


def test_include_picks_named_features_in_canonical_order(sp500):
    f = build_features(sp500.iloc[:300], include=["macd", "ret_1"])
    assert list(f.columns) == ["ret_1", "macd"]
    np.testing.assert_array_equal(f["macd"], build_features(sp500.iloc[:300])["macd"])


def test_unknown_feature_name_is_an_error_naming_it_and_the_known_ones(sp500):
    with pytest.raises(DataError, match=r"unknown feature\(s\) rsi_99 .*known: ret_1"):
        build_features(sp500.iloc[:100], include=["ret_1", "rsi_99"])


def test_asking_for_a_feature_the_data_cannot_support_is_one_line(sp500):
    with pytest.raises(DataError, match="range_hl needs high, low, close") as err:
        build_features(sp500.iloc[:100], include=["range_hl"], available=("close",))
    assert "\n" not in str(err.value)


def test_features_config_gives_the_configured_set(sp500):
    from lstmknn.engine.feature_set import feature_frame

    f = feature_frame(sp500.iloc[:100], FeaturesConfig(include=["ret_5"]))
    assert list(f.columns) == ["ret_5"]


def test_warmup_is_each_columns_first_finite_row(sp500):
    w = warmup_rows(build_features(sp500.iloc[:300]))
    assert w["ret_1"] == 1 and w["ret_20"] == 20 and w["rsi_14"] == 14 and w["range_hl"] == 0
    assert all(SETTLE_WARMUP[c] > w[c] for c in SETTLE_WARMUP)


def test_features_up_to_t_ignore_every_row_after_t(sp500):
    full = build_features(sp500.iloc[:600])
    cut = build_features(sp500.iloc[:400])
    pd.testing.assert_frame_equal(full.iloc[:400], cut, check_exact=True)


def test_readme_table_lists_each_feature_with_the_shapes_that_get_it():
    table = feature_table_markdown()
    assert "| `range_hl` | high, low, close | yes | yes | - | - |" in table
    assert "| `ret_1` | close | yes | yes | yes | yes |" in table
    assert supported_features(("close",)) == tuple(n for n in FEATURE_NAMES
                                                    if n not in ("range_hl", "close_loc", "volume_ma20"))
