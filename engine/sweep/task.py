"""One sweep task: the decisions, vectorized execution and metrics of one configuration on one
symbol, or on the whole universe when the configuration needs one (pooled models or rank
sizing). It decides through :func:`engine.decisions.decide`, as the backtest does."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from lstmknn.data.loader import PriceData
from lstmknn.engine.cache import FoldCache
from lstmknn.engine.config import Config
from lstmknn.engine.decisions import decide
from lstmknn.engine.params import execution_params
from lstmknn.engine.runio import clean_json, format_timestamp
from lstmknn.reports.forecast_metrics import forecast_table
from lstmknn.reports.trading_metrics import strategy_metrics
from lstmknn.strategies.execution import execute

MODELS = ("lstm", "knn", "fused", "zero")
FORECAST_METRICS = ("mse", "direction_accuracy", "ic")
STRATEGY_METRICS = ("total_return", "sharpe", "max_drawdown")
UNIVERSE = "(universe)"  # the symbol column of a task that trades the whole universe


def universe_level(cfg: Config) -> bool:
    """Whether a configuration decides across symbols (pooled models or rank sizing): its
    sweep task is the whole universe, not one symbol."""
    return cfg.model.scope == "pooled" or cfg.signal.sizing == "rank"


def evaluate_task(datas: Sequence[PriceData], cfg: Config,
                  cache_root: str | None = None) -> dict[str, Any]:
    """Decisions + vectorized execution + metrics of ``datas`` (one symbol, or the universe)
    under one configuration. ``fingerprint`` identifies the decisions and the returns: two
    configurations with the same fingerprint are the same trial."""
    decided = decide(datas, cfg, cache=FoldCache(cache_root) if cache_root else None)
    preds = decided.predictions
    prices = {d.symbol: d.frame for d in datas if d.symbol in set(preds["symbol"])}
    result = execute(prices, preds, execution_params(cfg), engine="vectorized")
    table = forecast_table(preds.dropna(subset=["y_true"]), ["lstm", "knn", "fused"])
    metrics: dict[str, Any] = {f"{m}_{k}": table.loc[m, k] for m in MODELS for k in FORECAST_METRICS}
    strat = strategy_metrics(result.returns, decided.periods_per_year)
    metrics.update({k: strat[k] for k in STRATEGY_METRICS})
    metrics.update(folds=len(decided.forecasts.folds), n_predictions=int(table.loc["fused", "n"]))
    returns = result.returns
    record = {"date": [format_timestamp(d) for d in returns.index],
              "return": [float(r) for r in returns.to_numpy()]}
    digest = hashlib.sha256(json.dumps(
        {"target": preds["target"].round(15).tolist(), "fused": preds["fused"].tolist(),
         "returns": record["return"]}).encode()).hexdigest()[:16]
    return {"metrics": clean_json(metrics), "returns": record, "fingerprint": digest}
