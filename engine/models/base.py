"""Small helpers shared by the estimators."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from sklearn.exceptions import NotFittedError as SklearnNotFittedError


class NotFittedError(SklearnNotFittedError, RuntimeError):
    """``predict`` was called before ``fit`` (scikit-learn's error, still a RuntimeError)."""


def check_is_fitted(est: Any, attr: str) -> None:
    if not hasattr(est, attr):
        raise NotFittedError(f"{type(est).__name__} is not fitted yet; call fit() first")


def params_from(cls: type, section: Any) -> dict[str, Any]:
    """The fields of a config section (a dataclass) that are parameters of estimator ``cls``."""
    names = set(cls._get_param_names())
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section) if f.name in names}


def as_float32(a: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))
