"""HTML fragments of the "Models" section (tables, figures, trade summary)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from lstmknn.reports.cross_section import (
    ic_by_date,
    ic_summary,
    plot_cumulative_spread,
    plot_ic,
    plot_quantile_returns,
    quantile_returns,
    spread_series,
)
from lstmknn.reports.forecast_metrics import forecast_table, per_group_table
from lstmknn.reports.plots import fig_to_img, model_figures
from lstmknn.reports.significance import deflated_sharpe_ratio, dm_table, probabilistic_sharpe_ratio
from lstmknn.reports.trading_metrics import strategy_metrics

SECTION_CSS = """
#lstmknn-models{clear:both;max-width:960px;margin:40px auto 0;padding-top:10px;
border-top:1px solid #ccc;font:13px/1.4 Arial,Helvetica,sans-serif}
#lstmknn-models h2{font-size:20px;margin:0 0 10px}
#lstmknn-models h3{margin:24px 0 8px}
#lstmknn-models table.lk{border-collapse:collapse;width:auto;margin:0 0 16px}
#lstmknn-models table.lk th,#lstmknn-models table.lk td{padding:3px 8px;text-align:right;
border-bottom:1px solid #eee}
#lstmknn-models table.lk thead th{background:#eee;font-weight:700}
#lstmknn-models img{width:100%;max-width:960px}
#lstmknn-models .note{color:#555}
#lstmknn-models .verdict{background:#f6f6f6;border-left:4px solid #348dc1;padding:6px 12px;
margin:0 0 16px}
#lstmknn-models .verdict p{margin:4px 0}
"""


MAX_TABLE_FOLDS = 24  # more folds than this: the figure only, no wall of numbers


def _fmt(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return "–"
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return str(value)


def _money(value: float) -> str:
    return f"{value:,.2f}" if math.isfinite(value) else "n/a"


def table_html(frame: pd.DataFrame, index: bool = True) -> str:
    """Compact HTML table; floats to 4 significant digits, NaN as a dash."""
    if frame is None or frame.empty:
        return '<p class="note">(empty)</p>'
    if isinstance(frame.index, pd.RangeIndex) and frame.index.name is None:
        index = False
    elif index and frame.index.nlevels == 1 and frame.index.name is not None:
        frame, index = frame.reset_index(), False
    shown = frame.astype(object).map(_fmt)
    return shown.to_html(classes="lk", border=0, index=index, escape=True, na_rep="–")


def forecast_with_dm(
    predictions: pd.DataFrame,
    models: Sequence[str],
    target_model: str = "fused",
    y: str = "y_true",
) -> pd.DataFrame:
    """Forecast table plus DM statistic and p-value of each model against the target."""
    table = forecast_table(predictions, models, y=y)
    if target_model not in predictions.columns:
        return table
    dm = dm_table(predictions, target_model, against=list(table.index), y=y)
    return table.join(dm[["dm_stat", "p_value"]].rename(columns={"p_value": "dm_pvalue"}))


def fold_mse_table(
    predictions: pd.DataFrame, models: Sequence[str], y: str = "y_true"
) -> pd.DataFrame:
    """Wide fold x model MSE table with the row count per fold."""
    long = per_group_table(predictions, models, by="fold", y=y)
    wide = long.pivot(index="fold", columns="model", values="mse")
    order = [m for m in dict.fromkeys([*models, "zero"]) if m in wide.columns]
    wide = wide[order]
    wide.insert(0, "n", long.groupby("fold")["n"].max())
    wide.columns.name = None  # else "model" heads the fold column
    return wide


def fold_section(predictions: pd.DataFrame, models: Sequence[str], y: str = "y_true") -> str:
    """A line pointing to ``fold_errors.csv``, plus the fold x model MSE table only
    when there are at most :data:`MAX_TABLE_FOLDS` folds."""
    folds = fold_mse_table(predictions, models, y)
    note = (
        f'<p class="note">{len(folds)} walk-forward folds. The figure above plots the '
        "per-fold errors; every model's per-fold MSE, MAE, direction accuracy and IC are "
        'in the run folder\'s <a href="fold_errors.csv">fold_errors.csv</a>.</p>'
    )
    if len(folds) > MAX_TABLE_FOLDS:
        return note
    return note + "\n" + table_html(folds)


def ic_as_text(table: pd.DataFrame) -> pd.DataFrame:
    """The forecast table with an undefined IC (constant forecast) shown as "n/a"."""
    if "ic" not in table.columns:
        return table
    out = table.astype({"ic": object})
    out.loc[out["ic"].isna(), "ic"] = "n/a"
    return out


def trades_summary(trades: pd.DataFrame | None) -> tuple[pd.DataFrame, dict[str, float]]:
    """Counts by status x side, plus totals: trades, commission, slippage (NaN when
    the trades do not record it) and costs (commission + slippage; NaN likewise)."""
    if trades is None or trades.empty:
        return pd.DataFrame(), {"trades": 0.0, "total_commission": 0.0, "slippage": 0.0,
                                "costs": 0.0}
    status = trades["status"].astype(str) if "status" in trades else pd.Series("all", trades.index)
    side = trades["side"].astype(str) if "side" in trades else pd.Series("all", trades.index)
    counts = pd.crosstab(
        status.rename("status"), side.rename("side"), margins=True, margins_name="total"
    )

    def paid(col: str) -> float:
        if col not in trades:
            return math.nan
        return float(pd.to_numeric(trades[col], errors="coerce").fillna(0.0).abs().sum())

    commission, slippage = paid("commission"), paid("slippage")
    return counts, {"trades": float(len(trades)), "total_commission": commission,
                    "slippage": slippage, "costs": commission + slippage}


def costs_sentence(totals: Mapping[str, float]) -> str:
    """"N orders; costs X = commission Y + slippage Z." (commission alone, said so,
    when the trades do not record slippage)."""
    n = int(totals["trades"])
    if math.isfinite(totals.get("slippage", math.nan)):
        return (f"{n} orders; costs {_money(totals['costs'])} = commission "
                f"{_money(totals['total_commission'])} + slippage {_money(totals['slippage'])}.")
    return (f"{n} orders, total commission {_money(totals['total_commission'])} "
            "(slippage not recorded for these trades).")


def performance_table(
    returns: pd.Series,
    benchmark: pd.Series | None,
    periods_per_year: float,
    positions: pd.DataFrame | None,
    trades: pd.DataFrame | None,
    equity: pd.DataFrame | None,
    n_trials: int,
    benchmark_label: str = "benchmark",
) -> pd.DataFrame:
    """Strategy (and benchmark) metrics with PSR and DSR rows.

    ``dsr`` is :func:`reports.significance.deflated_sharpe_ratio` of the returns over
    ``n_trials`` configurations tried, the same call as ``summary.json``'s
    ``deflated_sharpe``."""
    cols = {
        "strategy": strategy_metrics(
            returns, periods_per_year, positions=positions, trades=trades, equity=equity
        )
    }
    cols["strategy"]["psr"] = probabilistic_sharpe_ratio(returns)
    cols["strategy"]["dsr"] = deflated_sharpe_ratio(returns, n_trials)
    if benchmark is not None and len(benchmark):
        cols[benchmark_label] = strategy_metrics(benchmark, periods_per_year)
        cols[benchmark_label]["psr"] = probabilistic_sharpe_ratio(benchmark)
    return pd.DataFrame(cols)


PERCENT_METRICS = {"total_return", "cagr", "volatility", "max_drawdown", "exposure"}
RATIO_METRICS = {"sharpe", "sortino", "calmar"}
MONEY_METRICS = {"total_commission", "slippage_cost", "costs"}
COUNT_METRICS = {"n_periods", "n_trades"}


def format_metric(name: str, value: object) -> str:
    """One cell of the performance table, in the units quantstats uses for the same
    quantity: returns, volatility, drawdown and exposure in percent (2 decimals),
    Sharpe/Sortino/Calmar to 2 decimals, costs in money, counts as integers; PSR,
    DSR and the rest to 4 significant digits. Undefined values read "–"."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "–"
    if name in PERCENT_METRICS:
        return f"{v * 100:.2f}%"
    if name in RATIO_METRICS:
        return f"{v:.2f}"
    if name in MONEY_METRICS:
        return f"{v:,.2f}"
    if name in COUNT_METRICS:
        return f"{v:,.0f}"
    return _fmt(v)


def performance_html(table: pd.DataFrame) -> str:
    """:func:`performance_table` as HTML, each row in its own units (:func:`format_metric`)."""
    shown = pd.DataFrame({c: [format_metric(k, v) for k, v in table[c].items()]
                          for c in table.columns}, index=table.index)
    return shown.to_html(classes="lk", border=0, escape=True)


def models_section(
    returns: pd.Series,
    benchmark: pd.Series | None,
    predictions: pd.DataFrame,
    models: Sequence[str],
    trades: pd.DataFrame | None,
    positions: pd.DataFrame | None,
    equity: pd.DataFrame | None,
    periods_per_year: float,
    ppy_source: str,
    target_model: str = "fused",
    y: str = "y_true",
    extra_tables: Mapping[str, pd.DataFrame] | None = None,
    n_trials: int = 1,
    benchmark_label: str = "Benchmark",
    verdict: Sequence[str] | None = None,
) -> str:
    """The whole "Models" ``<div>`` (with its own ``<style>``), opening with the
    ``verdict`` sentences (:func:`reports.verdict.forecast_verdict`) when given.

    ``n_trials``: configurations tried (``report.n_trials``), for the deflated
    Sharpe ratio, as in ``summary.json``. ``benchmark_label`` names the benchmark
    in tables and figures. Per-fold errors are a figure; the table is shown only
    for at most :data:`MAX_TABLE_FOLDS` folds (the numbers are in ``fold_errors.csv``).
    """
    esc = html.escape
    n_trials = int(n_trials)
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1 (got {n_trials})")
    parts = [f"<style>{SECTION_CSS}</style>", '<div id="lstmknn-models">', "<h2>Models</h2>"]
    if verdict:
        first, *rest = verdict
        parts.append('<div class="verdict"><p><b>' + esc(first) + "</b></p>"
                     + "".join(f"<p>{esc(line)}</p>" for line in rest) + "</div>")
    parts.append(
        f'<p class="note">Annualisation factor: <b>{periods_per_year:g}</b> periods per year '
        f"({esc(ppy_source)}). Sharpe ratios in PSR/DSR are per period; the deflated "
        f"Sharpe ratio (dsr) deflates for <b>{n_trials}</b> configuration"
        f"{'s' if n_trials != 1 else ''} tried (<code>report.n_trials</code>, the same "
        "figure as summary.json) using the strategy's own SR estimation variance.</p>"
    )
    parts += [
        "<h3>Performance</h3>",
        performance_html(
            performance_table(
                returns, benchmark, periods_per_year, positions, trades, equity, n_trials,
                benchmark_label,
            )
        ),
        '<p class="note">Costs = commission + slippage (fill price against the bar\'s '
        "open); turnover: traded notional per year over mean equity.</p>",
    ]
    parts += [
        "<h3>Forecast accuracy (out of sample)</h3>",
        f'<p class="note">DM: Diebold-Mariano (HLN-corrected, squared error) of '
        f"<b>{esc(target_model)}</b> vs each model; negative statistic favours "
        f"{esc(target_model)}. Direction accuracy counts a zero forecast as a miss. "
        "The IC (rank correlation) of the constant zero forecast is undefined: n/a.</p>",
        table_html(ic_as_text(forecast_with_dm(predictions, models, target_model, y))),
    ]
    figures = model_figures(
        returns, benchmark, predictions, models, trades, positions, target_model, y,
        benchmark_label=benchmark_label,
    )
    for title, fragment in figures.items():
        parts += [f"<h3>{esc(title)}</h3>", fragment]
        if title == "MSE per fold" and "fold" in predictions.columns:
            parts.append(fold_section(predictions, models, y))
    if "symbol" in predictions.columns and predictions["symbol"].nunique() >= 2:
        parts += cross_section_parts(predictions, models, y)
    if "regime" in predictions.columns:
        parts += [
            "<h3>By regime</h3>",
            table_html(ic_as_text(per_group_table(predictions, models, "regime", y)), index=False),
        ]
    counts, totals = trades_summary(trades)
    parts += [
        "<h3>Trades</h3>",
        f'<p class="note">{esc(costs_sentence(totals))}</p>',
        table_html(counts),
    ]
    for title, frame in (extra_tables or {}).items():
        parts += [f"<h3>{esc(str(title))}</h3>", table_html(frame)]
    parts.append("</div>")
    return "\n".join(parts)


def cross_section_parts(predictions: pd.DataFrame, models: Sequence[str], y: str = "y_true",
                        quantiles: int = 5) -> list[str]:
    """The cross-section block of a multi-symbol run: IC table and the three figures."""
    table = pd.DataFrame(ic_summary(predictions, list(models), label=y)).T
    cols = [c for c in ("ic", "rank_ic", "icir", "ic_tstat", "positive_share", "n_dates")
            if c in table]
    parts = [
        "<h3>Cross-section: IC per date</h3>",
        '<p class="note">Each date, the correlation across symbols of a forecast with the '
        "realised next-bar return (IC: Pearson; rank IC: Spearman); mean over dates, ICIR = "
        "mean / std, t-statistic, share of dates with a positive IC. All on raw returns.</p>",
        table_html(table[cols].astype(float).round(4)),
    ]
    ic = ic_by_date(predictions, "fused", y, method="spearman")
    if len(ic) >= 2:
        parts += ["<h3>Rank IC of the fused forecast over time</h3>",
                  fig_to_img(plot_ic(ic, title="Rank IC of the fused forecast"), "rank IC")]
    q = quantile_returns(predictions, "fused", quantiles, label=y)
    if q.get("mean"):
        parts += ["<h3>Next-bar return by fused-forecast quintile</h3>",
                  fig_to_img(plot_quantile_returns(q), "quantile returns")]
    spread = spread_series(predictions, "fused", quantiles, label=y)
    if len(spread) >= 2:
        parts += ["<h3>Top-minus-bottom quintile spread, cumulative</h3>",
                  fig_to_img(plot_cumulative_spread(spread), "cumulative spread")]
    return parts
