"""Annualisation factor inferred from a bar index."""

from __future__ import annotations

import numpy as np
import pandas as pd

TRADING_DAYS = 252.0
SESSION_HOURS = 6.5  # regular US equity session


def infer_periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year implied by the spacing of ``index``.

    Rules on the median spacing ``d`` between consecutive (sorted, unique) bars:

    * ``d >= 300`` days -> 1 (annual), ``>= 80`` -> 4, ``>= 20`` -> 12, ``>= 5`` -> 52;
    * daily bars -> 252, or 365 when more than 10% of bars fall on a weekend;
    * intraday bars: if a calendar day's bars cover less than 20 hours (a trading
      session, e.g. US equities) -> ``252 * 6.5 h / d`` (hourly 1638, minute 98280);
      otherwise round-the-clock -> ``days * 24 h / d`` with days 365 if weekends
      are traded, else 252.

    Fewer than two distinct bars -> 252.
    """
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    idx = idx.dropna().unique().sort_values()
    if len(idx) < 2:
        return TRADING_DAYS
    step_days = float(np.median(np.diff(idx.as_unit("ns").asi8))) / 86_400e9
    if step_days >= 300:
        return 1.0
    if step_days >= 80:
        return 4.0
    if step_days >= 20:
        return 12.0
    if step_days >= 5:
        return 52.0
    weekend_share = float(np.mean(idx.day_of_week >= 5))
    days = 365.0 if weekend_share > 0.10 else TRADING_DAYS
    if step_days >= 0.8:
        return days
    step_hours = step_days * 24.0
    bars_per_day = float(pd.Series(1, index=idx).groupby(idx.normalize()).size().median())
    if bars_per_day * step_hours < 20.0:
        return TRADING_DAYS * SESSION_HOURS / step_hours
    return days * 24.0 / step_hours


def resolve_periods_per_year(periods_per_year: float | None, index: pd.Index) -> float:
    """``periods_per_year`` if given (and positive), else inferred from ``index``."""
    if periods_per_year is not None:
        ppy = float(periods_per_year)
        if not np.isfinite(ppy) or ppy <= 0:
            raise ValueError(f"periods_per_year must be positive, got {periods_per_year!r}")
        return ppy
    return infer_periods_per_year(pd.DatetimeIndex(index))
