import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone, is_regressor

from lstmknn.engine.models.base import NotFittedError
from lstmknn.engine.models.knn import KNNRegressor


def test_predict_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError):
        KNNRegressor().predict(np.zeros((1, 2)))


def test_features_are_standardised_on_the_training_window_so_scale_does_not_dominate():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=400), 1e6 * rng.normal(size=400)])
    y = np.sign(X[:, 0])
    m = KNNRegressor(n_neighbors=5).fit(X[:300], y[:300])
    acc = np.mean(np.sign(m.predict(X[300:])) == y[300:])
    assert acc > 0.75
    np.testing.assert_allclose(m.scaler_.mean_, X[:300].mean(axis=0))


def test_k_search_uses_only_the_training_window_in_time_order():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    y = X[:, 0] + 0.5 * rng.normal(size=300)
    m = KNNRegressor(n_neighbors=[1, 5, 25], validation_fraction=0.2).fit(X, y)
    assert set(m.validation_scores_) == {1, 5, 25}
    # recompute by hand: fit on the first 240 rows, score on the last 60 of the SAME window
    for k, score in m.validation_scores_.items():
        ref = KNNRegressor(n_neighbors=k).fit(X[:240], y[:240])
        assert score == pytest.approx(np.mean((ref.predict(X[240:]) - y[240:]) ** 2))
    assert m.k_ == min(m.validation_scores_, key=m.validation_scores_.get)
    # data after the window cannot influence the choice: appending rows changes nothing fitted
    m2 = KNNRegressor(n_neighbors=[1, 5, 25], validation_fraction=0.2).fit(X, y)
    assert m2.k_ == m.k_


def test_confidence_falls_when_neighbours_disagree():
    X = np.array([[0.0], [0.01], [0.02], [10.0], [10.01], [10.02], [5.0], [20.0]])
    y = np.array([0.01, 0.01, 0.01, 0.05, -0.05, 0.04, 0.0, 0.0])
    m = KNNRegressor(n_neighbors=3).fit(X, y)
    _, conf = m.predict_with_confidence(np.array([[0.015], [10.015]]))
    assert conf[0] > conf[1]


def test_confidence_falls_when_neighbours_are_far():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 2))
    y = np.full(200, 0.01) + 1e-4 * rng.normal(size=200)
    m = KNNRegressor(n_neighbors=5).fit(X, y)
    _, conf = m.predict_with_confidence(np.array([[0.0, 0.0], [8.0, 8.0]]))
    assert conf[0] > conf[1]


def test_prediction_with_confidence_matches_scikit_learn_predict_including_exact_matches():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 3))
    y = rng.normal(size=120)
    m = KNNRegressor(n_neighbors=7).fit(X, y)
    Q = np.vstack([rng.normal(size=(20, 3)), X[:3]])  # the last rows sit exactly on training points
    pred, _ = m.predict_with_confidence(Q)
    np.testing.assert_allclose(pred, m.predict(Q), rtol=1e-12)


def test_it_is_a_scikit_learn_estimator_that_clones_unfitted_and_refuses_unknown_parameters():
    m = KNNRegressor(n_neighbors=[3, 5])
    assert isinstance(m, BaseEstimator) and is_regressor(m)
    assert m.get_params() == {"n_neighbors": [3, 5], "weights": "distance", "validation_fraction": 0.2}
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(80, 2)), rng.normal(size=80)
    twin = clone(m.fit(X, y))
    assert not hasattr(twin, "knn_") and twin.get_params() == m.get_params()
    with pytest.raises(ValueError, match="Invalid parameter 'k'"):
        m.set_params(k=3)
