"""Cross-sectional normalisation: each value against the other symbols' values on its date.

Every function groups rows by a date key and uses only the rows of that group,
so a value on date ``d`` depends on nothing after ``d``. NaN values are left
NaN and excluded from their group's statistics.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

Method = Literal["rank", "zscore"]
SQRT12 = float(np.sqrt(12.0))


def _as_frame(values: np.ndarray | pd.Series | pd.DataFrame) -> pd.DataFrame:
    if isinstance(values, pd.DataFrame):
        return values.reset_index(drop=True)
    arr = np.asarray(values, dtype=float)
    return pd.DataFrame(arr.reshape(len(arr), -1))


def cs_rank(values: np.ndarray | pd.Series | pd.DataFrame, dates: np.ndarray | pd.Series) -> np.ndarray:
    """Rank within each date, mapped to ``((rank - 0.5) / n - 0.5) * sqrt(12)``.

    Like Qlib's CSRankNorm: centred on 0 with unit variance for distinct values;
    ties share their average rank; a date with one value gives 0.
    """
    frame = _as_frame(values)
    keys = np.asarray(dates)
    g = frame.groupby(keys, sort=False)
    rank = g.rank(method="average").to_numpy(float)
    n = g.transform("count").to_numpy(float)
    out = ((rank - 0.5) / n - 0.5) * SQRT12
    return out.reshape(np.shape(values)) if not isinstance(values, pd.DataFrame) else out


def cs_zscore(values: np.ndarray | pd.Series | pd.DataFrame, dates: np.ndarray | pd.Series) -> np.ndarray:
    """``(x - mean) / std`` within each date (population std); 0 where a date's std is 0."""
    frame = _as_frame(values)
    keys = np.asarray(dates)
    g = frame.groupby(keys, sort=False)
    x = frame.to_numpy(float)
    mean = g.transform("mean").to_numpy(float)
    std = np.sqrt(np.maximum(_group_var(frame, keys), 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(std > 1e-15 * np.maximum(np.abs(mean), 1.0), (x - mean) / std, 0.0)
    out = np.where(np.isnan(x), np.nan, out)
    return out.reshape(np.shape(values)) if not isinstance(values, pd.DataFrame) else out


def _group_var(frame: pd.DataFrame, keys: np.ndarray) -> np.ndarray:
    """Population variance within each group, broadcast back to the rows."""
    g = frame.groupby(keys, sort=False)
    mean = g.transform("mean")
    dev2 = (frame - mean) ** 2
    return dev2.groupby(keys, sort=False).transform("mean").to_numpy(float)


def normalise(values: np.ndarray | pd.Series | pd.DataFrame, dates: np.ndarray | pd.Series,
              method: str) -> np.ndarray:
    """Dispatch on ``method``: ``rank``/``cs_rank`` or ``zscore``/``cs_zscore``; ``raw`` returns a copy."""
    if method in ("rank", "cs_rank"):
        return cs_rank(values, dates)
    if method in ("zscore", "cs_zscore"):
        return cs_zscore(values, dates)
    if method in ("raw", "none"):
        return np.array(values, dtype=float, copy=True)
    raise ValueError(f"unknown cross-sectional method {method!r}")
