import warnings
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest
import torch

from lstmknn.data.errors import DataError
from lstmknn.engine.cache import CacheWarning, FoldCache, decode_entry, encode_entry
from lstmknn.engine.config import ConfigError, KNNConfig, LSTMConfig, with_overrides
from lstmknn.engine.models import KNNRegressor, LSTMRegressor
from lstmknn.engine.walk_forward import (
    NonFiniteForecastError,
    check_forecasts,
    folds_for,
    knn_estimator,
    lstm_estimator,
    model_device,
    prepare,
    run_walk_forward,
)


def test_same_seed_gives_identical_predictions_and_another_seed_does_not(small_cfg, small_prices):
    a = run_walk_forward(small_prices, small_cfg).predictions
    b = run_walk_forward(small_prices, small_cfg).predictions
    pd.testing.assert_frame_equal(a, b)
    c = run_walk_forward(small_prices, with_overrides(small_cfg, {"seed": 8})).predictions
    assert not np.allclose(a["lstm"], c["lstm"])


def test_predictions_cover_every_decision_bar_once_with_the_contract_columns(small_cfg, small_prices):
    res = run_walk_forward(small_prices, small_cfg)
    p = res.predictions
    for col in ["date", "fold", "y_true", "lstm", "knn", "regime", "alpha", "fused"]:
        assert col in p
    assert p["date"].is_unique and p["date"].is_monotonic_increasing
    assert set(p["regime"]) <= {"calm", "volatile"}
    assert p["fold"].nunique() == len(res.folds)
    y = small_prices["close"].shift(-1) / small_prices["close"] - 1
    np.testing.assert_allclose(p["y_true"].iloc[:-1], y.loc[p["date"].iloc[:-1]].to_numpy())


def test_regime_fusion_switches_alpha_with_the_regime(small_cfg, small_prices):
    p = run_walk_forward(small_prices, small_cfg).predictions
    assert set(p.loc[p.regime == "calm", "alpha"]) == {0.7}
    assert set(p.loc[p.regime == "volatile", "alpha"]) == {0.4}
    np.testing.assert_allclose(p["fused"], p["alpha"] * p["lstm"] + (1 - p["alpha"]) * p["knn"])


def test_multi_window_ensemble_writes_one_column_per_lookback(small_cfg, small_prices):
    cfg = with_overrides(small_cfg, {"lstm.lookback": [3, 8]})
    p = run_walk_forward(small_prices, cfg).predictions
    np.testing.assert_allclose(p["lstm"], (p["lstm_3"] + p["lstm_8"]) / 2)


def test_too_little_data_says_how_many_rows_are_needed(small_cfg, small_prices):
    with pytest.raises(DataError, match=r"too little data: 100 rows, the configuration needs at least \d+"):
        run_walk_forward(small_prices.iloc[:100], small_cfg)


def test_cached_rerun_gives_the_same_predictions_and_skips_training(small_cfg, small_prices, tmp_path):
    cache = FoldCache(tmp_path)
    a = run_walk_forward(small_prices, small_cfg, cache=cache).predictions
    assert cache.hits == 0
    cache2 = FoldCache(tmp_path)
    b = run_walk_forward(small_prices, small_cfg, cache=cache2).predictions
    assert cache2.misses == 0 and cache2.hits > 0
    pd.testing.assert_frame_equal(a, b)


def test_corrupt_cache_entries_are_rebuilt_not_trusted(small_cfg, small_prices, tmp_path):
    a = run_walk_forward(small_prices, small_cfg, cache=FoldCache(tmp_path)).predictions
    entries = sorted(tmp_path.rglob("*.fold"))
    entries[0].write_bytes(b"not a torch file")
    entries[1].write_bytes(entries[2].read_bytes())  # valid file, wrong key
    cache = FoldCache(tmp_path)
    with pytest.warns(CacheWarning, match="unusable") as seen:
        b = run_walk_forward(small_prices, small_cfg, cache=cache).predictions
    assert cache.misses >= 2 and len(seen) >= 2
    pd.testing.assert_frame_equal(a, b)


def rewrite_entries(root, change) -> int:
    """Apply ``change(states)`` to every cache entry, re-signed with a valid checksum."""
    paths = sorted(root.rglob("*.fold"))
    for path in paths:
        entry = decode_entry(path.read_bytes())
        key = entry.pop("key")
        change(entry["states"])
        path.write_bytes(encode_entry(key, entry))
    return len(paths)


def rerun_rebuilds_every_entry(prices, cfg, root, match: str) -> pd.DataFrame:
    """A cached run warns about each planted entry, refits, and leaves a clean cache behind."""
    cache = FoldCache(root)
    with pytest.warns(CacheWarning, match=match):
        got = run_walk_forward(prices, cfg, cache=cache).predictions
    assert cache.hits == 0
    clean = FoldCache(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_walk_forward(prices, cfg, cache=clean)
    assert clean.misses == 0 and clean.hits > 0
    return got


def test_cache_entries_with_nan_weights_and_a_valid_checksum_are_rebuilt(small_cfg, small_prices,
                                                                           tmp_path):
    fresh = run_walk_forward(small_prices, small_cfg, cache=FoldCache(tmp_path)).predictions

    def poison(states):
        for state in states.values():
            state["module.lstm.weight_ih_l0"][0, 0] = float("nan")

    assert rewrite_entries(tmp_path, poison) > 1
    got = rerun_rebuilds_every_entry(small_prices, small_cfg, tmp_path, "non-finite values")
    assert got[["lstm", "fused"]].notna().all().all()
    pd.testing.assert_frame_equal(fresh, got, check_exact=True)


def test_cache_entries_with_wrong_tensor_shapes_are_rebuilt_before_loading(small_cfg, small_prices,
                                                                           tmp_path):
    fresh = run_walk_forward(small_prices, small_cfg, cache=FoldCache(tmp_path)).predictions
    bigger = with_overrides(small_cfg, {"lstm.hidden_size": 12})
    wrong = lstm_estimator(bigger, 0).fit(np.random.default_rng(0).normal(size=(40, 5, 6)),
                                          np.zeros(40)).get_state()

    def swap(states):
        for lb in states:
            states[lb] = {k: v.clone() for k, v in wrong.items()}

    rewrite_entries(tmp_path, swap)
    got = rerun_rebuilds_every_entry(small_prices, small_cfg, tmp_path, "the model needs")
    pd.testing.assert_frame_equal(fresh, got, check_exact=True)


def test_an_unwritable_cache_folder_warns_once_and_the_run_goes_on(small_cfg, small_prices,
                                                                   tmp_path):
    (tmp_path / "file").write_text("in the way")
    with pytest.warns(CacheWarning, match="cannot be written") as seen:
        got = run_walk_forward(small_prices, small_cfg,
                               cache=FoldCache(tmp_path / "file" / "cache")).predictions
    assert len(seen) == 1
    pd.testing.assert_frame_equal(run_walk_forward(small_prices, small_cfg).predictions, got)


def test_since_limits_output_to_later_folds_with_identical_values(small_cfg, small_prices, tmp_path):
    full = run_walk_forward(small_prices, small_cfg).predictions
    since = full["date"].iloc[-10]
    part = run_walk_forward(small_prices, small_cfg, since=since,
                            cache=FoldCache(tmp_path)).predictions
    assert part["date"].iloc[0] > full["date"].iloc[0]
    merged = full.merge(part, on="date", suffixes=("", "_p"))
    np.testing.assert_allclose(merged["fused"], merged["fused_p"])


def test_estimators_are_built_from_config_through_their_own_parameter_names(small_cfg):
    lstm = lstm_estimator(small_cfg, seed=11).get_params()
    config_names = {f.name for f in fields(LSTMConfig)}
    assert set(LSTMRegressor._get_param_names()) - {"random_state"} <= config_names
    assert lstm["random_state"] == 11 and lstm["device"] == "cpu"
    for name in set(lstm) - {"random_state", "device"}:
        assert lstm[name] == getattr(small_cfg.lstm, name), name
    knn = knn_estimator(small_cfg).get_params()
    assert set(KNNRegressor._get_param_names()) - {"weights"} <= {f.name for f in fields(KNNConfig)}
    assert knn["n_neighbors"] == 10 and knn["validation_fraction"] == small_cfg.knn.validation_fraction


def test_cuda_requested_without_cuda_is_a_config_error(small_cfg):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="`lstm.device` is 'cuda' but no CUDA device"):
        model_device(with_overrides(small_cfg, {"lstm.device": "cuda"}))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_an_lstm_forecast_that_overflows_stops_the_run_naming_the_fold_and_model(small_cfg,
                                                                                 small_prices):
    prices = small_prices.copy()
    prices.iloc[100:, :4] *= 1e40  # a return of 1e40 overflows float32 in the LSTM's labels
    with pytest.raises(NonFiniteForecastError,
                       match=r"^fold 0 \(trained \d{4}-\d\d-\d\d to .*\): the LSTM \(lookback 5\) "
                             r"forecast NaN or inf for 25 of 25 bars"):
        run_walk_forward(prices, small_cfg)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_knn_forecast_is_an_error_naming_the_first_bad_bar(small_cfg, small_prices,
                                                                        bad):
    prep = prepare(small_prices, small_cfg)
    fold = folds_for(prep, small_cfg)[2]
    n = fold.test_end - fold.test_start
    lstm, knn = [np.zeros(n)], np.zeros(n)
    check_forecasts(prep, fold, small_cfg, lstm, knn)  # finite: no error
    knn[[3, 7]] = bad
    first = prep.index[fold.test_start + 3].strftime("%Y-%m-%d")
    with pytest.raises(NonFiniteForecastError,
                       match=rf"^fold 2 .*the KNN forecast NaN or inf for 2 of {n} bars "
                             rf"\(first at {first}\)"):
        check_forecasts(prep, fold, small_cfg, lstm, knn)
    assert issubclass(NonFiniteForecastError, ValueError)
