"""Distance-weighted KNN regressor on standardised features."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.neighbors import KNeighborsRegressor
from sklearn.preprocessing import StandardScaler

from lstmknn.engine.models.base import check_is_fitted


class KNNRegressor(RegressorMixin, BaseEstimator):
    """Average of what followed the ``n_neighbors`` most similar past states.

    Features are standardised with the training window's mean and std only.
    ``n_neighbors`` may be a list: then k is chosen by time-ordered
    validation on the last ``validation_fraction`` of the training samples
    (never shuffled), and the model is refitted on the whole window.
    """

    def __init__(self, *, n_neighbors: int | list[int] = 50, weights: str = "distance",
                 validation_fraction: float = 0.2) -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.validation_fraction = validation_fraction

    def _fit_k(self, X: np.ndarray, y: np.ndarray, k: int) -> tuple[StandardScaler, KNeighborsRegressor]:
        scaler = StandardScaler().fit(X)
        knn = KNeighborsRegressor(n_neighbors=min(k, len(X)), weights=self.weights)
        return scaler, knn.fit(scaler.transform(X), y)

    def fit(self, X: np.ndarray, y: np.ndarray) -> KNNRegressor:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        candidates = self.n_neighbors if isinstance(self.n_neighbors, (list, tuple)) else [self.n_neighbors]
        self.validation_scores_: dict[int, float] = {}
        if len(candidates) > 1:
            n_val = max(1, int(round(len(X) * self.validation_fraction)))
            Xt, yt, Xv, yv = X[:-n_val], y[:-n_val], X[-n_val:], y[-n_val:]
            for k in candidates:
                scaler, knn = self._fit_k(Xt, yt, k)
                err = knn.predict(scaler.transform(Xv)) - yv
                self.validation_scores_[k] = float(np.mean(err**2))
            k_best = min(candidates, key=lambda k: (self.validation_scores_[k], k))
        else:
            k_best = candidates[0]
        self.k_ = int(k_best)
        self.scaler_, self.knn_ = self._fit_k(X, y, self.k_)
        self.y_train_ = y
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "knn_")
        return self.knn_.predict(self.scaler_.transform(np.asarray(X, dtype=np.float64)))

    def predict_with_confidence(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forecast and confidence ``-log(weighted std of neighbours' outcomes * mean distance)``.

        Higher means the neighbours are closer and agree more about what followed.
        """
        check_is_fitted(self, "knn_")
        Z = self.scaler_.transform(np.asarray(X, dtype=np.float64))
        dist, idx = self.knn_.kneighbors(Z)
        outcomes = self.y_train_[idx]  # [n, k]
        if self.weights == "distance":  # as scikit-learn: exact matches share all the weight
            with np.errstate(divide="ignore"):
                w = 1.0 / dist
            exact = ~np.isfinite(w)
            rows = exact.any(axis=1)
            w[rows] = exact[rows].astype(float)
        else:
            w = np.ones_like(dist)
        w /= w.sum(axis=1, keepdims=True)
        mean = (w * outcomes).sum(axis=1)
        spread = np.sqrt((w * (outcomes - mean[:, None]) ** 2).sum(axis=1))
        conf = -np.log(spread + 1e-12) - np.log(dist.mean(axis=1) + 1e-12)
        return mean, conf
