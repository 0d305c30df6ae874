"""Pooled walk-forward: one model per fold for a whole universe, without look-ahead."""

import numpy as np
import pandas as pd
import pytest

from lstmknn.data.errors import DataError
from lstmknn.data.features import first_valid_row
from lstmknn.data.loader import PriceData
from lstmknn.data.synthetic import make_universe, to_price_data
from lstmknn.engine.cache import FoldCache
from lstmknn.engine.config import with_overrides
from lstmknn.engine.feature_set import feature_frame
from lstmknn.engine.pooled import (
    pooled_folds,
    prepare_universe,
    run_pooled_walk_forward,
    train_rows,
)

COLUMNS = ["date", "symbol", "fold", "lstm", "knn", "regime", "alpha", "fused", "lstm_conf",
           "knn_conf", "knn_k", "train_mean", "persistence", "vol", "fusion_used"]


@pytest.fixture
def pooled_cfg(small_cfg):
    return with_overrides(small_cfg, {"walk_forward.train_window": 80, "walk_forward.step": 20,
                                      "model.scope": "pooled", "lstm.mc_passes": 3})


@pytest.fixture(scope="module")
def universe() -> list[PriceData]:
    return to_price_data(make_universe(6, 230, ic=0.1, seed=5, staggered=True))


def _upto(pred: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    return pred[pred["date"] <= cut][COLUMNS].reset_index(drop=True)


def _cut(d: PriceData, cut: pd.Timestamp) -> PriceData:
    return PriceData(d.symbol, d.frame.loc[:cut], d.source, d.sha256)


def _alter(d: PriceData, cut: pd.Timestamp) -> PriceData:
    f = d.frame.copy()
    after = f.index > cut
    f.loc[after, ["open", "high", "low", "close"]] *= 1.3
    f.loc[after, "volume"] *= 5
    return PriceData(d.symbol, f, d.source, d.sha256)


def test_predictions_have_one_row_per_symbol_and_decision_bar_and_folds_one_row_per_fold(pooled_cfg, universe):
    res = run_pooled_walk_forward(universe, pooled_cfg)
    pred = res.predictions
    assert list(pred.columns[:4]) == ["date", "symbol", "fold", "y_true"]
    assert set(COLUMNS) <= set(pred.columns)
    assert not pred.duplicated(["date", "symbol"]).any()
    assert pred["fold"].nunique() == len(res.folds) > 1
    for d in universe:  # every bar of a symbol inside the test span, none outside its data
        rows = pred[pred["symbol"] == d.symbol]
        assert rows["date"].isin(d.frame.index).all()
        span = d.frame.index[(d.frame.index >= pred["date"].min())]
        assert len(rows) == len(span)
    labels = pred.groupby("symbol")["y_true"].apply(lambda s: s.isna().sum())
    assert (labels == 1).all()  # only each symbol's last bar has no label yet
    assert res.folds["n_symbols"].max() == len(universe)


def test_staggered_symbols_enter_late_and_leave_when_their_data_ends(pooled_cfg):
    frame = make_universe(4, 230, seed=1)
    dates = frame["date"].drop_duplicates().sort_values()
    late = frame["symbol"].eq("S0003") & frame["date"].lt(dates.iloc[150])
    early = frame["symbol"].eq("S0002") & frame["date"].gt(dates.iloc[170])
    datas = to_price_data(frame[~late & ~early])
    res = run_pooled_walk_forward(datas, pooled_cfg)
    pred = res.predictions
    first3 = pred.loc[pred["symbol"] == "S0003", "date"].min()
    warm = first_valid_row(feature_frame(datas[3].frame, pooled_cfg.features))
    # entered at its first bar with warmed-up features and a full lookback window
    assert first3 == dates.iloc[150 + warm + pooled_cfg.max_lookback - 1]
    assert warm > 20
    assert pred.loc[pred["symbol"] == "S0002", "date"].max() == dates.iloc[170]
    assert res.folds["n_symbols"].iloc[0] == 3


@pytest.mark.parametrize("overrides", [
    {"fusion.method": "regime"},
    {"fusion.method": "stacking", "fusion.min_history": 40},
    {"fusion.method": "regime_learned", "fusion.min_history": 40, "model.label": "cs_rank",
     "model.cs_features": "zscore", "model.regime_source": "market"},
])
def test_later_rows_removed_altered_or_a_later_symbol_added_change_nothing_up_to_t(
        pooled_cfg, universe, overrides):
    cfg = with_overrides(pooled_cfg, overrides)
    full = run_pooled_walk_forward(universe, cfg).predictions
    dates = full["date"].drop_duplicates().sort_values()
    cut = dates.iloc[len(dates) // 2 + 3]  # inside a fold's test span
    expected = _upto(full, cut)
    assert expected["date"].nunique() > 30
    method = cfg.fusion.method
    if method != "regime":
        assert (full["fusion_used"] == method).any(), "learned fusion never kicked in"
    variants = {
        "all cut": [_cut(d, cut) for d in universe],
        "one cut": [_cut(d, cut) if i == 2 else d for i, d in enumerate(universe)],
        "one altered": [_alter(d, cut) if i == 1 else d for i, d in enumerate(universe)],
    }
    newcomer = to_price_data(make_universe(1, 230, seed=9).assign(symbol="NEW"))[0]
    variants["later symbol added"] = [
        *universe[:3], PriceData("NEW", newcomer.frame.loc[newcomer.frame.index > cut], "x", "x"),
        *universe[3:]]
    for name, datas in variants.items():
        got = run_pooled_walk_forward(datas, cfg).predictions
        pd.testing.assert_frame_equal(_upto(got, cut), expected, check_exact=True, obj=name)
    altered = run_pooled_walk_forward(variants["one altered"], cfg).predictions
    later = full["date"] > cut + pd.Timedelta(days=40)
    assert not np.allclose(full.loc[later, "knn"], altered.loc[later.to_numpy(), "knn"])


def test_training_rows_have_labels_known_at_the_folds_first_decision(pooled_cfg, universe):
    frame = make_universe(3, 230, seed=2)
    gappy = frame[~(frame["symbol"].eq("S0001") & (frame.index % 7 == 0))]  # a symbol missing bars
    uni = prepare_universe(to_price_data(gappy), pooled_cfg)
    for fold in pooled_folds(uni, pooled_cfg):
        rows = train_rows(uni, fold)
        assert (uni.known[rows] <= fold.test_start).all()
        assert (uni.pos[rows] < fold.train_end).all()
        assert np.isfinite(uni.label[rows]).all()
        # every sample of the window whose label is known is used
        window = (uni.pos >= fold.train_start) & (uni.pos < fold.train_end)
        known = window & (uni.known <= fold.test_start) & np.isfinite(uni.label)
        assert known.sum() == len(rows)


def test_normalised_labels_give_return_scaled_forecasts_and_raw_metrics(pooled_cfg, universe):
    raw = run_pooled_walk_forward(universe, pooled_cfg)
    ranked = run_pooled_walk_forward(universe, with_overrides(pooled_cfg, {"model.label": "cs_zscore"}))
    pd.testing.assert_series_equal(raw.predictions["y_true"], ranked.predictions["y_true"])
    assert (ranked.folds["label_scale"] > 0.005).all() and (ranked.folds["label_scale"] < 0.1).all()
    assert ranked.predictions["knn"].abs().median() < 0.05
    assert not np.allclose(raw.predictions["lstm"], ranked.predictions["lstm"])


def test_market_regime_is_the_same_for_every_symbol_on_a_date(pooled_cfg, universe):
    pred = run_pooled_walk_forward(universe, with_overrides(pooled_cfg, {"model.regime_source": "market"})).predictions
    assert (pred.groupby("date")["regime"].nunique() == 1).all()
    own = run_pooled_walk_forward(universe, pooled_cfg).predictions
    assert (own.groupby("date")["regime"].nunique() > 1).any()


def test_a_cached_rerun_fits_nothing_and_gives_identical_predictions(pooled_cfg, universe, tmp_path):
    cache = FoldCache(tmp_path / "c")
    first = run_pooled_walk_forward(universe, pooled_cfg, cache=cache)
    again_cache = FoldCache(tmp_path / "c")
    again = run_pooled_walk_forward(universe, pooled_cfg, cache=again_cache)
    assert first.cache_misses == len(first.folds) and again_cache.hits == len(first.folds)
    pd.testing.assert_frame_equal(first.predictions, again.predictions, check_exact=True)


def test_too_short_a_universe_is_one_clear_error(pooled_cfg):
    datas = to_price_data(make_universe(3, 90, seed=0))
    with pytest.raises(DataError, match="too little data"):
        run_pooled_walk_forward(datas, pooled_cfg)


def test_fit_budgets_cap_cold_epochs_warm_rows_and_are_recorded_per_fold(pooled_cfg, universe):
    from lstmknn.engine import pooled

    cold = pooled.COLD_FIT_SAMPLES
    assert pooled.fit_plan(cold // 2, pooled_cfg, warm=False) == (cold // 2, 2)
    assert pooled.fit_plan(3 * cold, pooled_cfg, warm=False) == (cold, 1)
    assert pooled.fit_plan(100, pooled_cfg, warm=False) == (100, pooled_cfg.lstm.epochs)
    assert pooled.fit_plan(10 * pooled.WARM_FIT_ROWS, pooled_cfg, warm=True) == (
        pooled.WARM_FIT_ROWS, pooled_cfg.lstm.warm_epochs)
    folds = run_pooled_walk_forward(universe, pooled_cfg).folds
    assert folds["lstm_epochs"].iloc[0] == pooled_cfg.lstm.epochs
    assert (folds["lstm_rows"] == folds["train_size"]).all()
    assert (folds["knn_rows"] == folds["train_size"]).all()


def test_drawn_training_rows_keep_predictions_free_of_later_data(pooled_cfg, universe, monkeypatch):
    from lstmknn.engine import pooled

    monkeypatch.setattr(pooled, "WARM_FIT_ROWS", 150)
    monkeypatch.setattr(pooled, "MAX_KNN_ROWS", 200)
    res = run_pooled_walk_forward(universe, pooled_cfg)
    assert (res.folds["knn_rows"] == 200).all() and (res.folds["lstm_rows"].iloc[1:] == 150).all()
    full = res.predictions
    dates = full["date"].drop_duplicates().sort_values()
    cut = dates.iloc[len(dates) // 2 + 3]
    newcomer = to_price_data(make_universe(1, 230, seed=9).assign(symbol="NEW"))[0]
    for datas in ([_cut(d, cut) for d in universe],
                  [*universe[:3], PriceData("NEW", newcomer.frame.loc[newcomer.frame.index > cut],
                                            "x", "x"), *universe[3:]]):
        got = run_pooled_walk_forward(datas, pooled_cfg).predictions
        pd.testing.assert_frame_equal(_upto(got, cut), _upto(full, cut), check_exact=True)


@pytest.mark.parametrize(("feature", "early_hits"), [("momentum_3", True),
                                                      ("full_sample_zscore", False)])
def test_a_feature_that_reads_later_rows_never_gets_a_cache_hit(pooled_cfg, universe, tmp_path,
                                                                feature, early_hits):
    cfg = with_overrides(pooled_cfg, {"features.custom": [f"tests.feature_examples:{feature}"]})
    first = run_pooled_walk_forward(universe, cfg, cache=FoldCache(tmp_path))
    cut = first.folds["test_start"].iloc[-2]  # rows after it changed: the last fold sees them
    again = FoldCache(tmp_path)
    run_pooled_walk_forward([_alter(d, cut) for d in universe], cfg, cache=again)
    n_early = int((first.folds["test_start"] <= cut).sum())
    assert 2 <= n_early < len(first.folds)
    assert again.hits == (n_early if early_hits else 0)


def test_other_fusions_of_the_same_forecasts_equal_a_run_with_that_fusion(pooled_cfg, universe):
    cfg = with_overrides(pooled_cfg, {"fusion.min_history": 40})
    res = run_pooled_walk_forward(universe, cfg, fusions=["stacking"])
    direct = run_pooled_walk_forward(universe, with_overrides(cfg, {"fusion.method": "stacking"}))
    pd.testing.assert_frame_equal(res.alternatives["stacking"].predictions, direct.predictions,
                                  check_exact=True)
    assert not np.allclose(res.predictions["fused"], direct.predictions["fused"])
