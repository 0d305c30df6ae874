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

* **Cumulative Returns (Log Scaled)** labels a short run's log axis with
  overlapping "1%" and "0%" ticks at the top and one tick far below.
* **Daily Returns (Cumulative Sum)** resamples the cumulative sum to calendar
  days with ``sum``, so every weekend and holiday drops the line to 0: a
  sawtooth, which over 16 years looks like a filled area.
* **Rolling Volatility / Sharpe / Sortino / Beta** (6-month windows) are empty,
  with ticks ``01-01 00``, when the run has no more bars than the window, and the
  strategy's volatility line hides under the benchmark's.

These figures are redrawn here from the same returns and swapped into the page
(:func:`replace_quantstats_charts`), in the ``<div>`` quantstats reserves for each
(``eoy_returns``, ``monthly_dist``, ``monthly_heatmap``, ``returns_dist``,
``log_returns``, ``daily_returns``, ``rolling_beta``, ``rolling_vol``, ``rolling_sharpe``,
``rolling_sortino``). A chart the run is too short for is left out with a sentence
saying why (:func:`too_short`), never drawn empty: rolling charts need more bars
than their window, yearly ones more than a year, the monthly distribution
:data:`MIN_MONTHS` months. The other quantstats charts are kept as drawn.
"""

from __future__ import annotations

import html
import math
import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lstmknn.reports.plots import _RC, _new_figure, fig_to_img, percent_axis

STRATEGY_COLOR = "#348dc1"  # quantstats' strategy blue
BENCHMARK_COLOR = "#fedd78"  # quantstats' benchmark yellow
QS_FIGSIZE = (8.0, 4.2)
QS_ROLLING_FIGSIZE = (8.0, 3.4)
MIN_MONTHS = 12  # months a distribution of monthly returns needs
MIN_BOX = 5  # values a box of the return-quantile figure needs


def too_short(what: str, why: str) -> str:
    """The sentence shown instead of a chart or table the run is too short for."""
    return f'<p class="lk-short"><b>{html.escape(what)}</b> left out: {html.escape(why)}.</p>'


def span_text(returns: pd.Series) -> str:
    """"83 bars, 23 Apr 2010 to 20 Aug 2010" for the run's returns."""
    idx = returns.index
    if not len(idx):
        return "no bars"
    return f"{len(idx)} bars, {idx[0]:%d %b %Y} to {idx[-1]:%d %b %Y}"


def windows(periods_per_year: float) -> tuple[int, int]:
    """quantstats' rolling windows: (half a year, a year) of bars, e.g. (126, 252)."""
    year = max(int(round(periods_per_year)), 2)
    return int(math.ceil(year / 2)), year


def longer_than_a_year(returns: pd.Series, periods_per_year: float) -> bool:
    """More than a year of bars and at least two calendar years: what yearly tables need."""
    idx = returns.index
    return len(idx) > periods_per_year and len(idx) > 0 and idx[-1].year > idx[0].year


def _time_axis(ax) -> None:  # noqa: ANN001 - a matplotlib Axes
    """Concise date ticks (years over decades, months over a few months)."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(maxticks=9)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _legend_below(ax, ncols: int = 3, dy: float = -0.16) -> None:  # noqa: ANN001 - an Axes
    """Legend in a row under the axes, clear of the data."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, dy), ncols=ncols, fontsize=8,
              frameon=False)


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
        percent_axis(ax.yaxis)
        ax.set_ylabel("Return")
        ax.set_title("EOY Returns vs Benchmark" if has_bench else "EOY Returns",
                     fontweight="bold")
        _legend_below(ax, dy=-0.2 if len(x) > 8 else -0.12)
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
        percent_axis(ax.xaxis)
        ax.set_xlabel("monthly return (dashed: mean)")
        ax.set_ylabel("months")
        ax.set_title("Distribution of Monthly Returns", fontweight="bold")
        _legend_below(ax, dy=-0.2)
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
            if np.isfinite(v):  # white on the darkest cells, black elsewhere
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(v) > 0.6 * lim else "black")
        ax.set_xticks(np.arange(12), MONTHS)
        ax.set_yticks(np.arange(len(wide)), [str(y) for y in wide.index])
        ax.grid(False)
        ax.set_title(f"{strategy_label} - Monthly Returns (%)", fontweight="bold")
    return fig


QUANTILE_PERIODS = (("Per bar", None), ("Weekly", "W"), ("Monthly", "ME"),
                    ("Quarterly", "QE"), ("Yearly", "YE"))


def return_quantiles_figure(returns: pd.Series, strategy_label: str = "Strategy") -> Figure:
    """Box plots of the strategy's returns per bar and compounded per week, month,
    quarter and year (whiskers 1.5 IQR, as quantstats), percent y axis. A period
    with fewer than :data:`MIN_BOX` values gets no box (one or two values are no
    distribution); the x label names the periods left out."""
    import matplotlib as mpl

    r = pd.to_numeric(returns, errors="coerce").dropna()
    groups = [(name, r if freq is None else compounded(r, freq)) for name, freq in QUANTILE_PERIODS]
    dropped = [name.lower() for name, s in groups if len(s) < MIN_BOX]
    groups = [(name, s.to_numpy()) for name, s in groups if len(s) >= MIN_BOX]
    with mpl.rc_context(_RC):
        fig = _new_figure(QS_FIGSIZE)
        ax = fig.add_subplot(1, 1, 1)
        if groups:
            ax.boxplot([v for _, v in groups], tick_labels=[n for n, _ in groups], whis=1.5,
                       patch_artist=True, boxprops={"facecolor": STRATEGY_COLOR, "alpha": 0.6},
                       medianprops={"color": "black"})
        ax.axhline(0.0, color="black", lw=0.8, ls="--")
        percent_axis(ax.yaxis)
        if dropped:
            ax.set_xlabel(f"left out ({', '.join(dropped)}): fewer than {MIN_BOX} values")
        ax.set_title(f"{strategy_label} - Return Quantiles", fontweight="bold")
    return fig


def log_returns_figure(
    returns: pd.Series,
    benchmark: pd.Series | None = None,
    strategy_label: str = "Strategy",
    benchmark_label: str = "Benchmark",
) -> Figure:
    """Compounded cumulative return on a log axis (growth of 1, ticks labelled as the
    cumulative return in percent): 1-9 x 10^k ticks when the curves span less than a
    factor 3, 1, 2, 3, 5, 7 x 10^k below a factor 30, else 1, 2, 5 x 10^k, so short
    and long runs both get several readable, distinct ticks."""
    import matplotlib as mpl
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    growth = {strategy_label: (1.0 + returns).cumprod()}
    if benchmark is not None and len(benchmark):
        growth[benchmark_label] = (1.0 + benchmark.reindex(returns.index).fillna(0.0)).cumprod()
    values = np.concatenate([g.to_numpy() for g in growth.values()] + [np.array([1.0])])
    values = values[np.isfinite(values) & (values > 0)]
    ratio = float(values.max() / values.min()) if values.size else 1.0
    with mpl.rc_context(_RC):
        fig = _new_figure((8.0, 4.0))
        ax = fig.add_subplot(1, 1, 1)
        for label, g in reversed(list(growth.items())):
            strategy = label == strategy_label
            ax.plot(g.index, g.to_numpy(), lw=1.3 if strategy else 1.1,
                    color=STRATEGY_COLOR if strategy else BENCHMARK_COLOR, label=label,
                    zorder=3 if strategy else 2)
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_yscale("log")
        subs = (np.arange(1.0, 10.0) if ratio < 3 else
                (1.0, 2.0, 3.0, 5.0, 7.0) if ratio < 30 else (1.0, 2.0, 5.0))
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{round((v - 1) * 100, 6):g}%"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        _time_axis(ax)
        ax.set_title("Cumulative Returns vs Benchmark (Log Scaled)" if len(growth) > 1
                     else "Cumulative Returns (Log Scaled)", fontweight="bold")
        _legend_below(ax, dy=-0.12)
    return fig


def returns_per_bar_figure(
    returns: pd.Series, strategy_label: str = "Strategy", periods_per_year: float = 252.0
) -> Figure:
    """The strategy's return on every bar, a thin bar from 0 (percent axis)."""
    import matplotlib as mpl

    r = pd.to_numeric(returns, errors="coerce").dropna()
    what = "Daily Returns" if periods_per_year <= 260 else "Returns per Bar"
    with mpl.rc_context(_RC):
        fig = _new_figure(QS_ROLLING_FIGSIZE)
        ax = fig.add_subplot(1, 1, 1)
        ax.vlines(r.index, 0.0, r.to_numpy(), color=STRATEGY_COLOR, lw=0.6 if len(r) > 500 else 1.2)
        ax.axhline(0.0, color="black", lw=0.8)
        percent_axis(ax.yaxis)
        _time_axis(ax)
        ax.set_title(f"{strategy_label} - {what}", fontweight="bold")
    return fig


def rolling_volatility_figure(
    returns: pd.Series,
    benchmark: pd.Series | None,
    window: int,
    periods_per_year: float,
    strategy_label: str = "Strategy",
    benchmark_label: str = "Benchmark",
    title: str = "Rolling Volatility (6-Months)",
) -> Figure:
    """Annualised rolling standard deviation of the strategy (a wide blue band) and of
    the benchmark (a thin dashed line over it), with the strategy's mean as a red
    dashed line. An always-invested long/short strategy has the benchmark's
    volatility: the two then coincide, and both stay visible."""
    import matplotlib as mpl

    scale = math.sqrt(periods_per_year)
    vol = returns.rolling(window).std() * scale
    with mpl.rc_context(_RC):
        fig = _new_figure(QS_ROLLING_FIGSIZE)
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(vol.index, vol.to_numpy(), color=STRATEGY_COLOR, lw=2.6, alpha=0.75, zorder=3,
                label=strategy_label)
        if benchmark is not None and len(benchmark):
            bvol = benchmark.reindex(returns.index).fillna(0.0).rolling(window).std() * scale
            ax.plot(bvol.index, bvol.to_numpy(), color="black", lw=0.8, ls="--",
                    zorder=4, label=benchmark_label)
        ax.axhline(float(vol.mean()), color="red", ls="--", lw=0.9, zorder=1,
                   label=f"{strategy_label} mean")
        ax.set_ylim(bottom=0.0)
        percent_axis(ax.yaxis)
        _time_axis(ax)
        ax.set_title(title, fontweight="bold")
        _legend_below(ax)
    return fig


def rolling_ratio(returns: pd.Series, window: int, periods_per_year: float,
                  kind: str = "sharpe") -> pd.Series:
    """quantstats' rolling Sharpe (mean / std) or Sortino (mean / root mean square of
    the negative returns) over ``window`` bars, annualised by sqrt(periods per year)."""
    mean = returns.rolling(window).mean()
    if kind == "sharpe":
        den = returns.rolling(window).std()
    else:
        den = np.sqrt((returns.clip(upper=0.0) ** 2).rolling(window).mean())
    return mean / den.where(den > 0) * math.sqrt(periods_per_year)


def rolling_ratio_figure(
    returns: pd.Series,
    window: int,
    periods_per_year: float,
    kind: str = "sharpe",
    strategy_label: str = "Strategy",
    title: str | None = None,
) -> Figure:
    """The strategy's rolling Sharpe or Sortino ratio (:func:`rolling_ratio`) with its
    mean as a red dashed line."""
    import matplotlib as mpl

    ratio = rolling_ratio(returns, window, periods_per_year, kind)
    with mpl.rc_context(_RC):
        fig = _new_figure(QS_ROLLING_FIGSIZE)
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(ratio.index, ratio.to_numpy(), color=STRATEGY_COLOR, lw=1.2, label=strategy_label)
        ax.axhline(float(ratio.mean()), color="red", ls="--", lw=0.9, label="mean")
        ax.axhline(0.0, color="black", lw=0.8)
        _time_axis(ax)
        ax.set_title(title or f"Rolling {kind.capitalize()} (6-Months)", fontweight="bold")
        _legend_below(ax)
    return fig


def rolling_beta(returns: pd.Series, benchmark: pd.Series, window: int) -> pd.Series:
    """Rolling beta: cov(strategy, benchmark) / var(benchmark) over ``window`` bars."""
    b = benchmark.reindex(returns.index).fillna(0.0)
    var = b.rolling(window).var()
    return returns.rolling(window).cov(b) / var.where(var > 0)


def rolling_beta_figure(
    returns: pd.Series,
    benchmark: pd.Series,
    window_list: list[tuple[int, str]],
    benchmark_label: str = "Benchmark",
) -> Figure:
    """Rolling beta to the benchmark for each ``(window, label)``, the first one's mean
    as a red dashed line."""
    import matplotlib as mpl

    with mpl.rc_context(_RC):
        fig = _new_figure(QS_ROLLING_FIGSIZE)
        ax = fig.add_subplot(1, 1, 1)
        for i, (window, label) in enumerate(window_list):
            beta = rolling_beta(returns, benchmark, window)
            ax.plot(beta.index, beta.to_numpy(), lw=1.3 if i == 0 else 1.0,
                    color=STRATEGY_COLOR if i == 0 else "grey", label=label)
            if i == 0:
                ax.axhline(float(beta.mean()), color="red", ls="--", lw=0.9,
                           label=f"{label} mean")
        ax.axhline(0.0, color="black", lw=0.8)
        _time_axis(ax)
        ax.set_title(f"Rolling Beta to {benchmark_label}", fontweight="bold")
        _legend_below(ax)
    return fig


def _replace_div(page: str, div_id: str, fragment: str) -> tuple[str, bool]:
    """Replace the content of ``<div id="div_id">...</div>`` (no nested divs inside)."""
    pattern = re.compile(rf'(<div id="{re.escape(div_id)}">)(.*?)(</div>)', re.S)
    new, count = pattern.subn(lambda m: m.group(1) + fragment + m.group(3), page, count=1)
    return new, bool(count)


def chart_fragments(
    returns: pd.Series,
    benchmark: pd.Series | None,
    strategy_label: str = "Strategy",
    benchmark_label: str = "Benchmark",
    periods_per_year: float = 252.0,
) -> dict[str, str]:
    """div id -> our ``<img>`` (or :func:`too_short` sentence) for each chart redrawn."""
    r = pd.to_numeric(returns, errors="coerce").dropna()
    b = None if benchmark is None or not len(benchmark) else benchmark.reindex(r.index).fillna(0.0)
    span = span_text(r)
    half, year = windows(periods_per_year)
    n = len(r)

    def img(fig: Figure, alt: str) -> str:
        return fig_to_img(fig, alt, dpi=100)

    out: dict[str, str] = {}
    if longer_than_a_year(r, periods_per_year):
        out["eoy_returns"] = img(eoy_figure(r, b, strategy_label, benchmark_label),
                                 "end-of-year returns")
    else:
        out["eoy_returns"] = too_short(
            "End-of-year returns", f"the run covers {span}; yearly returns need more than a "
            "year of bars over at least two calendar years")
    months = len(compounded(r, "ME"))
    if months >= MIN_MONTHS:
        out["monthly_dist"] = img(monthly_distribution_figure(r, b, strategy_label,
                                                              benchmark_label),
                                  "distribution of monthly returns")
    else:
        out["monthly_dist"] = too_short(
            "Distribution of monthly returns",
            f"the run has bars in {months} calendar months; a distribution needs {MIN_MONTHS}")
    out["log_returns"] = img(log_returns_figure(r, b, strategy_label, benchmark_label),
                             "cumulative returns, log scaled")
    out["monthly_heatmap"] = img(monthly_heatmap_figure(r, strategy_label),
                                 "monthly returns heatmap")
    out["returns_dist"] = img(return_quantiles_figure(r, strategy_label), "return quantiles")
    out["daily_returns"] = img(returns_per_bar_figure(r, strategy_label, periods_per_year),
                               "returns per bar")
    short = f"the run has {n} bars; a rolling {half}-bar (6-month) window needs more"
    if n > half:
        out["rolling_vol"] = img(rolling_volatility_figure(r, b, half, periods_per_year,
                                                           strategy_label, benchmark_label),
                                 "rolling volatility")
        out["rolling_sharpe"] = img(rolling_ratio_figure(r, half, periods_per_year, "sharpe",
                                                         strategy_label), "rolling Sharpe")
        out["rolling_sortino"] = img(rolling_ratio_figure(r, half, periods_per_year, "sortino",
                                                          strategy_label), "rolling Sortino")
    else:
        out["rolling_vol"] = too_short("Rolling volatility", short)
        out["rolling_sharpe"] = too_short("Rolling Sharpe", short)
        out["rolling_sortino"] = too_short("Rolling Sortino", short)
    if b is not None:
        if n > half:
            wins = [(half, "6-Months")] + ([(year, "12-Months")] if n > year else [])
            out["rolling_beta"] = img(rolling_beta_figure(r, b, wins, benchmark_label),
                                      "rolling beta")
        else:
            out["rolling_beta"] = too_short("Rolling beta", short)
    return out


def replace_quantstats_charts(
    page: str,
    returns: pd.Series,
    benchmark: pd.Series | None,
    strategy_label: str = "Strategy",
    benchmark_label: str = "Benchmark",
    periods_per_year: float = 252.0,
) -> str:
    """``page`` with the quantstats charts listed in the module docstring replaced by
    ours (:func:`chart_fragments`: base64 PNG ``<img>`` tags, or a sentence where the
    run is too short for the chart). A div the page does not have is left alone."""
    fragments = chart_fragments(returns, benchmark, strategy_label, benchmark_label,
                                periods_per_year)
    for div_id, fragment in fragments.items():
        page, _ = _replace_div(page, div_id, fragment)
    return page


__all__ = [
    "compounded",
    "yearly_returns",
    "eoy_figure",
    "monthly_distribution_figure",
    "return_quantiles_figure",
    "monthly_table",
    "monthly_heatmap_figure",
    "log_returns_figure",
    "returns_per_bar_figure",
    "rolling_volatility_figure",
    "rolling_ratio",
    "rolling_ratio_figure",
    "rolling_beta",
    "rolling_beta_figure",
    "chart_fragments",
    "too_short",
    "replace_quantstats_charts",
]
