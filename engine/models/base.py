"""Small helpers shared by the estimators."""

from __future__ import annotations

from typing import Any

import numpy as np


class NotFittedError(RuntimeError):
    """``predict`` was called before ``fit``."""


def check_is_fitted(est: Any, attr: str) -> None:
    if not hasattr(est, attr):
        raise NotFittedError(f"{type(est).__name__} is not fitted yet; call fit() first")


def as_float32(a: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))
