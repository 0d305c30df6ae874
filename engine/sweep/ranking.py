"""Sweep results: the per-task table, configurations ranked over symbols, and the deflated
Sharpe ratio of the best configuration's equal-weight portfolio."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lstmknn.engine.runio import clean_json
from lstmknn.engine.sweep.grid import Variant, text
from lstmknn.engine.sweep.task import FORECAST_METRICS, MODELS, STRATEGY_METRICS
from lstmknn.reports.periods import infer_periods_per_year
from lstmknn.reports.significance import deflated_sharpe_ratio, sharpe_moments
from lstmknn.reports.trading_metrics import strategy_metrics

RANKINGS = {"sharpe": ("sharpe", False), "fused_mse": ("fused_mse_rel_zero", True)}


def results_table(records: Sequence[dict[str, Any]], keys: Sequence[str]) -> pd.DataFrame:
    """One row per symbol x configuration: grid values, metrics, elapsed, status, error."""
    metric_cols = [f"{m}_{k}" for m in MODELS for k in FORECAST_METRICS]
    metric_cols += ["fused_mse_rel_zero", *STRATEGY_METRICS, "folds", "n_predictions"]
    rows = []
    for r in records:
        row: dict[str, Any] = {"symbol": r["symbol"], "config": r["config"],
                               "config_id": r["config_id"]}
        row.update({k: text(r["overrides"][k]) if isinstance(r["overrides"][k], list)
                    else r["overrides"][k] for k in keys})
        m = r.get("metrics") or {}
        zero, fused = m.get("zero_mse"), m.get("fused_mse")
        m = {**m, "fused_mse_rel_zero": fused / zero if fused is not None and zero else None}
        row.update({c: m.get(c) for c in metric_cols})
        row.update(elapsed=r.get("elapsed"), status=r["status"], error=r.get("error"),
                   fingerprint=r.get("fingerprint"))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame[metric_cols] = frame[metric_cols].astype(float)
    return frame


def rank_configurations(results: pd.DataFrame, keys: Sequence[str], rank_by: str) -> pd.DataFrame:
    """Aggregate over symbols (means of successful tasks), best configuration first."""
    ok = results[results["status"] == "ok"]
    cols = ["sharpe", "total_return", "max_drawdown", "fused_mse", "fused_mse_rel_zero",
            "fused_direction_accuracy", "fused_ic", "zero_mse"]
    first = results.groupby("config", sort=True)[["config_id", *keys]].first()
    agg = ok.groupby("config")[cols].mean().reindex(first.index)
    counts = results.assign(ok=results["status"] == "ok").groupby("config")["ok"]
    table = first.join(agg)
    table["n_ok"] = counts.sum().astype(int)
    table["n_failed"] = (counts.count() - counts.sum()).astype(int)
    table["elapsed"] = results.groupby("config")["elapsed"].sum()
    table["duplicate_of"] = duplicates(results).reindex(table.index)
    column, ascending = RANKINGS[rank_by]
    table = table.sort_values(column, ascending=ascending, na_position="last", kind="stable")
    table = table.reset_index()
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def duplicates(results: pd.DataFrame) -> pd.Series:
    """Per configuration, the lowest-numbered configuration whose every task decided and returned
    exactly the same (same fingerprints), or NaN. Such configurations are one trial."""
    out = pd.Series(np.nan, index=pd.Index(sorted(results["config"].unique()), name="config"))
    if "fingerprint" not in results:
        return out
    first: dict[tuple, int] = {}
    for config, g in results.sort_values(["config", "symbol"]).groupby("config", sort=True):
        if (g["status"] != "ok").any() or g["fingerprint"].isna().any():
            continue
        key = tuple(zip(g["symbol"], g["fingerprint"], strict=True))
        if key in first:
            out[config] = first[key]
        else:
            first[key] = int(config)
    return out


def symbol_table(results: pd.DataFrame, rank_by: str) -> pd.DataFrame:
    """Per symbol: task counts, its best configuration and the mean over configurations."""
    column, ascending = RANKINGS[rank_by]
    rows = []
    for symbol, g in results.groupby("symbol", sort=False):
        ok = g[g["status"] == "ok"].sort_values(column, ascending=ascending, na_position="last")
        best = ok.iloc[0] if len(ok) else None
        rows.append({"symbol": symbol, "n_ok": len(ok), "n_failed": len(g) - len(ok),
                     "best_config": None if best is None else int(best["config"]),
                     "best_sharpe": None if best is None else best["sharpe"],
                     "best_fused_mse_rel_zero": None if best is None else best["fused_mse_rel_zero"],
                     "mean_sharpe": ok["sharpe"].mean(),
                     "mean_fused_mse_rel_zero": ok["fused_mse_rel_zero"].mean()})
    return pd.DataFrame(rows)


def portfolio_returns(records: Sequence[dict[str, Any]], config: int) -> pd.Series:
    """Equal-weight mean of the symbols' daily strategy returns under one configuration."""
    series = [pd.Series(r["returns"]["return"], index=pd.to_datetime(r["returns"]["date"]))
              for r in records
              if r["config"] == config and r["status"] == "ok" and r.get("returns")]
    if not series:
        return pd.Series(dtype=float)
    return pd.concat(series, axis=1, sort=True).mean(axis=1)


def summarize(ranked: pd.DataFrame, records: Sequence[dict[str, Any]],
              variants: Sequence[Variant], rank_by: str) -> dict[str, Any]:
    """summary.json: the ranking and the best configuration with its deflated Sharpe ratio.

    The DSR uses ``n_trials`` = distinct configurations tried (configurations whose
    decisions and returns equal an earlier one's count once: see :func:`duplicates`) and,
    with two or more, the variance of the per-period Sharpe ratio across them (of the
    equal-weight portfolio of symbols).
    """
    by_number = {v.number: v for v in variants}
    dupes = {int(r["config"]): int(r["duplicate_of"]) for _, r in ranked.iterrows()
             if pd.notna(r.get("duplicate_of"))}
    distinct = [v for v in variants if v.number not in dupes]
    n_trials = max(1, len(distinct))
    per_period = [sharpe_moments(portfolio_returns(records, v.number))["sr"] for v in distinct]
    finite = [s for s in per_period if math.isfinite(s)]
    sr_var = float(np.var(finite, ddof=1)) if len(finite) >= 2 else None
    best = None
    if len(ranked) and ranked.iloc[0]["n_ok"] > 0:
        row = ranked.iloc[0]
        number = int(row["config"])
        r = portfolio_returns(records, number)
        port = strategy_metrics(r, infer_periods_per_year(r.index)) if len(r) > 2 else {}
        best = {"config": number, "config_id": by_number[number].config_id,
                "overrides": by_number[number].overrides,
                **clean_json({k: row[k] for k in ("sharpe", "total_return", "max_drawdown",
                                             "fused_mse", "fused_mse_rel_zero")}),
                "portfolio_sharpe": clean_json(port.get("sharpe")),
                "deflated_sharpe": clean_json(deflated_sharpe_ratio(r, n_trials, sr_var)),
                "n_trials": n_trials,
                "sr_variance": "across configurations" if sr_var is not None else "own estimate"}
    rows = ranked.replace({np.nan: None}).to_dict(orient="records")
    return {"ranked_by": rank_by, "rank_metric": RANKINGS[rank_by][0],
            "n_configurations": len(variants), "n_distinct": n_trials,
            "duplicates": {str(k): v for k, v in sorted(dupes.items())}, "best": best,
            "configurations": [clean_json(r) for r in rows]}
