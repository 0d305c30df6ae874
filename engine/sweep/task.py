"""One sweep task: walk-forward, vectorized execution and metrics of one symbol x configuration."""

from __future__ import annotations

from typing import Any

import pandas as pd

from engine.config import Config
from engine.runio import clean_json, format_timestamp
from engine.universe import walk_forward_task
from reports.forecast_metrics import forecast_table
from reports.periods import infer_periods_per_year
from reports.trading_metrics import strategy_metrics
from strategies.execution import execute
from strategies.targets import add_targets

MODELS = ("lstm", "knn", "fused", "zero")
FORECAST_METRICS = ("mse", "direction_accuracy", "ic")
STRATEGY_METRICS = ("total_return", "sharpe", "max_drawdown")


def evaluate_task(frame: pd.DataFrame, cfg: Config, symbol: str,
                  cache_root: str | None = None) -> dict[str, Any]:
    """Walk-forward + vectorized execution + metrics of one symbol under one configuration."""
    wf = walk_forward_task(frame, cfg, cache_root)
    ppy = infer_periods_per_year(frame.index)
    preds = add_targets(wf.predictions.assign(symbol=symbol), cfg, ppy)
    result = execute({symbol: frame}, preds, cfg, engine="vectorized")
    table = forecast_table(preds.dropna(subset=["y_true"]), ["lstm", "knn", "fused"])
    metrics: dict[str, Any] = {f"{m}_{k}": table.loc[m, k] for m in MODELS for k in FORECAST_METRICS}
    strat = strategy_metrics(result.returns, ppy)
    metrics.update({k: strat[k] for k in STRATEGY_METRICS})
    metrics.update(folds=len(wf.folds), n_predictions=int(table.loc["fused", "n"]))
    returns = result.returns
    return {"metrics": clean_json(metrics),
            "returns": {"date": [format_timestamp(d) for d in returns.index],
                        "return": [float(r) for r in returns.to_numpy()]}}
