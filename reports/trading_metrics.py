"""Performance statistics of a per-period simple-return series (numpy/pandas only)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from lstmknn.reports.periods import infer_periods_per_year, resolve_periods_per_year

__all__ = [
    "infer_periods_per_year",
    "drawdown_series",
    "strategy_metrics",
    "activity_metrics",
    "metrics_table",
]

COMPLETED_STATUSES = {"completed", "filled", "complete"}


def _as_series(returns: pd.Series | np.ndarray) -> pd.Series:
    s = returns if isinstance(returns, pd.Series) else pd.Series(np.asarray(returns))
    return pd.to_numeric(s, errors="coerce").dropna().astype(float)


def drawdown_series(returns: pd.Series) -> pd.Series:
    """Drawdown of compounded equity (starting at 1) from its running peak, <= 0."""
    r = _as_series(returns)
    wealth = (1.0 + r).cumprod()
    peak = np.maximum(wealth.cummax(), 1.0)
    return wealth / peak - 1.0


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 and math.isfinite(den) else math.nan


def strategy_metrics(
    returns: pd.Series | np.ndarray,
    periods_per_year: float | None = None,
    rf: float = 0.0,
    positions: pd.DataFrame | None = None,
    trades: pd.DataFrame | None = None,
    equity: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Summary statistics of per-period simple returns (NaN dropped).

    ``periods_per_year`` None -> inferred from the returns' DatetimeIndex.
    ``rf`` is an annual rate, compounded down to a per-period rate for excess returns.

    * ``total_return = prod(1 + r) - 1``; ``cagr = (1 + total)^(ppy / n) - 1``
    * ``volatility = std(r, ddof=1) * sqrt(ppy)``
    * ``sharpe = mean(r - rf_p) / std(r - rf_p) * sqrt(ppy)``
    * ``sortino = mean(r - rf_p) / sqrt(mean(min(r - rf_p, 0)^2)) * sqrt(ppy)``
    * ``max_drawdown``: most negative drawdown of compounded equity (a fraction <= 0)
    * ``calmar = cagr / |max_drawdown|``
    Optional ``positions``/``trades``/``equity`` add :func:`activity_metrics`.
    """
    r = _as_series(returns)
    if periods_per_year is None and not isinstance(r.index, pd.DatetimeIndex):
        raise ValueError("periods_per_year is required when returns have no DatetimeIndex")
    ppy = resolve_periods_per_year(periods_per_year, r.index)
    n = len(r)
    out: dict[str, float] = {"n_periods": float(n), "periods_per_year": ppy}
    if n == 0:
        nan_keys = (
            "total_return",
            "cagr",
            "volatility",
            "sharpe",
            "sortino",
            "max_drawdown",
            "calmar",
        )
        out.update(dict.fromkeys(nan_keys, math.nan))
    else:
        x = r.to_numpy()
        total = float(np.prod(1.0 + x) - 1.0)
        growth = 1.0 + total
        cagr = growth ** (ppy / n) - 1.0 if growth > 0 else -1.0
        rf_p = (1.0 + rf) ** (1.0 / ppy) - 1.0
        ex = x - rf_p
        sd = float(np.std(ex, ddof=1)) if n > 1 else math.nan
        downside = float(np.sqrt(np.mean(np.minimum(ex, 0.0) ** 2)))
        mdd = float(drawdown_series(r).min())
        out.update(
            total_return=total,
            cagr=float(cagr),
            volatility=float(np.std(x, ddof=1)) * math.sqrt(ppy) if n > 1 else math.nan,
            sharpe=_ratio(float(ex.mean()), sd) * math.sqrt(ppy),
            sortino=_ratio(float(ex.mean()), downside) * math.sqrt(ppy),
            max_drawdown=mdd,
            calmar=_ratio(float(cagr), abs(mdd)),
        )
    if positions is not None or trades is not None:
        out.update(activity_metrics(positions, trades, equity, ppy))
    return out


def _completed(trades: pd.DataFrame) -> pd.DataFrame:
    if "status" not in trades.columns:
        return trades
    status = trades["status"].astype(str).str.lower()
    return trades[status.isin(COMPLETED_STATUSES)]


def _paid(amounts: pd.Series) -> float:
    return float(pd.to_numeric(amounts, errors="coerce").fillna(0.0).abs().sum())


def activity_metrics(
    positions: pd.DataFrame | None,
    trades: pd.DataFrame | None,
    equity: pd.DataFrame | None,
    periods_per_year: float,
) -> dict[str, float]:
    """``exposure``: share of bars holding any non-zero position; ``n_trades`` over
    completed trades (status completed/filled, or all if no status column);
    ``total_commission`` over every row (rows without a fill carry 0); with a
    ``slippage`` column also ``slippage_cost`` and ``costs`` = commission + slippage
    (without one, slippage is unknown and no ``costs`` is given);
    ``turnover``: annualised traded notional / mean equity value."""
    out: dict[str, float] = {}
    if positions is not None and len(positions):
        held = positions.fillna(0.0).to_numpy(dtype=float) != 0
        out["exposure"] = float(held.any(axis=1).mean())
    if trades is not None:
        done = _completed(trades)
        out["n_trades"] = float(len(done))
        if "commission" in trades.columns:
            out["total_commission"] = _paid(trades["commission"])
            if "slippage" in trades.columns:
                out["slippage_cost"] = _paid(trades["slippage"])
                out["costs"] = out["total_commission"] + out["slippage_cost"]
        if {"size", "price"} <= set(done.columns) and equity is not None and len(equity):
            notional = float((done["size"].abs() * done["price"].abs()).sum())
            mean_value = float(pd.to_numeric(equity["value"]).mean())
            years = len(equity) / periods_per_year
            out["turnover"] = _ratio(notional, mean_value) / years if years > 0 else math.nan
    return out


def metrics_table(
    series: Mapping[str, pd.Series], periods_per_year: float | None = None, rf: float = 0.0
) -> pd.DataFrame:
    """:func:`strategy_metrics` of several return series side by side (metric rows)."""
    return pd.DataFrame(
        {name: strategy_metrics(s, periods_per_year, rf=rf) for name, s in series.items()}
    )
