"""Estimators: scikit-learn ``BaseEstimator`` subclasses, built from config by their parameter names."""

from engine.models.base import NotFittedError, params_from
from engine.models.knn import KNNRegressor
from engine.models.lstm import LSTMRegressor

__all__ = ["KNNRegressor", "LSTMRegressor", "NotFittedError", "params_from"]
