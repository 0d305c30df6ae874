"""A run configuration as the parameter objects of :mod:`strategies` (built once, at the top).

``strategies/`` never reads the configuration: the strategy gets a
:class:`~strategies.params.StrategyParams`, the broker an
:class:`~strategies.costs.ExecutionParams`, both from here.
"""

from __future__ import annotations

from lstmknn.engine.config import Config
from lstmknn.strategies.costs import ExecutionParams
from lstmknn.strategies.params import StrategyParams
from lstmknn.strategies.strategy import Strategy


def strategy_params(cfg: Config, periods_per_year: float = 252.0) -> StrategyParams:
    """The ``[signal]`` rule of ``cfg`` with its cost rate (commission + slippage)."""
    sg = cfg.signal
    return StrategyParams(
        sizing=sg.sizing, threshold=sg.threshold, scale=sg.scale, target_vol=sg.target_vol,
        max_leverage=sg.max_leverage, long_only=sg.long_only, allocation=sg.allocation,
        top_k=sg.top_k, bottom_k=sg.bottom_k, buffer=sg.buffer, max_replace=sg.max_replace,
        weighting=sg.weighting, max_weight=sg.max_weight, max_gross=sg.max_gross,
        cost_aware=sg.cost_aware, cost_rate=cfg.cost_rate,
        periods_per_year=float(periods_per_year))


def strategy_for(cfg: Config, periods_per_year: float = 252.0) -> Strategy:
    """The built-in strategy of ``cfg`` (the one every command decides with)."""
    return Strategy(strategy_params(cfg, periods_per_year))


def execution_params(cfg: Config) -> ExecutionParams:
    """Broker parameters (cash, costs, volume cap, churn filter, shorting, leverage) of a config."""
    ex, sg = cfg.execution, cfg.signal
    return ExecutionParams(cash=ex.cash, commission=ex.commission,
                           commission_fixed=ex.commission_fixed, slippage=ex.slippage,
                           volume_cap=ex.volume_cap, min_change=sg.min_change,
                           allow_short=not sg.long_only, leverage=max(2.0, 2.0 * sg.max_leverage))
