"""The sweep's HTML page: Sharpe and fused MSE by configuration, the best configuration's equity."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lstmknn.reports.plots import fig_to_img


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def label(overrides: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "base"


def sweep_page(results: pd.DataFrame, ranked: pd.DataFrame, summary: dict[str, Any],
               best_returns: pd.Series) -> str:
    """A self-contained HTML page (base64 PNG figures): Sharpe and fused MSE by configuration."""
    order = list(ranked["config"])
    x = np.arange(len(order))
    ok = results[results["status"] == "ok"]

    def bars(column: str, title: str, line: float | None) -> str:
        fig = Figure(figsize=(max(6.0, 0.45 * len(order) + 2), 3.2))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        base = line or 0.0  # bars grow from the reference line
        ax.bar(x, ranked[column].to_numpy(float) - base, bottom=base, color="#7aa6c2",
               label="mean over symbols")
        for symbol, g in ok.groupby("symbol"):
            pos = [order.index(c) for c in g["config"]]
            ax.scatter(pos, g[column], s=14, zorder=3, label=str(symbol))
        if line is not None:
            ax.axhline(line, color="grey", lw=0.8)
        ax.set_xticks(x, [f"#{c}" for c in order], rotation=90 if len(order) > 20 else 0)
        ax.set_title(title)
        ax.legend(fontsize=7)
        return fig_to_img(fig, title)

    figures = [bars("sharpe", "Sharpe ratio by configuration (ranked)", 0.0),
               bars("fused_mse_rel_zero", "Fused MSE relative to the zero forecast", 1.0)]
    if len(best_returns):
        fig = Figure(figsize=(8, 3))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        ax.plot((1 + best_returns).cumprod())
        ax.set_title("Best configuration: growth of 1 (equal-weight over symbols)")
        figures.append(fig_to_img(fig, "best configuration equity"))
    best = summary.get("best") or {}
    head = (f"<p>{summary['n_configurations']} configurations x {len(summary.get('data', []))} "
            f"symbols, ranked by {html.escape(summary['rank_metric'])}. Best: "
            f"#{best.get('config')} ({html.escape(label(best.get('overrides') or {}))}), "
            f"mean per-symbol Sharpe {_num(best.get('sharpe'))}; its equal-weight portfolio: "
            f"Sharpe {_num(best.get('portfolio_sharpe'))}, deflated Sharpe "
            f"{_num(best.get('deflated_sharpe'))} (n_trials {best.get('n_trials')}).</p>"
            if best else "<p>No configuration completed.</p>")
    dupes = summary.get("duplicates") or {}
    if dupes:
        pairs = ", ".join(f"#{c} = #{d}" for c, d in dupes.items())
        head += (f"<p><b>{len(dupes)} configuration(s) decided and returned exactly the same as "
                 f"an earlier one</b> ({html.escape(pairs)}): each such group counts as one trial "
                 f"in the deflated Sharpe ratio ({summary.get('n_distinct')} distinct of "
                 f"{summary['n_configurations']}). Under the cost-aware rule, for instance, "
                 "thresholds below the cost rate cannot change a decision.</p>")
    failed = results[results["status"] != "ok"][["symbol", "config", "error"]]
    fail_html = failed.to_html(index=False) if len(failed) else "<p>None.</p>"
    table = ranked.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="")
    style = ("body{font-family:sans-serif;margin:1.5em;max-width:1200px}"
             "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
             "padding:2px 6px}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>lstmknn sweep</title>"
            f"<style>{style}</style></head><body><h1>lstmknn sweep</h1>{head}"
            f"{''.join(figures)}<h2>Configurations</h2>{table}<h2>Failed tasks</h2>{fail_html}"
            f"</body></html>")
