"""``run_audit``: planted leaks are named at their column, stage and first bar; clean configs pass."""

import dataclasses
import json
import re

import pandas as pd
import pytest

from lstmknn.data.features import FEATURE_NAMES
from lstmknn.data.loader import load_prices
from lstmknn.engine.audit import format_table, recursive_check, run_audit
from lstmknn.engine.cache import FoldCache
from lstmknn.engine.config import from_dict
from tests.helpers import SMALL

EX = "tests.feature_examples"
LEAKS = ["next_return", "centred_mean", "full_sample_zscore", "weekly_close", "history_rank"]


@pytest.fixture(scope="session")
def sp500_data():
    return load_prices("sp500")


@pytest.fixture(scope="session")
def audit_cache(tmp_path_factory):
    return FoldCache(tmp_path_factory.mktemp("audit_cache"))


def _small(data, rows=420):
    return dataclasses.replace(data, frame=data.frame.iloc[:rows])


def _cfg(**sections):
    return from_dict({**SMALL, **sections})


@pytest.fixture(scope="session")
def leaky_report(sp500_data, audit_cache):
    cfg = _cfg(features={"custom": [f"{EX}:momentum_3", *(f"{EX}:{f}" for f in LEAKS)]})
    return run_audit(_small(sp500_data), cfg, cuts=2, cache=audit_cache)


def _feature_leak(report, column):
    found = [x for x in report.leaks if x["column"] == column and x["stage"] == "feature"
             and x["kind"] == "lookahead"]
    assert len(found) == 1, f"{column} not reported at the feature stage"
    return found[0]


def test_leaky_features_make_the_audit_fail_and_enter_at_the_feature_stage(leaky_report):
    assert not leaky_report.clean
    assert leaky_report.first_stage == "feature"
    stages = {x["stage"] for x in leaky_report.leaks}
    assert "model" in stages  # the leak travels on into the forecasts
    # whole-history statistics (and partial windows at the start) also depend on where the
    # data starts; the built-in and clean columns do not
    recursive = {x["column"] for x in leaky_report.leaks if x["kind"] == "recursive"}
    assert recursive and not recursive & {*FEATURE_NAMES, "mom_3", "gap"}


def test_clean_custom_and_built_in_columns_are_not_reported(leaky_report):
    named = {x["column"] for x in leaky_report.leaks if x["stage"] == "feature"
             and x["kind"] == "lookahead"}
    assert named == {"next_ret", "centred_ma5", "ret_z", "week_close", "close_rank"}


def test_shift_minus_one_first_differs_at_the_cut_itself(leaky_report):
    leak = _feature_leak(leaky_report, "next_ret")
    assert leak["first_bar"] == leak["cut"] and leak["bars_ahead"] == 1


def test_centred_mean_first_differs_one_bar_before_the_cut(leaky_report, sp500_data):
    leak = _feature_leak(leaky_report, "centred_ma5")
    idx = sp500_data.frame.index
    assert pd.Timestamp(leak["first_bar"]) == idx[idx.get_loc(pd.Timestamp(leak["cut"])) - 1]
    assert leak["bars_ahead"] == 2


def test_whole_history_statistics_differ_from_their_first_value(leaky_report, sp500_data):
    idx = sp500_data.frame.index
    assert pd.Timestamp(_feature_leak(leaky_report, "ret_z")["first_bar"]) == idx[1]
    assert pd.Timestamp(_feature_leak(leaky_report, "close_rank")["first_bar"]) == idx[0]


def test_weekly_resample_differs_from_the_first_bar_of_the_cuts_week(leaky_report, sp500_data):
    leak = _feature_leak(leaky_report, "week_close")
    idx = sp500_data.frame.index
    cut = pd.Timestamp(leak["cut"])
    week = idx[(idx.to_period("W") == cut.to_period("W"))]
    assert pd.Timestamp(leak["first_bar"]) == week[0] <= cut


def test_report_serialises_and_prints_a_table(leaky_report):
    out = json.loads(json.dumps(leaky_report.to_json()))
    assert out["clean"] is False and out["first_stage"] == "feature"
    assert {"column", "stage", "first_bar", "kind"} <= set(out["leaks"][0])
    assert len(out["cuts"]) == 3
    table = format_table(leaky_report)
    assert table.startswith("audit: LEAK") and "next_ret" in table and "feature" in table


def test_dates_in_the_json_report_are_plain_dates_for_daily_bars(leaky_report):
    out = leaky_report.to_json()
    dates = [*out["cuts"], *(x["first_bar"] for x in out["leaks"]), *(x["cut"] for x in out["leaks"] if x.get("cut"))]
    assert dates and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in dates), dates


@pytest.mark.parametrize("method", ["regime", "fixed", "regime_learned", "stacking"])
def test_every_built_in_fusion_method_passes_with_built_in_and_clean_custom_features(
        sp500_data, audit_cache, method):
    cfg = _cfg(fusion={"min_history": 40, "method": method},
               features={"custom": [f"{EX}:momentum_3"]})
    report = run_audit(_small(sp500_data), cfg, cuts=2, cache=audit_cache)
    assert report.clean, format_table(report)
    assert {"lstm", "knn", "alpha", "fused", "target", "regime"} <= set(report.decision_columns)
    assert format_table(report).startswith("audit: clean")


def test_thorough_mode_retrains_without_the_cache_and_passes(sp500_data):
    report = run_audit(_small(sp500_data, 300), _cfg(), cuts=1, thorough=True)
    assert report.clean and report.thorough and report.cache == {}


def test_pooled_universe_passes(sp500_data):
    msft = load_prices("msft")
    start = sp500_data.frame.index[0]
    datas = [_small(sp500_data, 300),
             dataclasses.replace(msft, frame=msft.frame.loc[start:].iloc[:300])]
    report = run_audit(datas, _cfg(model={"scope": "pooled"}), cuts=1)
    assert report.clean, format_table(report)
    assert report.symbols == ["sp500", "msft"]


def test_recursive_check_reports_an_ema_seeded_at_the_first_bar(sp500_data):
    cfg = _cfg(features={"custom": [f"{EX}:ema_seeded", f"{EX}:ema_declared"]})
    leaks = recursive_check([sp500_data], cfg)
    assert {x["column"] for x in leaks} == {"ema50_gap"}
    assert {x["trim"] for x in leaks} == {50, 200, 500}
    assert all(x["kind"] == "recursive" and x["needed_warmup"] > 400 for x in leaks)


def test_built_in_features_pass_the_recursive_check_on_both_bundled_sets(sp500_data):
    assert recursive_check([sp500_data, load_prices("msft")], _cfg()) == []
