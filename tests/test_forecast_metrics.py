"""Forecast accuracy tables: hand-checked values and the zero-baseline rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from lstmknn.reports.forecast_metrics import (
    METRIC_COLUMNS,
    forecast_summary,
    forecast_table,
    per_group_table,
    relative_mse,
    spearman_ic,
)


@pytest.fixture
def tiny() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.bdate_range("2024-01-01", periods=5),
            "fold": [0, 0, 0, 1, 1],
            "regime": ["calm", "calm", "volatile", "volatile", "calm"],
            "y_true": [0.01, -0.02, 0.0, 0.03, -0.01],
            "a": [0.02, 0.01, 0.0, -0.01, -0.03],
            "b": [0.0, -0.01, 0.01, 0.02, 0.0],
        }
    )


def test_hand_computed_row(tiny: pd.DataFrame) -> None:
    t = forecast_table(tiny, ["a"])
    y = [0.01, -0.02, 0.0, 0.03, -0.01]
    f = [0.02, 0.01, 0.0, -0.01, -0.03]
    err = [yi - fi for yi, fi in zip(y, f, strict=True)]
    assert t.loc["a", "mse"] == pytest.approx(sum(e * e for e in err) / 5)
    assert t.loc["a", "mae"] == pytest.approx(sum(abs(e) for e in err) / 5)
    # y != 0 rows: (0.01, 0.02) hit, (-0.02, 0.01) miss, (0.03, -0.01) miss, (-0.01, -0.03) hit
    assert t.loc["a", "direction_accuracy"] == pytest.approx(2 / 4)
    assert t.loc["a", "n"] == 5
    assert list(t.columns) == list(METRIC_COLUMNS)
    assert t.index.name == "model"


def test_zero_forecast_counts_as_miss(tiny: pd.DataFrame) -> None:
    t = forecast_table(tiny, ["b"])
    # y != 0 rows: (0.01, 0) miss, (-0.02, -0.01) hit, (0.03, 0.02) hit, (-0.01, 0) miss
    assert t.loc["b", "direction_accuracy"] == pytest.approx(2 / 4)


def test_zero_baseline_always_reported_without_column(tiny: pd.DataFrame) -> None:
    t = forecast_table(tiny, ["a", "b"])
    assert list(t.index) == ["a", "b", "zero"]
    y = np.array(tiny["y_true"])
    assert t.loc["zero", "mse"] == pytest.approx(np.mean(y**2))
    assert t.loc["zero", "mae"] == pytest.approx(np.mean(np.abs(y)))
    assert t.loc["zero", "direction_accuracy"] == 0.0  # no free 50%
    assert math.isnan(t.loc["zero", "ic"])
    assert t.loc["zero", "n"] == 5


def test_zero_column_used_when_present(tiny: pd.DataFrame) -> None:
    frame = tiny.assign(zero=0.0)
    t = forecast_table(frame, ["zero", "a"])
    assert list(t.index) == ["zero", "a"]
    assert t.loc["zero", "mse"] == pytest.approx(np.mean(frame["y_true"] ** 2))


def test_ic_matches_scipy_and_nan_for_constant() -> None:
    rng = np.random.default_rng(0)
    f, y = rng.normal(size=50), rng.normal(size=50)
    f[:5] = f[5]  # ties
    assert spearman_ic(f, y) == pytest.approx(spearmanr(f, y).statistic)
    assert math.isnan(spearman_ic(np.full(10, 0.3), y[:10]))
    assert math.isnan(spearman_ic(f[:2], y[:2]))


def test_nan_rows_dropped_per_model(tiny: pd.DataFrame) -> None:
    frame = tiny.copy()
    frame.loc[1, "a"] = np.nan
    t = forecast_table(frame, ["a", "b"])
    assert t.loc["a", "n"] == 4
    assert t.loc["b", "n"] == 5


def test_unknown_model_raises(tiny: pd.DataFrame) -> None:
    with pytest.raises(KeyError):
        forecast_table(tiny, ["nope"])


@pytest.mark.parametrize("by", ["regime", "fold"])
def test_per_group_matches_subset_tables(tiny: pd.DataFrame, by: str) -> None:
    long = per_group_table(tiny, ["a", "b"], by=by)
    assert list(long.columns) == [by, "model", *METRIC_COLUMNS]
    groups = sorted(tiny[by].unique())
    assert len(long) == 3 * len(groups)
    for key in groups:
        sub = forecast_table(tiny[tiny[by] == key], ["a", "b"])
        got = long[long[by] == key].set_index("model")[list(METRIC_COLUMNS)]
        pd.testing.assert_frame_equal(got, sub, check_names=False)


def test_per_group_missing_column_raises(tiny: pd.DataFrame) -> None:
    with pytest.raises(KeyError):
        per_group_table(tiny, ["a"], by="nope")


def test_summary_is_json_ready(tiny: pd.DataFrame) -> None:
    summary = forecast_summary(tiny, ["a", "b"])
    assert set(summary) == {"a", "b", "zero"}
    assert set(summary["a"]) == set(METRIC_COLUMNS)
    assert summary["zero"]["ic"] is None
    assert isinstance(summary["a"]["n"], int)
    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text)["a"]["mse"] == pytest.approx(
        forecast_table(tiny, ["a"]).loc["a", "mse"]
    )


def test_empty_predictions() -> None:
    empty = pd.DataFrame({"y_true": [], "a": []}, dtype=float)
    t = forecast_table(empty, ["a"])
    assert (t["n"] == 0).all()
    assert t["mse"].isna().all()


def test_zero_forecast_ic_is_none_with_the_reason(tiny: pd.DataFrame) -> None:
    summary = forecast_summary(tiny, ["a"])
    assert summary["zero"]["ic"] is None
    assert "constant forecast" in summary["zero"]["ic_undefined"]
    assert "ic_undefined" not in summary["a"]  # a defined IC carries no reason


def test_relative_mse_compares_every_model_on_the_same_rows() -> None:
    rng = np.random.default_rng(3)
    n = 200
    y = rng.normal(0, 0.01, n)
    y[:50] *= 5  # a volatile start that the long-lookback model never forecasts
    frame = pd.DataFrame({"y_true": y, "short": 0.3 * y, "long": 0.3 * y})
    frame.loc[:49, "long"] = np.nan
    rel = relative_mse(frame, ["short", "long"])
    common = frame.iloc[50:]
    zero_common = float(np.mean(common["y_true"] ** 2))
    assert rel.loc["zero", "mse"] == pytest.approx(zero_common)
    assert rel.loc["long", "mse_vs_zero"] == pytest.approx(0.49)  # (1 - 0.3)^2, same rows
    assert rel.loc["short", "mse_vs_zero"] == pytest.approx(0.49)
    assert (rel["n"] == 150).all()
    # the mistake this guards against: zero measured on all rows flatters "long"
    naive = forecast_table(frame, ["long"]).loc["long", "mse"] / float(np.mean(y**2))
    assert naive < 0.2


def test_relative_mse_without_common_rows_is_nan() -> None:
    frame = pd.DataFrame({"y_true": [0.1, 0.2], "a": [np.nan, 0.1], "b": [0.1, np.nan]})
    rel = relative_mse(frame, ["a", "b"])
    assert (rel["n"] == 0).all() and rel["mse_vs_zero"].isna().all()
