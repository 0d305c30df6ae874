"""Small matplotlib figures rendered to self-contained ``<img>`` tags.

Figures are built with :class:`matplotlib.figure.Figure` and rendered by the Agg
canvas, so no pyplot state or GUI backend is touched. Every function returns an
HTML fragment: an ``<img src="data:image/png;base64,...">`` tag, or a short
``<p class="no-data">`` note when there is nothing to draw.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, StrMethodFormatter

from lstmknn.reports.forecast_metrics import forecast_values, per_group_table
from lstmknn.reports.trading_metrics import drawdown_series

DPI = 80
FIGSIZE = (9.0, 3.0)
FIGSIZE_UNIVERSE = (9.0, 3.6)  # taller: the legend sits below the axes
FOLD_YLIM = (0.8, 1.3)
MAX_POSITION_LINES = 5  # more symbols: exposure summary instead of one line per symbol
EXPOSURE_WINDOW = 21  # bars averaged in the exposure summary
_RC = {"font.family": "DejaVu Sans", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3}


def _percent_label(value: float, _pos: object = None) -> str:
    return f"{round(value * 100.0, 6):g}%"


def percent_axis(axis) -> None:  # noqa: ANN001 - a matplotlib Axis
    """Ticks at round percentages (1, 2, 5 x 10^k) labelled exactly ("2.5%", never
    "2%" or "3%" for a tick at 2.5 %, no "10.0%")."""
    axis.set_major_locator(MaxNLocator(nbins="auto", steps=[1, 2, 5, 10]))
    axis.set_major_formatter(FuncFormatter(_percent_label))


def no_data(what: str) -> str:
    """Placeholder fragment for a figure that has no data."""
    return f'<p class="no-data">No data for {html.escape(what)}.</p>'


def _new_figure(figsize: tuple[float, float] = FIGSIZE) -> Figure:
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def fig_to_img(fig: Figure, alt: str = "", dpi: int = DPI) -> str:
    """Render ``fig`` to PNG and return an ``<img>`` tag with a base64 data URI."""
    buf = io.BytesIO()
    with mpl.rc_context(_RC):
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=dpi)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _prediction_dates(predictions: pd.DataFrame) -> pd.DatetimeIndex:
    if "date" in predictions.columns:
        return pd.DatetimeIndex(pd.to_datetime(predictions["date"]))
    return pd.DatetimeIndex(predictions.index)


def _build(draw: Callable[[Axes], None], figsize: tuple[float, float] = FIGSIZE) -> Figure:
    """A one-axes figure drawn by ``draw`` under the report's rc settings."""
    with mpl.rc_context(_RC):
        fig = _new_figure(figsize)
        draw(fig.add_subplot(1, 1, 1))
    return fig


def _plot(draw: Callable[[Axes], None], alt: str, figsize: tuple[float, float] = FIGSIZE) -> str:
    return fig_to_img(_build(draw, figsize), alt)


def report_figure(figsize: tuple[float, float] = FIGSIZE) -> Figure:
    """An empty Agg figure of the report's size; add axes inside ``report_style()``."""
    return _new_figure(figsize)


def report_style() -> AbstractContextManager:
    """Context manager applying the report's font and grid settings to new artists."""
    return mpl.rc_context(_RC)


def n_symbols(predictions: pd.DataFrame | None) -> int:
    """Number of distinct symbols in ``predictions`` (1 when there is no ``symbol`` column)."""
    if predictions is None or "symbol" not in predictions.columns:
        return 1
    return max(int(predictions["symbol"].nunique()), 1)


def _legend_below(ax: Axes, handles: list | None = None, labels: list | None = None,
                  ncols: int = 4) -> None:
    """Legend in a row under the x tick labels, outside the data area."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.14),
              ncols=max(1, min(ncols, len(handles))), fontsize=7, frameon=False)


def _per_date(predictions: pd.DataFrame, values: dict[str, np.ndarray]) -> pd.DataFrame:
    """Cross-sectional mean of each array in ``values`` per date (NaNs skipped), date-sorted."""
    frame = pd.DataFrame(values, index=_prediction_dates(predictions))
    return frame.groupby(level=0).mean().sort_index()


def equity_figure(
    returns: pd.Series, benchmark: pd.Series | None = None, benchmark_label: str = "benchmark"
) -> Figure | None:
    """Compounded cumulative return (percent) of the strategy and (optionally) the
    benchmark, the quantity quantstats calls "Cumulative Return"; None without data."""
    r = pd.to_numeric(returns, errors="coerce").dropna()
    if r.empty:
        return None

    def draw(ax):
        ax.plot(r.index, (1 + r).cumprod() - 1.0, label="strategy", lw=1.2, zorder=3)
        if benchmark is not None and len(benchmark):
            b = pd.to_numeric(benchmark, errors="coerce").reindex(r.index).fillna(0.0)
            ax.plot(b.index, (1 + b).cumprod() - 1.0, label=benchmark_label, lw=1.0, alpha=0.8)
        ax.axhline(0.0, color="black", lw=0.6)
        percent_axis(ax.yaxis)
        ax.set_title("Cumulative return (compounded)")
        _legend_below(ax)

    return _build(draw, FIGSIZE_UNIVERSE)


def plot_equity(
    returns: pd.Series, benchmark: pd.Series | None = None, benchmark_label: str = "benchmark"
) -> str:
    """Cumulative return of the strategy and the benchmark (see :func:`equity_figure`)."""
    fig = equity_figure(returns, benchmark, benchmark_label)
    return no_data("equity") if fig is None else fig_to_img(fig, "equity vs benchmark")


def plot_drawdown(
    returns: pd.Series, benchmark: pd.Series | None = None, benchmark_label: str = "benchmark"
) -> str:
    """Underwater curves (percent below the running peak) of the strategy and
    (optionally) the benchmark."""
    r = pd.to_numeric(returns, errors="coerce").dropna()
    if r.empty:
        return no_data("drawdown")

    def draw(ax):
        dd = drawdown_series(r)
        ax.fill_between(dd.index, dd.to_numpy(), 0.0, alpha=0.5, label="strategy")
        if benchmark is not None and len(benchmark):
            b = pd.to_numeric(benchmark, errors="coerce").reindex(r.index).fillna(0.0)
            ax.plot(b.index, drawdown_series(b), lw=0.9, color="grey", label=benchmark_label)
        percent_axis(ax.yaxis)
        ax.set_title("Drawdown from the running peak")
        _legend_below(ax)

    return _plot(draw, "drawdown", FIGSIZE_UNIVERSE)


def alpha_regime_figure(predictions: pd.DataFrame) -> Figure | None:
    """Figure of the fusion weight ``alpha`` and the volatile regime; None without ``alpha``.

    One symbol: ``alpha`` per bar with volatile bars shaded. Several symbols
    (rows = symbol x date): per date the mean ``alpha`` across symbols and, on
    a right axis, the share of symbols in the volatile regime.
    """
    if predictions.empty or "alpha" not in predictions.columns:
        return None
    if n_symbols(predictions) >= 2:
        return _alpha_regime_universe(predictions)
    dates = _prediction_dates(predictions)
    alpha = pd.to_numeric(predictions["alpha"], errors="coerce").to_numpy()

    def draw(ax):
        if "regime" in predictions.columns:
            volatile = (predictions["regime"].astype(str) == "volatile").to_numpy()
            ax.fill_between(
                dates,
                0,
                1,
                where=volatile,
                color="tab:red",
                alpha=0.15,
                step="post",
                transform=ax.get_xaxis_transform(),
                label="volatile regime",
            )
        ax.step(dates, alpha, where="post", lw=1.0, label="alpha")
        ax.margins(y=0.08)  # a plateau at the highest alpha stays off the frame
        ax.set_ylabel("alpha (weight of LSTM)")
        ax.set_title("Fusion weight alpha and regime")
        _legend_below(ax)

    return _build(draw, FIGSIZE_UNIVERSE)


def _alpha_regime_universe(predictions: pd.DataFrame) -> Figure:
    n = n_symbols(predictions)
    values = {"alpha": pd.to_numeric(predictions["alpha"], errors="coerce").to_numpy(float)}
    if "regime" in predictions.columns:
        values["volatile"] = (predictions["regime"].astype(str) == "volatile").to_numpy(float)
    per_date = _per_date(predictions, values)

    def draw(ax):
        handles = []
        if "volatile" in per_date:
            right = ax.twinx()
            right.grid(False)
            share = per_date["volatile"].to_numpy()
            handles.append(right.fill_between(
                per_date.index, 0.0, share, step="post", color="tab:red", alpha=0.2, lw=0,
                label="share of symbols in the volatile regime (right axis)"))
            right.set_ylim(0.0, 1.0)
            right.set_ylabel("share volatile")
            ax.set_zorder(right.get_zorder() + 1)
            ax.patch.set_visible(False)
        handles += ax.step(per_date.index, per_date["alpha"].to_numpy(), where="post", lw=1.0,
                           color="tab:blue", label=f"mean alpha across {n} symbols (left axis)")
        ax.set_ylabel("alpha (weight of LSTM)")
        ax.set_title(f"Fusion weight alpha and regime, per date across {n} symbols")
        _legend_below(ax, handles, [h.get_label() for h in handles], ncols=2)

    return _build(draw, FIGSIZE_UNIVERSE)


def plot_alpha_regime(predictions: pd.DataFrame) -> str:
    """Fusion weight ``alpha`` over time with the volatile regime (see :func:`alpha_regime_figure`)."""
    fig = alpha_regime_figure(predictions)
    return no_data("alpha / regime") if fig is None else fig_to_img(fig, "alpha and regime over time")


def cumulative_forecast_figure(
    predictions: pd.DataFrame, model: str = "fused", y: str = "y_true"
) -> Figure | None:
    """Cumulative sum of ``model`` forecasts vs cumulative realised returns; None without data.

    Several symbols: the cumulative sums of the per-date cross-sectional means
    (so the curves are those of an equal-weighted average name, not of all rows).
    """
    if predictions.empty or (model not in predictions.columns and model != "zero"):
        return None
    n = n_symbols(predictions)
    f = forecast_values(predictions, model)
    yt = pd.to_numeric(predictions[y], errors="coerce").to_numpy(dtype=float)
    if n >= 2:
        per_date = _per_date(predictions, {"f": f, "y": yt}).fillna(0.0)
        dates, f_sum, y_sum = per_date.index, per_date["f"].cumsum(), per_date["y"].cumsum()
        title = (f"Cumulative {model} forecast vs realised return, "
                 f"per-date mean across {n} symbols")
    else:
        dates = _prediction_dates(predictions)
        f_sum, y_sum = np.cumsum(np.nan_to_num(f)), np.cumsum(np.nan_to_num(yt))
        title = f"Cumulative {model} forecast vs realised return"

    def draw(ax):
        ax.plot(dates, np.asarray(y_sum), label="realised", lw=1.0)
        ax.plot(dates, np.asarray(f_sum), label=f"{model} forecast", lw=1.0)
        ax.set_ylabel("cumulative sum of returns")
        ax.set_title(title)
        _legend_below(ax)

    return _build(draw, FIGSIZE_UNIVERSE)


def plot_cumulative_forecast(
    predictions: pd.DataFrame, model: str = "fused", y: str = "y_true"
) -> str:
    """Cumulative forecast vs realised return (see :func:`cumulative_forecast_figure`)."""
    fig = cumulative_forecast_figure(predictions, model, y)
    if fig is None:
        return no_data(f"cumulative {model} forecast")
    return fig_to_img(fig, f"cumulative {model} forecast vs realised")


def fold_mse_ratios(
    predictions: pd.DataFrame, models: Sequence[str], y: str = "y_true"
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(per-fold, cumulative) MSE of each model relative to the zero forecast's, one
    row per fold; the cumulative ratio of fold k pools folds 0..k (its last row is the
    whole run's MSE ratio). None without folds or a zero forecast."""
    if predictions.empty or "fold" not in predictions.columns:
        return None
    wide = per_group_table(predictions, models, by="fold", y=y).pivot(
        index="fold", columns="model", values="mse"
    )
    order = [m for m in dict.fromkeys(models) if m in wide.columns and m != "zero"]
    if "zero" not in wide.columns or not order:
        return None
    n = per_group_table(predictions, ["zero"], by="fold", y=y).set_index("fold")["n"]
    n = n.reindex(wide.index).astype(float)
    zero = wide["zero"].replace(0.0, np.nan)
    per_fold = wide[order].div(zero, axis=0)
    sse = wide[order].mul(n, axis=0).cumsum()  # pooled: squared errors, not mean of means
    cumulative = sse.div((wide["zero"] * n).cumsum().replace(0.0, np.nan), axis=0)
    return per_fold, cumulative


def fold_mse_figure(
    predictions: pd.DataFrame, models: Sequence[str], y: str = "y_true"
) -> Figure | None:
    """Two panels over the walk-forward folds, MSE relative to the zero forecast (1 =
    as good as zero, below 1 beats it): on top each fold's own ratio (the per-fold
    stability), below the cumulative ratio over the folds so far (its last point is
    the whole run's ratio, in the legend). Both panels share the y range,
    :data:`FOLD_YLIM` widened to the drawn values. A model whose per-fold median is
    far from 1 (outside 0.5..1.5, e.g. persistence at about 2) is not drawn; its
    legend entry says "off scale" with its range. A drawn model's occasional fold
    outside the range is a triangle on the edge. None without folds or a zero forecast."""
    ratios = fold_mse_ratios(predictions, models, y)
    if ratios is None:
        return None
    per_fold, cumulative = ratios
    median = per_fold.median()
    drawn = [m for m in per_fold.columns if 0.5 < median[m] < 1.5]
    off = [m for m in per_fold.columns if m not in drawn]
    values = np.concatenate([per_fold[drawn].to_numpy().ravel(),
                             cumulative[drawn].to_numpy().ravel()]) if drawn else np.array([])
    values = values[np.isfinite(values)]
    core = values[(values > 0.5) & (values < 1.5)]
    low = min(FOLD_YLIM[0], float(core.min()) - 0.02) if core.size else FOLD_YLIM[0]
    high = max(FOLD_YLIM[1], float(core.max()) + 0.02) if core.size else FOLD_YLIM[1]
    x = per_fold.index.to_numpy()
    few = len(x) <= 24
    palette = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {m: palette[i % len(palette)] for i, m in enumerate(per_fold.columns)}

    def draw_panel(ax, frame: pd.DataFrame, what: str, legend: bool) -> None:
        for model in drawn:
            v = frame[model].to_numpy(dtype=float)
            inside = np.where((v >= low) & (v <= high), v, np.nan)
            label = f"{model} (all folds {float(cumulative[model].iloc[-1]):.3f})" if legend \
                else model
            ax.plot(x, inside, lw=1.4 if model == "fused" else 0.8, color=colors[model],
                    marker="o" if few else ".", ms=4 if few else 2.5, label=label,
                    zorder=3 if model == "fused" else 2)
            over, under = np.isfinite(v) & (v > high), np.isfinite(v) & (v < low)
            edge = (high - low) * 0.03
            ax.plot(x[over], np.full(over.sum(), high - edge), ls="none", marker="^",
                    color=colors[model], ms=5)
            ax.plot(x[under], np.full(under.sum(), low + edge), ls="none", marker="v",
                    color=colors[model], ms=5)
        if legend:
            for model in off:
                own = per_fold[model].to_numpy(dtype=float)
                ax.plot([], [], color=colors[model], marker="^", ls="none",
                        label=f"{model} (off scale, not drawn: per fold {np.nanmin(own):.2f} "
                              f"to {np.nanmax(own):.2f}, all folds "
                              f"{float(cumulative[model].iloc[-1]):.3f})")
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_ylim(low, high)
        ax.set_ylabel(what)
        if few:
            ax.set_xticks(x, [str(k) for k in x])

    with mpl.rc_context(_RC):
        fig = _new_figure((FIGSIZE[0], 5.6))
        top = fig.add_subplot(2, 1, 1)
        bottom = fig.add_subplot(2, 1, 2, sharex=top)
        draw_panel(top, per_fold, "per fold", legend=False)
        draw_panel(bottom, cumulative, "cumulative", legend=True)
        top.set_title("MSE relative to the zero forecast (below 1 beats zero): "
                      "each fold (top), all folds so far (bottom)")
        top.tick_params(labelbottom=False)
        bottom.set_xlabel("fold")
        handles, labels = bottom.get_legend_handles_labels()
        bottom.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.3),
                      ncols=2, fontsize=7, frameon=False)  # under the "fold" label
    return fig


def plot_fold_mse(predictions: pd.DataFrame, models: Sequence[str], y: str = "y_true") -> str:
    """Per-fold and cumulative MSE relative to zero (see :func:`fold_mse_figure`)."""
    fig = fold_mse_figure(predictions, models, y)
    if fig is None:
        return no_data("per-fold MSE")
    return fig_to_img(fig, "per-fold MSE relative to zero forecast")


def positions_figure(
    positions: pd.DataFrame | None, predictions: pd.DataFrame | None = None
) -> Figure | None:
    """Target positions (fraction of equity) over time; None when there is nothing to draw.

    Up to :data:`MAX_POSITION_LINES` symbols: each symbol's target (faint) with
    its 21-bar average, since daily long/short flips make a raw step plot
    unreadable over decades. More symbols: the gross (sum of ``|target|``) and
    net (sum of ``target``) exposure per date over the symbols with a row that
    date, and on a right axis the number of names long and short, each as its
    :data:`EXPOSURE_WINDOW`-bar average for the same reason.
    Falls back to shares held (``positions``) when no targets are given.
    """
    if predictions is not None and "target" in predictions.columns and len(predictions):
        if n_symbols(predictions) > MAX_POSITION_LINES:
            return _exposure_figure(predictions)
        frame = predictions.assign(date=_prediction_dates(predictions))
        groups = frame.groupby("symbol") if "symbol" in frame.columns else [("target", frame)]

        def draw_target(ax):
            for name, g in groups:
                t = pd.Series(pd.to_numeric(g["target"], errors="coerce").to_numpy(),
                              index=pd.DatetimeIndex(g["date"]))
                line = ax.plot(t.index, t.to_numpy(), lw=0.4, alpha=0.25)[0]
                ax.plot(t.index, t.rolling(21, min_periods=1).mean().to_numpy(), lw=1.4,
                        color=line.get_color(), label=f"{name} (21-bar mean)")
            ax.axhline(0.0, color="black", lw=0.6)
            ax.set_ylabel("fraction of equity")
            ax.set_title("Target position (faint) and its 21-bar average")
            _legend_below(ax, ncols=MAX_POSITION_LINES)

        return _build(draw_target, FIGSIZE_UNIVERSE)
    if positions is not None and len(positions.columns) and len(positions):

        def draw(ax):
            for col in positions.columns:
                ax.step(positions.index, positions[col].to_numpy(dtype=float), where="post",
                        lw=1.0, label=str(col))
            ax.set_title("Position (shares)")
            _legend_below(ax, ncols=MAX_POSITION_LINES)

        return _build(draw, FIGSIZE_UNIVERSE)
    return None


def _exposure_figure(predictions: pd.DataFrame) -> Figure:
    t = pd.to_numeric(predictions["target"], errors="coerce").to_numpy(float)
    frame = pd.DataFrame(
        {"gross": np.abs(t), "net": t, "long": (t > 0).astype(float), "short": (t < 0).astype(float)},
        index=_prediction_dates(predictions),
    )
    per_date = frame.groupby(level=0).sum(min_count=1).sort_index()
    smooth = per_date.rolling(EXPOSURE_WINDOW, min_periods=1).mean()
    n = n_symbols(predictions)
    w = EXPOSURE_WINDOW

    def draw(ax):
        right = ax.twinx()
        right.grid(False)
        handles = ax.plot(smooth.index, smooth["gross"].to_numpy(), lw=2.4, color="tab:blue",
                          alpha=0.7, label="gross exposure, sum |target| (left)")
        handles += ax.plot(smooth.index, smooth["net"].to_numpy(), lw=1.2, ls="--",
                           color="tab:orange", label="net exposure, sum target (left)")
        handles += right.plot(smooth.index, smooth["long"].to_numpy(), lw=0.9, color="tab:green",
                              alpha=0.7, label="names long (right)")
        handles += right.plot(smooth.index, smooth["short"].to_numpy(), lw=0.9, color="tab:red",
                              alpha=0.7, label="names short (right)")
        right.set_ylim(0, max(1.0, float(smooth[["long", "short"]].max().max())) * 1.25)
        right.yaxis.set_major_locator(MaxNLocator(integer=True))
        right.set_ylabel("number of names")
        ax.set_ylabel("fraction of equity")
        # headroom: a fully invested book (gross = net = 1) must not sit on the frame
        top = max(float(smooth[["gross", "net"]].max().max()), 0.0)
        bottom = min(float(smooth["net"].min()), 0.0)
        pad = 0.15 * max(top - bottom, 0.1)
        ax.set_ylim(bottom - (pad if bottom < 0 else 0.0), top + pad)
        ax.set_zorder(right.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set_title(f"Target exposure across {n} symbols ({w}-bar averages of per-date values)")
        _legend_below(ax, handles, [h.get_label() for h in handles], ncols=2)

    return _build(draw, FIGSIZE_UNIVERSE)


def plot_positions(positions: pd.DataFrame | None, predictions: pd.DataFrame | None = None) -> str:
    """Target position or exposure over time (see :func:`positions_figure`)."""
    fig = positions_figure(positions, predictions)
    if fig is None:
        return no_data("positions")
    several = predictions is not None and n_symbols(predictions) > MAX_POSITION_LINES
    alt = "target exposure over time" if several else "target position over time"
    if predictions is None or "target" not in predictions.columns or not len(predictions):
        alt = "position over time"
    return fig_to_img(fig, alt)


def costs_figure(trades: pd.DataFrame | None) -> Figure | None:
    """Cumulative costs over time; None without a ``commission`` column.

    Costs are commission plus slippage (``|fill price - open| * size``): with a
    ``slippage`` column the figure draws commission, slippage and their total,
    each labelled with its final amount; without one it draws the commission
    alone and its title says slippage was not recorded.
    """
    if trades is None or trades.empty or "commission" not in trades.columns:
        return None
    t = trades.assign(date=pd.to_datetime(trades["date"])).sort_values("date", kind="stable")

    def paid(col: str) -> np.ndarray:
        return pd.to_numeric(t[col], errors="coerce").fillna(0.0).abs().cumsum().to_numpy()

    lines = [("commission", paid("commission"), "tab:blue", "-")]
    if "slippage" in t.columns:  # dashed on top: it stays visible when the two coincide
        lines.append(("slippage", paid("slippage"), "tab:orange", "--"))
        lines.insert(0, ("total costs", lines[0][1] + lines[1][1], "black", "-"))
        title = "Cumulative costs paid: commission + slippage"
    else:
        title = "Cumulative commission paid (slippage not recorded)"

    def draw(ax):
        widths = {"total costs": 1.6, "commission": 2.4, "slippage": 1.3}
        for label, values, color, style in lines:
            ax.step(t["date"], values, where="post", lw=widths[label], color=color, ls=style,
                    alpha=0.6 if label == "commission" else 1.0,
                    label=f"{label} ({values[-1]:,.0f})")
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.set_ylabel("account currency")
        ax.set_title(title)
        _legend_below(ax)

    return _build(draw, FIGSIZE_UNIVERSE)


def plot_costs(trades: pd.DataFrame | None) -> str:
    """Cumulative costs paid over time (see :func:`costs_figure`)."""
    fig = costs_figure(trades)
    return no_data("costs") if fig is None else fig_to_img(fig, "cumulative costs")


def model_figures(
    returns: pd.Series,
    benchmark: pd.Series | None,
    predictions: pd.DataFrame,
    models: Sequence[str],
    trades: pd.DataFrame | None = None,
    positions: pd.DataFrame | None = None,
    target_model: str = "fused",
    y: str = "y_true",
    *,
    benchmark_label: str = "benchmark",
) -> dict[str, str]:
    """All figures of the models section, title -> HTML fragment."""
    cumulative = f"Cumulative {target_model} forecast vs realised"
    if n_symbols(predictions) >= 2:
        cumulative += " (per-date mean across symbols)"
    return {
        f"Equity vs {benchmark_label}": plot_equity(returns, benchmark, benchmark_label),
        "Drawdown": plot_drawdown(returns, benchmark, benchmark_label),
        "Alpha and regime": plot_alpha_regime(predictions),
        cumulative: plot_cumulative_forecast(
            predictions, target_model, y
        ),
        "MSE per fold": plot_fold_mse(predictions, models, y),
        "Position": plot_positions(positions, predictions),
        "Cumulative costs": plot_costs(trades),
    }
