"""Our own drawings of the quantstats charts that quantstats 0.0.86 gets wrong.

quantstats 0.0.86 with pandas 3 and matplotlib 3.11 draws three charts of its
tearsheet wrongly, whatever data it is given:

* **EOY Returns vs Benchmark**: ``DataFrame.plot(kind="bar")`` on a year-end
  DatetimeIndex puts the bars at the years' offsets from 1970 (33..48 for
  2003..2018) while quantstats labels ticks 0..N-1: every bar sits at the right
  edge and every year label is stacked on the left.
* **Distribution of Monthly Returns** and **Return Quantiles** format their
  percent axes with ``int(x * 100)``, which truncates ``0.049999...`` to ``4%``:
  a tick at 5 % is labelled 4 %.
* **Monthly Returns** (heatmap) shows months without a single bar (before the
  first bar, after the last) as ``0.00``, a return that never happened.

These figures are redrawn here from the same returns and swapped into the page
(:func:`replace_quantstats_charts`), in the ``<div>`` quantstats reserves for each
(``eoy_returns``, ``monthly_dist``, ``monthly_heatmap``, ``returns_dist``). Every
other quantstats chart is kept as drawn.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from reports.plots import _RC, _new_figure, fig_to_img

STRATEGY_COLOR = "#348dc1"  # quantstats' strategy blue
BENCHMARK_COLOR = "#fedd78"  # quantstats' benchmark yellow
QS_FIGSIZE = (8.0, 4.2)


def compounded(returns: pd.Series, freq: str) -> pd.Series:
    """Compounded return per calendar period ``freq`` (``"YE"``, ``"QE"``, ``"ME"``,
    ``"W"``); periods without a bar are dropped, not reported as 0 %."""
    r = pd.to_numeric(returns, errors="coerce").dropna()
    if r.empty:
        return pd.Series(dtype=float)
    grouped = (1.0 + r).resample(freq)
    out = grouped.prod() - 1.0
    return out[grouped.count() > 0]


def yearly_returns(
    returns: pd.Series, benchmark: pd.Series | None = None
) -> pd.DataFrame:
    """Compounded return per calendar year: index year (int), columns ``strategy``
    and (with a benchmark) ``benchmark``, over the years the strategy has bars."""
    cols = {"strategy": compounded(returns, "YE")}
    if benchmark is not None and len(benchmark):
        cols["benchmark"] = compounded(benchmark, "YE")
    frame = pd.DataFrame(cols).reindex(cols["strategy"].index)
    frame.index = pd.Index(frame.index.year, name="year")
    return frame


def eoy_figure(
    returns: pd.Series,
    benchmark: pd.Series | None = None,
    strategy_label: str = "Strategy",
    benchmark_label: str = "Benchmark",
) -> Figure:
    """Grouped bars of each calendar year's return, one tick and label per year,
    with the strategy's mean yearly return as a dashed line."""
    import matplotlib as mpl

    years = yearly_returns(returns, benchmark)
    x = np.arange(len(years))
    with mpl.rc_context(_RC):
        fig = _new_figure(QS_FIGSIZE)
        ax = fig.add_subplot(1, 1, 1)
        has_bench = "benchmark" in years.columns
        width = 0.4 if has_bench else 0.7
        if has_bench:
            ax.bar(x - width / 2, years["benchmark"].fillna(0.0).to_numpy(), width,
                   color=BENCHMARK_COLOR, label=benchmark_label)
        ax.bar(x + (width / 2 if has_bench else 0.0), years["strategy"].to_numpy(), width,
               color=STRATEGY_COLOR, label=strategy_label)
        if len(years):
            ax.axhline(float(years["strategy"].mean()), color="red", ls="--", lw=1.0,
                       label=f"{strategy_label} mean")
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_xticks(x, [str(y) for y in years.index], rotation=45 if len(x) > 8 else 0)
        ax.set_xlim(-0.6, len(x) - 0.4)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylabel("Return")
        ax.set_title("EOY Returns vs Benchmark" if has_bench else "EOY Returns",
                     fontweight="bold")
        ax.legend(loc="best", fontsize=8)
    return fig


def monthly_distribution_figure(
    returns: pd.Series,
    benchmark: pd.Series | None = None,
    strategy_label: str = "Strategy",
    benchmark_label: str = "Benchmark",
    bins: int = 20,
) -> Figure:
    """Histograms of compounded monthly returns on shared bins, percent x axis."""
    import matplotlib as mpl

    series = [(strategy_label, compounded(returns, "ME"), STRATEGY_COLOR)]
    if benchmark is not None and len(benchmark):
        series.insert(0, (benchmark_label, compounded(benchmark, "ME"), BENCHMARK_COLOR))
    values = np.concatenate([s.to_numpy() for _, s, _ in series])
    edges = np.histogram_bin_edges(values, bins=bins) if values.size else bins
    with mpl.rc_context(_RC):
        fig = _new_figure(QS_FIGSIZE)
        ax = fig.add_subplot(1, 1, 1)
        for label, s, color in series:
            ax.hist(s.to_numpy(), bins=edges, color=color, alpha=0.6, label=label)
            if len(s):
                ax.axvline(float(s.mean()), color=color, ls="--", lw=1.2)
        ax.axvline(0.0, color="black", lw=0.8)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel("monthly return (dashed: mean)")
        ax.set_ylabel("months")
        ax.set_title("Distribution of Monthly Returns", fontweight="bold")
        ax.legend(loc="upper right", fontsize=8)
    return fig


MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def monthly_table(returns: pd.Series) -> pd.DataFrame:
    """Compounded return per month: rows years, columns 1..12; NaN where the month
    has no bar (it is not a 0 % month)."""
    m = compounded(returns, "ME")
    table = pd.DataFrame({"year": m.index.year, "month": m.index.month, "r": m.to_numpy()})
    wide = table.pivot(index="year", columns="month", values="r")
    return wide.reindex(columns=range(1, 13))


def monthly_heatmap_figure(returns: pd.Series, strategy_label: str = "Strategy") -> Figure:
    """Year x month heatmap of compounded monthly returns in percent; months with
    no bar are left blank."""
    import matplotlib as mpl

    wide = monthly_table(returns)
    values = wide.to_numpy(dtype=float) * 100.0
    finite = values[np.isfinite(values)]
    lim = float(np.abs(finite).max()) if finite.size else 1.0
    height = max(2.0, 0.28 * len(wide) + 1.0)
    with mpl.rc_context(_RC):
        fig = _new_figure((QS_FIGSIZE[0], height))
        ax = fig.add_subplot(1, 1, 1)
        ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=-lim, vmax=lim,
                  aspect="auto", interpolation="nearest")
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(np.arange(12), MONTHS)
        ax.set_yticks(np.arange(len(wide)), [str(y) for y in wide.index])
        ax.grid(False)
        ax.set_title(f"{strategy_label} - Monthly Returns (%)", fontweight="bold")
    return fig


QUANTILE_PERIODS = (("Per bar", None), ("Weekly", "W"), ("Monthly", "ME"),
                    ("Quarterly", "QE"), ("Yearly", "YE"))


def return_quantiles_figure(returns: pd.Series, strategy_label: str = "Strategy") -> Figure:
    """Box plots of the strategy's returns per bar and compounded per week, month,
    quarter and year (whiskers 1.5 IQR, as quantstats), percent y axis."""
    import matplotlib as mpl

    r = pd.to_numeric(returns, errors="coerce").dropna()
    groups = [(name, r if freq is None else compounded(r, freq)) for name, freq in QUANTILE_PERIODS]
    groups = [(name, s.to_numpy()) for name, s in groups if len(s)]
    with mpl.rc_context(_RC):
        fig = _new_figure(QS_FIGSIZE)
        ax = fig.add_subplot(1, 1, 1)
        if groups:
            ax.boxplot([v for _, v in groups], tick_labels=[n for n, _ in groups], whis=1.5,
                       patch_artist=True, boxprops={"facecolor": STRATEGY_COLOR, "alpha": 0.6},
                       medianprops={"color": "black"})
        ax.axhline(0.0, color="black", lw=0.8, ls="--")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_title(f"{strategy_label} - Return Quantiles", fontweight="bold")
    return fig


def _replace_div(page: str, div_id: str, fragment: str) -> tuple[str, bool]:
    """Replace the content of ``<div id="div_id">...</div>`` (no nested divs inside)."""
    pattern = re.compile(rf'(<div id="{re.escape(div_id)}">)(.*?)(</div>)', re.S)
    new, count = pattern.subn(lambda m: m.group(1) + fragment + m.group(3), page, count=1)
    return new, bool(count)


def replace_quantstats_charts(
    page: str,
    returns: pd.Series,
    benchmark: pd.Series | None,
    strategy_label: str = "Strategy",
    benchmark_label: str = "Benchmark",
) -> str:
    """``page`` with quantstats' EOY, monthly-distribution, monthly-heatmap and
    return-quantile figures replaced by :func:`eoy_figure`,
    :func:`monthly_distribution_figure`, :func:`monthly_heatmap_figure` and
    :func:`return_quantiles_figure` (base64 PNG ``<img>`` tags). A div the page
    does not have is left alone."""
    figures = {
        "eoy_returns": (eoy_figure(returns, benchmark, strategy_label, benchmark_label),
                        "end-of-year returns"),
        "monthly_dist": (monthly_distribution_figure(returns, benchmark, strategy_label,
                                                     benchmark_label),
                         "distribution of monthly returns"),
        "monthly_heatmap": (monthly_heatmap_figure(returns, strategy_label),
                            "monthly returns heatmap"),
        "returns_dist": (return_quantiles_figure(returns, strategy_label), "return quantiles"),
    }
    for div_id, (fig, alt) in figures.items():
        page, _ = _replace_div(page, div_id, fig_to_img(fig, alt, dpi=100))
    return page


__all__ = [
    "compounded",
    "yearly_returns",
    "eoy_figure",
    "monthly_distribution_figure",
    "return_quantiles_figure",
    "monthly_table",
    "monthly_heatmap_figure",
    "replace_quantstats_charts",
]
