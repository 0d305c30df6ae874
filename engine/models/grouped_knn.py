"""Many :class:`KNNRegressor` fits and forecasts at once, by exact brute-force search.

A per-symbol walk-forward fits one small KNN per symbol and fold (a thousand rows, a step of
queries): scikit-learn's per-call overhead and tree building cost more than the search.
``GroupedKNN`` does what :class:`KNNRegressor` does (standardise with the training rows'
``StandardScaler``, choose ``k`` on the time-ordered validation tail when ``n_neighbors`` is a
list, distance-weighted average of the neighbours' outcomes, the same confidence) with a
direct search per group: squared distances summed feature by feature in order, as
scikit-learn's tree computes them, neighbours sorted by (distance, row). Ties of exactly equal
distance may pick another of the tied rows than a tree would; otherwise the forecasts are
those of ``KNNRegressor``. Each group is computed on its own, so the batch never matters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lstmknn.engine.models.knn import KNNRegressor


def _neighbours(train: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances and rows ``[n_query, k]`` of the ``k`` nearest training rows, nearest first."""
    d2 = np.zeros((len(query), len(train)))
    for f in range(train.shape[1]):  # summed in feature order, as a tree's distance
        diff = query[:, f, None] - train[None, :, f]
        d2 += diff * diff
    k = min(k, len(train))
    if k < len(train):
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        near = np.take_along_axis(d2, part, axis=1)
        # a row tied with the k-th distance outside the partition competes on its index
        tied = (d2 <= near.max(axis=1, keepdims=True)).sum(axis=1) > k
    else:
        part = np.broadcast_to(np.arange(k), d2.shape).copy()
        near, tied = d2, np.zeros(len(d2), dtype=bool)
    order = np.lexsort((part, near), axis=1)  # nearest first, ties: lower row first
    idx = np.take_along_axis(part, order, axis=1)
    for q in np.flatnonzero(tied):
        idx[q] = np.argsort(d2[q], kind="stable")[:k]
    return np.sqrt(np.take_along_axis(d2, idx, axis=1)), idx


def _standardiser(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``StandardScaler().fit(X)``'s ``mean_`` and ``scale_`` for finite ``X``, by its own
    arithmetic (two-pass variance with its correction term, near-constant features scaled by 1)
    without its per-call validation."""
    n = len(X)
    total = np.sum(X, axis=0)
    mean = total / n
    temp = X - total / n
    correction = np.sum(temp, axis=0)
    temp **= 2
    var = (np.sum(temp, axis=0) - correction**2 / n) / n
    eps = np.finfo(np.float64).eps
    scale = np.sqrt(var)
    scale[var <= n * eps * var + (n * mean * eps) ** 2] = 1.0
    return mean, scale


def _weights(dist: np.ndarray, how: str) -> np.ndarray:
    """scikit-learn's neighbour weights: ``1 / dist``, exact matches share all the weight."""
    if how != "distance":
        return np.ones_like(dist)
    with np.errstate(divide="ignore"):
        w = 1.0 / dist
    exact = np.isinf(w)
    rows = exact.any(axis=1)
    w[rows] = exact[rows]
    return w


class GroupedKNN:
    """Fit-and-predict many :class:`KNNRegressor` configurations of one ``estimator``."""

    def __init__(self, estimator: KNNRegressor) -> None:
        self.est = estimator

    def _choose_k(self, X: np.ndarray, y: np.ndarray, candidates: list[int]) -> int:
        """``KNNRegressor.fit``'s choice of k: lowest validation MSE on the time-ordered tail."""
        n_val = max(1, int(round(len(X) * self.est.validation_fraction)))
        Xt, yt, Xv, yv = X[:-n_val], y[:-n_val], X[-n_val:], y[-n_val:]
        mean, scale = _standardiser(Xt)
        dist, idx = _neighbours((Xt - mean) / scale, (Xv - mean) / scale, max(candidates))
        scores = {}
        for k in candidates:
            kk = min(k, len(Xt))
            w = _weights(dist[:, :kk], self.est.weights)
            pred = np.sum(yt[idx[:, :kk]] * w, axis=1) / np.sum(w, axis=1)
            scores[k] = float(np.mean((pred - yv) ** 2))
        return min(candidates, key=lambda k: (scores[k], k))

    def fit_predict(self, Xs: Sequence[np.ndarray], ys: Sequence[np.ndarray],
                    queries: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """Per group: fit on ``Xs[g], ys[g]``, forecast ``queries[g]``; (forecast, confidence, k)
        as :meth:`KNNRegressor.predict_with_confidence` and ``k_``."""
        nn = self.est.n_neighbors
        candidates = list(nn) if isinstance(nn, (list, tuple)) else [nn]
        out = []
        for X, y, Q in zip(Xs, ys, queries, strict=True):
            X = np.asarray(X, dtype=np.float64)
            y = np.asarray(y, dtype=np.float64).reshape(-1)
            k = self._choose_k(X, y, candidates) if len(candidates) > 1 else int(candidates[0])
            mean, scale = _standardiser(X)
            Q = np.asarray(Q, dtype=np.float64)
            dist, idx = _neighbours((X - mean) / scale, (Q - mean) / scale, k)
            outcomes = y[idx]
            w = _weights(dist, self.est.weights)
            w /= w.sum(axis=1, keepdims=True)
            mean = (w * outcomes).sum(axis=1)
            spread = np.sqrt((w * (outcomes - mean[:, None]) ** 2).sum(axis=1))
            conf = -np.log(spread + 1e-12) - np.log(dist.mean(axis=1) + 1e-12)
            out.append((mean, conf, int(k)))
        return out
