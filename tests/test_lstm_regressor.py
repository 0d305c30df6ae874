import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, clone, is_regressor
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

import lstmknn.engine.models
from lstmknn.engine.models.base import NotFittedError
from lstmknn.engine.models.lstm import LSTMRegressor


def data(n=300, lookback=6, feats=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, lookback, feats)).astype(np.float32)
    y = 0.01 * X[:, -1, 0] - 0.005 * X[:, -2, 1] + 0.001 * rng.normal(size=n)
    return X, y


def small(**kw):
    base = dict(hidden_size=8, head_size=4, epochs=30, batch_size=32, lr=0.01, weight_decay=0.0,
                patience=5, random_state=0, device="cpu")
    base.update(kw)
    return LSTMRegressor(**base)


def test_init_only_stores_arguments_and_fit_returns_self_with_learned_state():
    m = small()
    assert not hasattr(m, "module_")
    assert m.get_params()["hidden_size"] == 8
    X, y = data()
    assert m.fit(X, y) is m
    assert m.n_features_in_ == 3 and m.lookback_ == 6


def test_predict_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError):
        small().predict(np.zeros((2, 6, 3)))


def test_it_learns_a_sequence_signal_better_than_the_mean():
    X, y = data()
    m = small().fit(X[:250], y[:250])
    mse = np.mean((m.predict(X[250:]) - y[250:]) ** 2)
    assert mse < 0.5 * np.var(y[250:])


def test_same_random_state_gives_identical_predictions():
    X, y = data()
    a = small().fit(X, y).predict(X[:20])
    b = small().fit(X, y).predict(X[:20])
    np.testing.assert_array_equal(a, b)


def test_state_roundtrip_reproduces_predictions_without_training():
    X, y = data()
    m = small().fit(X, y)
    restored = small().set_state(m.get_state())
    np.testing.assert_allclose(restored.predict(X[:30]), m.predict(X[:30]), rtol=1e-6)


def test_warm_start_begins_from_given_weights_and_never_gets_worse_on_validation():
    X, y = data()
    first = small().fit(X[:200], y[:200])
    warm = small(warm_epochs=2).fit(X[50:250], y[50:250], init_params=first.params_)
    assert len(warm.history_) <= 3  # the starting point plus warm_epochs
    restored = small().set_state({**warm.get_state()})
    np.testing.assert_allclose(restored.predict(X[:5]), warm.predict(X[:5]), rtol=1e-6)
    best_val = min(v for _, v in warm.history_)
    assert best_val <= warm.history_[0][1]  # starting weights are kept if training does not help


def test_mc_dropout_confidence_is_independent_of_batch_composition():
    X, y = data()
    m = small(dropout=0.3, mc_passes=8).fit(X, y)
    _, conf_all = m.predict_with_confidence(X[:40])
    _, conf_part = m.predict_with_confidence(X[:25])
    np.testing.assert_allclose(conf_all[:25], conf_part)
    assert np.isfinite(conf_all).all()


def test_it_is_a_scikit_learn_estimator_that_clones_unfitted_and_refuses_unknown_parameters():
    m = small(mc_passes=3)
    assert isinstance(m, BaseEstimator) and is_regressor(m)
    X, y = data(n=120)
    m.fit(X, y)
    twin = clone(m)
    assert twin.get_params() == m.get_params() and not hasattr(twin, "module_")
    assert m.set_params(epochs=2) is m and m.epochs == 2
    with pytest.raises(ValueError, match="Invalid parameter 'hidden'"):
        m.set_params(hidden=3)
    assert m.score(X, y) == pytest.approx(1 - np.mean((m.predict(X) - y) ** 2) / np.var(y), rel=1e-4)


def test_not_fitted_error_is_scikit_learns_and_params_of_an_unfitted_model_are_absent():
    with pytest.raises(SklearnNotFittedError):
        small().predict(np.zeros((2, 6, 3)))
    assert not hasattr(small(), "params_")


def test_the_estimators_are_importable_from_engine_models():
    assert lstmknn.engine.models.LSTMRegressor is LSTMRegressor
    assert lstmknn.engine.models.KNNRegressor.__module__ == "lstmknn.engine.models.knn"


def test_a_state_that_does_not_fit_the_model_is_refused_before_loading():
    X, y = data(n=120)
    state = small().fit(X, y).get_state()
    assert small().state_problem(state) is None
    with pytest.raises(ValueError, match=r"`module.lstm.weight_ih_l0` is \(32, 3\).*needs \(48, 3\)"):
        small(hidden_size=12).set_state(state)
    with pytest.raises(ValueError, match="tensor names do not match"):
        small().set_state({k: v for k, v in state.items() if k != "x_std"})
    nan = {**state, "x_mean": torch.full_like(state["x_mean"], float("nan"))}
    assert "non-finite" in small().state_problem(nan)
    assert small().set_state(nan).predict(X[:2]).shape == (2,)  # values are not judged on restore
