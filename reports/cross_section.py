"""Cross-sectional forecast evaluation: per-date IC, quantile portfolios, turnover, figures.

Pure functions over a long predictions frame (one row per symbol and date,
with ``date``, ``symbol``, the forecast columns and the realised ``y_true``).
Every statistic is computed per date across symbols first and then averaged
over dates, as Qlib and alphalens report them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lstmknn.reports.plots import report_figure, report_style

MIN_NAMES = 2  # fewer names on a date: no cross-sectional IC that date


def _usable(frame: pd.DataFrame, model: str, label: str) -> pd.DataFrame:
    sub = frame[["date", model, label]]
    ok = np.isfinite(sub[model].to_numpy(float)) & np.isfinite(sub[label].to_numpy(float))
    return sub[ok]


def ic_by_date(frame: pd.DataFrame, model: str, label: str = "y_true",
               method: str = "pearson") -> pd.Series:
    """Correlation of ``model`` with ``label`` across symbols, one value per date.

    ``method="spearman"`` correlates ranks (rank IC). Dates with fewer than two
    usable rows, or where either side is constant, are left out (not zero).
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman' (got {method!r})")
    sub = _usable(frame, model, label)
    if sub.empty:
        return pd.Series(dtype=float, name=model, index=pd.DatetimeIndex([], name="date"))
    x = sub[model].astype(float)
    y = sub[label].astype(float)
    if method == "spearman":
        x = x.groupby(sub["date"]).rank()
        y = y.groupby(sub["date"]).rank()
    keys = sub["date"].to_numpy()
    g = pd.DataFrame({"x": x.to_numpy(), "y": y.to_numpy()}).groupby(keys)
    mx, my = g["x"].transform("mean").to_numpy(), g["y"].transform("mean").to_numpy()
    dx, dy = x.to_numpy() - mx, y.to_numpy() - my
    parts = pd.DataFrame({"xy": dx * dy, "xx": dx * dx, "yy": dy * dy}).groupby(keys)
    sums = parts.sum()
    count = parts.size()
    denom = np.sqrt(sums["xx"] * sums["yy"])
    tiny = 1e-15
    ok = (count >= MIN_NAMES) & (sums["xx"] > tiny * tiny) & (sums["yy"] > tiny * tiny)
    ic = (sums["xy"][ok] / denom[ok]).clip(-1.0, 1.0)
    ic.index = pd.DatetimeIndex(ic.index, name="date")
    ic.name = model
    return ic.sort_index()


def _stats(ic: pd.Series) -> tuple[float, float, float, float]:
    n = len(ic)
    mean = float(ic.mean()) if n else math.nan
    sd = float(ic.std(ddof=1)) if n > 1 else math.nan
    ir = mean / sd if n > 1 and sd > 0 else math.nan
    tstat = ir * math.sqrt(n) if n > 1 and sd > 0 else math.nan
    pos = float((ic > 0).mean()) if n else math.nan
    return mean, ir, tstat, pos


def ic_summary(frame: pd.DataFrame, models: Sequence[str], label: str = "y_true") -> dict[str, dict[str, Any]]:
    """Per model: ``ic`` (mean Pearson), ``rank_ic`` (mean Spearman), ``icir`` (mean/std of IC),
    ``ic_tstat`` (ICIR * sqrt(n_dates)), ``positive_share`` (dates with IC > 0), ``n_dates``,
    and ``rank_icir``.

    The t-statistic treats dates as independent; with a horizon over one bar
    consecutive ICs overlap and it overstates significance.
    """
    out: dict[str, dict[str, Any]] = {}
    for m in models:
        if m not in frame.columns:
            continue
        ic = ic_by_date(frame, m, label, "pearson")
        ric = ic_by_date(frame, m, label, "spearman")
        mean, ir, tstat, pos = _stats(ic)
        rmean, rir, _, _ = _stats(ric)
        out[m] = {"ic": mean, "rank_ic": rmean, "icir": ir, "ic_tstat": tstat,
                  "positive_share": pos, "n_dates": int(len(ic)), "rank_icir": rir}
    return out


def quantile_frame(frame: pd.DataFrame, model: str = "fused", n: int = 5,
                   label: str = "y_true") -> pd.DataFrame:
    """Mean ``label`` per forecast quantile (columns 1..n, 1 = lowest forecast), one row per date.

    Quantiles are assigned per date from forecast ranks (ties by order of
    rank, average method), only on dates with at least ``n`` usable names.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2 (got {n})")
    sub = _usable(frame, model, label)
    count = sub.groupby("date")[model].transform("size")
    sub = sub[count.to_numpy() >= n]
    if sub.empty:
        return pd.DataFrame(columns=list(range(1, n + 1)), dtype=float)
    g = sub.groupby("date")[model]
    pct = (g.rank(method="average") - 0.5) / g.transform("size")
    q = np.minimum((pct.to_numpy() * n).astype(int) + 1, n)
    table = sub.assign(q=q).pivot_table(index="date", columns="q", values=label, aggfunc="mean")
    table = table.reindex(columns=range(1, n + 1))
    table.index = pd.DatetimeIndex(table.index, name="date")
    return table


def quantile_returns(frame: pd.DataFrame, model: str = "fused", n: int = 5,
                     label: str = "y_true") -> dict[str, Any]:
    """``{"mean": {q: mean label}, "spread": top - bottom, "spread_tstat", "n_dates"}``."""
    table = quantile_frame(frame, model, n, label)
    spread = (table[n] - table[1]).dropna() if len(table) else pd.Series(dtype=float)
    sd = float(spread.std(ddof=1)) if len(spread) > 1 else math.nan
    tstat = float(spread.mean()) / sd * math.sqrt(len(spread)) if len(spread) > 1 and sd > 0 else math.nan
    return {
        "mean": {int(q): (float(table[q].mean()) if len(table) else math.nan) for q in range(1, n + 1)},
        "spread": float(spread.mean()) if len(spread) else math.nan,
        "spread_tstat": tstat,
        "n_dates": int(len(spread)),
    }


def spread_series(frame: pd.DataFrame, model: str = "fused", n: int = 5,
                  label: str = "y_true") -> pd.Series:
    """Top-minus-bottom quantile return per date."""
    table = quantile_frame(frame, model, n, label)
    return (table[n] - table[1]).dropna().rename("spread") if len(table) else pd.Series(dtype=float)


def turnover(targets: pd.DataFrame) -> pd.Series:
    """Half the summed absolute change of target weights per date.

    ``targets``: long ``date, symbol, target``. A symbol without a row on a
    date keeps its previous weight (it cannot trade that day).
    """
    wide = targets.pivot(index="date", columns="symbol", values="target").sort_index()
    held = wide.ffill().fillna(0.0)
    change = held.diff()
    change.iloc[0] = held.iloc[0]
    return (0.5 * change.abs().sum(axis=1)).rename("turnover")


def forecast_autocorrelation(frame: pd.DataFrame, model: str = "fused", lag: int = 1) -> float:
    """Mean rank correlation of each symbol's forecast rank with its rank ``lag`` dates earlier
    (alphalens' factor rank autocorrelation: near 1 means a slow, low-turnover signal)."""
    sub = frame[["date", "symbol", model]].dropna()
    ranks = sub.assign(r=sub.groupby("date")[model].rank(pct=True))
    wide = ranks.pivot(index="date", columns="symbol", values="r").sort_index()
    corr = wide.T.corrwith(wide.shift(lag).T, method="spearman") if len(wide) > lag else pd.Series(dtype=float)
    return float(corr.mean()) if corr.notna().any() else math.nan


# --- figures -------------------------------------------------------------
# All three share the size and font of the tearsheet's other figures.

def _figure() -> tuple[Figure, Axes]:
    fig = report_figure()
    with report_style():
        ax = fig.add_subplot()
    return fig, ax


def plot_ic(ic: pd.Series, window: int = 21, title: str = "Cross-sectional IC") -> Figure:
    """Per-date IC as bars with its rolling mean and the overall mean."""
    fig, ax = _figure()
    with report_style():
        if len(ic):
            ax.bar(ic.index, ic.to_numpy(), width=1.0, color="#9bb8d3", label="IC per date")
            ax.plot(ic.index, ic.rolling(window, min_periods=max(1, window // 2)).mean().to_numpy(),
                    color="#1f4e79", lw=1.5, label=f"{window}-date mean")
            ax.axhline(float(ic.mean()), color="#c0392b", lw=1, ls="--", label=f"mean {ic.mean():.4f}")
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=3, fontsize=7,
                      frameon=False)  # under the axes: inside, it covered the first bars
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_ylabel("IC")
        ax.set_title(title)
    return fig


def plot_quantile_returns(result: dict[str, Any], title: str = "Mean next-bar return by forecast quantile") -> Figure:
    """Bars of :func:`quantile_returns`' ``mean`` (in basis points)."""
    fig, ax = _figure()
    with report_style():
        qs = sorted(result["mean"])
        vals = np.array([result["mean"][q] for q in qs], dtype=float) * 1e4
        ax.bar([str(q) for q in qs], np.nan_to_num(vals),
               color=["#c0392b" if v < 0 else "#2e86c1" for v in vals])
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_xlabel("quantile (1 = lowest forecast)")
        ax.set_ylabel("mean return (bp)")
        ax.set_title(f"{title}; spread {result['spread'] * 1e4:.2f} bp")
    return fig


def plot_cumulative_spread(spread: pd.Series, title: str = "Cumulative top-minus-bottom spread") -> Figure:
    """Cumulative sum (in %) of the per-date top-minus-bottom quantile return."""
    fig, ax = _figure()
    with report_style():
        if len(spread):
            ax.plot(spread.index, spread.cumsum().to_numpy() * 100.0, color="#1f4e79")
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_ylabel("cumulative sum of per-date\ntop-minus-bottom returns (%)")
        ax.set_title(title)
    return fig
