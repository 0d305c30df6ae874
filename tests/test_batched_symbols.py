"""Per-symbol models trained as one batch (``lstm.batched_symbols``): each symbol's numbers are
its own (never those of the symbols it is batched with), close to the unbatched models', the
same serially, in parallel, cut at a date or cached, and the signal is the backtest's."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from lstmknn.data.synthetic import make_universe, to_price_data
from lstmknn.engine.asof import signal_records
from lstmknn.engine.backtest import run_backtest
from lstmknn.engine.cache import FoldCache
from lstmknn.engine.config import ConfigError, from_dict
from lstmknn.engine.forecasts import forecast, symbol_forecasts
from lstmknn.engine.models import KNNRegressor, LSTMRegressor
from lstmknn.engine.models.grouped_knn import GroupedKNN
from lstmknn.engine.models.grouped_lstm import GroupedLSTM
from lstmknn.engine.walk_forward import run_walk_forward
from tests.helpers import TINY

SAME = ["date", "symbol", "fold", "y_true", "knn", "knn_conf", "knn_k", "regime", "train_mean",
        "persistence", "vol"]


def config(batched: bool = True, **extra: dict):
    raw = copy.deepcopy(TINY)
    raw["walk_forward"] = {"train_window": 80, "step": 20}
    raw["lstm"]["batched_symbols"] = batched
    raw["signal"] = {"sizing": "rank", "top_k": 2, "bottom_k": 1, "min_change": 0.02}
    for section, values in extra.items():
        raw.setdefault(section, {}).update(values)
    return from_dict(raw)


@pytest.fixture(scope="module")
def universe():
    """Five symbols, staggered listing and delisting dates (so folds differ in calendar)."""
    return to_price_data(make_universe(5, 330, ic=0.1, seed=5, staggered=True))


@pytest.fixture(scope="module")
def batched(universe):
    return forecast(universe, config()).predictions


def windows(seed: int, groups: int, n: int = 120, lookback: int = 6, features: int = 4):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((groups, n, lookback, features)).astype(np.float32)
    y = (0.3 * X[:, :, -1, 0] + rng.standard_normal((groups, n))).astype(np.float32)
    return X, y


def small_lstm(**kw) -> LSTMRegressor:
    params = {"hidden_size": 8, "head_size": 4, "epochs": 6, "batch_size": 32, "patience": 2,
              "mc_passes": 5, "random_state": 3, "device": "cpu", **kw}
    return LSTMRegressor(**params)


def assert_states_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("arch", [{}, {"num_layers": 2}, {"head_size": 0}, {"dropout": 0.0}])
def test_a_groups_fit_does_not_depend_on_the_groups_batched_with_it(arch):
    X, y = windows(0, 6)
    model = GroupedLSTM(small_lstm(**arch))
    alone = model.fit(X[2:3], y[2:3])[0]
    for rows in ([0, 1, 2, 3, 4, 5], [2, 5], [4, 2, 0]):
        got = model.fit(X[rows], y[rows])[rows.index(2)]
        assert_states_equal(got, alone)
    init = [{k[len("module."):]: v for k, v in alone.items() if k.startswith("module.")}] * 3
    warm = model.fit(X[[2, 0, 1]] + 0.1, y[[2, 0, 1]], init)[0]
    assert_states_equal(warm, model.fit(X[2:3] + 0.1, y[2:3], init[:1])[0])


def test_groups_that_stop_early_at_different_epochs_keep_their_own_best_weights():
    X, y = windows(1, 4)
    y[1] = np.random.default_rng(9).standard_normal(y.shape[1])  # noise: stops early
    model = GroupedLSTM(small_lstm(epochs=12, patience=1))
    together = model.fit(X, y)
    for g in range(4):
        assert_states_equal(together[g], model.fit(X[g:g + 1], y[g:g + 1])[0])


def test_a_grouped_fit_follows_the_lstm_regressors_fit_to_float_rounding():
    X, y = windows(2, 3)
    grouped = GroupedLSTM(small_lstm()).fit(X, y)
    for g in range(3):
        ref = small_lstm().fit(X[g], y[g]).get_state()
        for k, v in ref.items():
            np.testing.assert_allclose(grouped[g][k].numpy(), v.numpy(), rtol=0, atol=1e-4)


def test_grouped_forecasts_equal_the_regressors_forecasts_of_the_same_states():
    X, y = windows(3, 3)
    est = small_lstm()
    states = GroupedLSTM(est).fit(X, y)
    pred, conf = GroupedLSTM(est).predict_with_confidence(states, X[:, :17])
    for g in range(3):
        ref_pred, ref_conf = small_lstm().set_state(states[g]).predict_with_confidence(X[g, :17])
        np.testing.assert_allclose(pred[g], ref_pred, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(conf[g], ref_conf, rtol=1e-4, atol=1e-4)
    one, one_conf = GroupedLSTM(est).predict_with_confidence(states[1:2], X[1:2, :17])
    assert np.array_equal(one[0], pred[1]) and np.array_equal(one_conf[0], conf[1])


@pytest.mark.parametrize("k", [7, [3, 7, 15]])
def test_the_grouped_knn_gives_the_knn_regressors_forecasts_exactly(k):
    rng = np.random.default_rng(4)
    X = [rng.standard_normal((90, 5)) for _ in range(3)]
    X[1][:, 2] = 1.0  # a constant feature
    X[2][5] = X[2][6]  # an exact duplicate
    y = [rng.standard_normal(90) for _ in range(3)]
    Q = [rng.standard_normal((11, 5)), X[1][:4] + 1e-3, X[2][4:9]]
    got = GroupedKNN(KNNRegressor(n_neighbors=k)).fit_predict(X, y, Q)
    for g in range(3):
        ref = KNNRegressor(n_neighbors=k).fit(X[g], y[g])
        pred, conf = ref.predict_with_confidence(Q[g])
        assert np.array_equal(got[g][0], pred) and np.array_equal(got[g][1], conf)
        assert got[g][2] == ref.k_


def test_each_symbols_forecasts_are_those_of_the_symbol_run_alone(universe, batched):
    cfg = config()
    for d in (universe[0], universe[3]):
        alone = forecast([d], cfg).predictions
        mine = batched[batched["symbol"] == d.symbol].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone, mine, check_exact=True)
        single = symbol_forecasts(d.frame, cfg, None, d.available, None, False).predictions
        pd.testing.assert_frame_equal(single, mine.drop(columns="symbol"), check_exact=True)
    with pytest.raises(ConfigError, match="runs through engine.forecasts.forecast"):
        run_walk_forward(universe[0].frame, cfg)


def test_batched_symbols_keep_their_per_symbol_folds_rows_and_knn(universe, batched):
    """Per-symbol semantics: every symbol's folds, rows and KNN are those of its unbatched run
    (trained on its own rows only); the LSTM differs by the kernels' rounding only."""
    plain = forecast(universe, config(batched=False)).predictions
    assert len(plain) == len(batched) > 0
    pd.testing.assert_frame_equal(plain[SAME], batched[SAME], check_exact=True)
    diff = (plain["lstm"] - batched["lstm"]).abs()
    assert diff.max() < 0.05 * plain["lstm"].abs().max()
    assert np.corrcoef(plain["lstm"], batched["lstm"])[0, 1] > 0.99


def test_serial_and_parallel_batched_runs_give_identical_forecasts(universe, batched):
    again = forecast(universe, config()).predictions
    parallel = forecast(universe, config(), jobs=2).predictions
    pd.testing.assert_frame_equal(again, batched, check_exact=True)
    pd.testing.assert_frame_equal(parallel, batched, check_exact=True)


def test_truncating_or_altering_a_symbols_data_after_t_changes_no_forecast_up_to_t(universe,
                                                                                   batched):
    cut = batched["date"].sort_values().iloc[len(batched) // 2]
    altered = []
    for d in universe:
        frame = d.frame.copy()
        frame.loc[frame.index > cut, ["open", "high", "low", "close"]] *= 1.3
        altered.append(type(d)(symbol=d.symbol, frame=frame, source=d.source, sha256=d.sha256))
    again = forecast(altered, config()).predictions
    upto = batched["date"] <= cut
    cols = ["date", "symbol", "lstm", "knn", "fused", "alpha", "regime", "lstm_conf", "knn_conf",
            "train_mean"]  # y_true of the bar before the cut is its altered next return
    pd.testing.assert_frame_equal(again.loc[upto.to_numpy(), cols].reset_index(drop=True),
                                  batched.loc[upto, cols].reset_index(drop=True), check_exact=True)
    assert not np.allclose(again.loc[~upto.to_numpy(), "knn"], batched.loc[~upto, "knn"])


def test_a_cached_rerun_fits_nothing_and_batched_entries_are_not_the_unbatched_ones(universe,
                                                                                   batched,
                                                                                   tmp_path):
    cache = FoldCache(tmp_path)
    first = forecast(universe, config(), cache=cache)
    assert first.cache_hits == 0 and first.cache_misses > 0
    pd.testing.assert_frame_equal(first.predictions, batched, check_exact=True)
    again = forecast(universe, config(), cache=FoldCache(tmp_path), jobs=2)
    assert again.cache_misses == 0 and again.cache_hits == first.cache_misses
    pd.testing.assert_frame_equal(again.predictions, batched, check_exact=True)
    plain = forecast(universe, config(batched=False), cache=FoldCache(tmp_path))
    assert plain.cache_hits == 0
    late = forecast(universe, config(), cache=FoldCache(tmp_path),
                    since=batched["date"].max()).predictions  # each symbol's last folds
    assert 0 < len(late) < len(batched)
    keys = late.set_index(["symbol", "date"]).index
    same = batched.set_index(["symbol", "date"]).loc[keys].reset_index()[late.columns]
    pd.testing.assert_frame_equal(late, same, check_exact=True)


def test_the_signal_at_several_dates_is_the_batched_backtests_decision(universe, tmp_path):
    cfg = config()
    cache = FoldCache(tmp_path)
    pred = run_backtest(universe, cfg, engine="vectorized", cache_dir=cache.root).predictions
    dates = sorted(pred["date"].unique())
    for when in (dates[len(dates) // 3], dates[-1]):
        records = {r["symbol"]: r for r in signal_records(universe, cfg, when, cache=cache)}
        upto = pred[pred["date"] <= when]
        assert set(records) == set(upto["symbol"])
        for symbol, rows in upto.groupby("symbol"):
            row, rec = rows.iloc[-1], records[symbol]
            assert rec["fused"] == row["fused"] and rec["target"] == row["target"], (when, symbol)
    fresh = {r["symbol"]: r["fused"] for r in signal_records(universe, cfg, dates[-1])}
    assert fresh == {s: rows.iloc[-1]["fused"] for s, rows in pred.groupby("symbol")}


@pytest.mark.parametrize(("extra", "message"), [
    ({"model": {"scope": "pooled"}}, "needs `model.scope` = 'per_symbol'"),
    ({"lstm": {"device": "cuda"}}, "trains on the CPU"),
])
def test_batched_symbols_with_pooled_scope_or_cuda_is_a_config_error(extra, message):
    with pytest.raises(ConfigError, match=message):
        config(**extra)
