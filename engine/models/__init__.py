"""Estimators: scikit-learn ``BaseEstimator`` subclasses, built from config by their parameter names."""

from lstmknn.engine.models.base import NotFittedError, params_from
from lstmknn.engine.models.knn import KNNRegressor
from lstmknn.engine.models.lstm import LSTMRegressor

__all__ = ["KNNRegressor", "LSTMRegressor", "NotFittedError", "params_from"]
