"""Target positions to orders and fills: one entry point to trade a targets table in backtrader
or in the vectorized twin (broker parameters come from ``engine.params.execution_params``)."""

from __future__ import annotations

import pandas as pd

from lstmknn.strategies.costs import ExecutionParams
from lstmknn.strategies.result import BacktestResult
from lstmknn.strategies.vectorized import run_vectorized


def target_frame(predictions: pd.DataFrame) -> pd.DataFrame:
    """Targets as a date x symbol frame (NaN where a symbol does not trade)."""
    return predictions.pivot(index="date", columns="symbol", values="target").sort_index()


def buy_and_hold_returns(prices: dict[str, pd.DataFrame], index: pd.DatetimeIndex) -> pd.Series:
    """Buy-and-hold of the asset, or of the equal-weight basket of the symbols trading on each
    bar, over ``index``."""
    rets = pd.DataFrame({s: df["close"].pct_change() for s, df in prices.items()})
    bench = rets.reindex(index).mean(axis=1).fillna(0.0)
    if len(bench):
        bench.iloc[0] = 0.0
    bench.name = "benchmark"
    return bench


def execute(prices: dict[str, pd.DataFrame], predictions: pd.DataFrame, params: ExecutionParams,
            engine: str = "backtrader") -> BacktestResult:
    """Trade precomputed predictions (with ``target``) through backtrader or the vectorized twin."""
    targets = target_frame(predictions)
    if engine == "vectorized":
        return run_vectorized(prices, targets, params)
    from lstmknn.strategies.bt_engine import run_backtrader  # backtrader loads only when used

    return run_backtrader(prices, targets, params)


def untraded(predictions: pd.DataFrame, trades: pd.DataFrame) -> dict[str, str]:
    """Symbols with non-zero targets that never got an order, and why (never silent)."""
    active = predictions[predictions["target"].fillna(0.0) != 0.0]
    ordered = set(trades["symbol"].astype(str)) if len(trades) else set()
    out = {}
    for sym, rows in active.groupby("symbol", sort=True):
        if str(sym) not in ordered:
            out[str(sym)] = (f"{len(rows)} non-zero target(s) but no order: an order needs a bar "
                             "of the symbol at the decision and at the next bar of the joint "
                             "calendar")
    return out
