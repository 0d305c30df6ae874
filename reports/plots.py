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

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reports.forecast_metrics import forecast_values, per_group_table
from reports.trading_metrics import drawdown_series

DPI = 80
FIGSIZE = (9.0, 3.0)
FOLD_YLIM = (0.8, 1.3)
_RC = {"font.family": "DejaVu Sans", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3}


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


def _plot(draw: Callable[[Axes], None], alt: str, figsize: tuple[float, float] = FIGSIZE) -> str:
    with mpl.rc_context(_RC):
        fig = _new_figure(figsize)
        draw(fig.add_subplot(1, 1, 1))
    return fig_to_img(fig, alt)


def plot_equity(
    returns: pd.Series, benchmark: pd.Series | None = None, benchmark_label: str = "benchmark"
) -> str:
    """Compounded growth of 1 for the strategy and (optionally) the benchmark."""
    r = pd.to_numeric(returns, errors="coerce").dropna()
    if r.empty:
        return no_data("equity")

    def draw(ax):
        ax.plot(r.index, (1 + r).cumprod(), label="strategy", lw=1.2)
        if benchmark is not None and len(benchmark):
            b = pd.to_numeric(benchmark, errors="coerce").reindex(r.index).fillna(0.0)
            ax.plot(b.index, (1 + b).cumprod(), label=benchmark_label, lw=1.0, alpha=0.8)
        ax.set_title("Equity (growth of 1)")
        ax.legend(loc="upper left")

    return _plot(draw, "equity vs benchmark")


def plot_drawdown(
    returns: pd.Series, benchmark: pd.Series | None = None, benchmark_label: str = "benchmark"
) -> str:
    """Underwater curves of the strategy and (optionally) the benchmark."""
    r = pd.to_numeric(returns, errors="coerce").dropna()
    if r.empty:
        return no_data("drawdown")

    def draw(ax):
        dd = drawdown_series(r)
        ax.fill_between(dd.index, dd.to_numpy(), 0.0, alpha=0.5, label="strategy")
        if benchmark is not None and len(benchmark):
            b = pd.to_numeric(benchmark, errors="coerce").reindex(r.index).fillna(0.0)
            ax.plot(b.index, drawdown_series(b), lw=0.9, color="grey", label=benchmark_label)
        ax.set_title("Drawdown")
        ax.legend(loc="lower left")

    return _plot(draw, "drawdown")


def plot_alpha_regime(predictions: pd.DataFrame) -> str:
    """Fusion weight ``alpha`` over time with volatile-regime bars shaded."""
    if predictions.empty or "alpha" not in predictions.columns:
        return no_data("alpha / regime")
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
        ax.set_title("Fusion weight alpha and regime")
        ax.legend(loc="upper left")

    return _plot(draw, "alpha and regime over time")


def plot_cumulative_forecast(
    predictions: pd.DataFrame, model: str = "fused", y: str = "y_true"
) -> str:
    """Cumulative sum of ``model`` forecasts vs cumulative realised returns."""
    if predictions.empty or (model not in predictions.columns and model != "zero"):
        return no_data(f"cumulative {model} forecast")
    dates = _prediction_dates(predictions)
    f = np.nan_to_num(forecast_values(predictions, model))
    yt = np.nan_to_num(pd.to_numeric(predictions[y], errors="coerce").to_numpy(dtype=float))

    def draw(ax):
        ax.plot(dates, np.cumsum(yt), label="realised", lw=1.0)
        ax.plot(dates, np.cumsum(f), label=f"{model} forecast", lw=1.0)
        ax.set_title(f"Cumulative {model} forecast vs realised return")
        ax.legend(loc="upper left")

    return _plot(draw, f"cumulative {model} forecast vs realised")


def plot_fold_mse(predictions: pd.DataFrame, models: Sequence[str], y: str = "y_true") -> str:
    """MSE per walk-forward fold relative to the zero forecast (1.0 = as good as zero).

    Few folds: grouped bars. Many folds: one line per model of the cumulative
    ratio, which shows whether any model beats zero over time; the y range is
    :data:`FOLD_YLIM` and each legend entry gives the final ratio (marked "off
    scale" when the line leaves the range, e.g. persistence at about 2).
    """
    if predictions.empty or "fold" not in predictions.columns:
        return no_data("per-fold MSE")
    wide = per_group_table(predictions, models, by="fold", y=y).pivot(
        index="fold", columns="model", values="mse"
    )
    order = [m for m in dict.fromkeys(models) if m in wide.columns and m != "zero"]
    if "zero" not in wide.columns or not order:
        return no_data("per-fold MSE")
    zero = wide["zero"].replace(0.0, np.nan)
    rel = wide[order].div(zero, axis=0)
    x = np.arange(len(rel))

    def draw(ax):
        if len(rel) <= 24:
            width = 0.8 / len(order)
            for i, model in enumerate(order):
                ax.bar(x + (i - (len(order) - 1) / 2) * width, rel[model].to_numpy(), width,
                       label=model)
            ax.set_xticks(x, [str(k) for k in rel.index])
        else:
            cum = wide[order].cumsum().div(wide["zero"].cumsum(), axis=0)
            for model in order:
                final = float(cum[model].iloc[-1])
                off = "" if FOLD_YLIM[0] <= final <= FOLD_YLIM[1] else ", off scale"
                ax.plot(rel.index, cum[model].to_numpy(), lw=1.2,
                        label=f"{model} (cumulative, ends {final:.3f}{off})")
            ax.set_ylim(*FOLD_YLIM)
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_xlabel("fold")
        ax.set_ylabel("MSE / zero-forecast MSE")
        ax.set_title("Forecast error per fold relative to a zero forecast (below 1 beats zero)")
        ax.legend(loc="upper left", ncols=min(len(order), 3), fontsize=7)

    return _plot(draw, "per-fold MSE relative to zero forecast")


def plot_positions(positions: pd.DataFrame | None, predictions: pd.DataFrame | None = None) -> str:
    """Target position (fraction of equity) per symbol, with its 21-bar average exposure.

    Daily long/short flips make a raw step plot unreadable over decades, so the
    rolling mean is drawn on top of the faint raw targets. Falls back to shares
    held (``positions``) when no targets are given.
    """
    if predictions is not None and "target" in predictions.columns and len(predictions):
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
            ax.legend(loc="upper left", fontsize=7)

        return _plot(draw_target, "target position over time")
    if positions is not None and len(positions.columns) and len(positions):

        def draw(ax):
            for col in positions.columns:
                ax.step(positions.index, positions[col].to_numpy(dtype=float), where="post",
                        lw=1.0, label=str(col))
            ax.set_title("Position (shares)")
            ax.legend(loc="upper left")

        return _plot(draw, "position over time")
    return no_data("positions")


def plot_costs(trades: pd.DataFrame | None) -> str:
    """Cumulative commission paid over time."""
    if trades is None or trades.empty or "commission" not in trades.columns:
        return no_data("costs")
    t = trades.assign(date=pd.to_datetime(trades["date"])).sort_values("date")
    paid = pd.to_numeric(t["commission"], errors="coerce").fillna(0.0).abs().cumsum()

    def draw(ax):
        ax.step(t["date"], paid.to_numpy(), where="post", lw=1.2)
        ax.set_title("Cumulative costs paid")

    return _plot(draw, "cumulative costs")


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
    return {
        f"Equity vs {benchmark_label}": plot_equity(returns, benchmark, benchmark_label),
        "Drawdown": plot_drawdown(returns, benchmark, benchmark_label),
        "Alpha and regime": plot_alpha_regime(predictions),
        f"Cumulative {target_model} forecast vs realised": plot_cumulative_forecast(
            predictions, target_model, y
        ),
        "MSE per fold": plot_fold_mse(predictions, models, y),
        "Position": plot_positions(positions, predictions),
        "Cumulative costs": plot_costs(trades),
    }
