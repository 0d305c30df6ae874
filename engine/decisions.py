"""Forecasts -> decisions, the one path every command takes (backtest, signal, paper accounts,
sweeps, the audit, the Python API).

:func:`decide` runs the walk-forward (:func:`engine.forecasts.forecast`) and the strategy
(:class:`strategies.strategy.Strategy`, built from the config by :mod:`engine.params`
unless one is given) over the whole universe, so that the same data, config and strategy
give the same ``target`` of every bar in every command, by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from lstmknn.data.loader import PriceData
from lstmknn.engine.cache import FoldCache
from lstmknn.engine.config import Config
from lstmknn.engine.forecasts import Forecasts, forecast
from lstmknn.engine.params import strategy_for
from lstmknn.reports.periods import infer_periods_per_year
from lstmknn.strategies.strategy import Strategy


@dataclass
class Decisions:
    """The forecasts, the strategy that decided, and the predictions with ``target``."""

    forecasts: Forecasts
    predictions: pd.DataFrame
    strategy: Strategy
    periods_per_year: float


def periods_per_year(datas: Sequence[PriceData]) -> float:
    """The annualisation factor of a universe (from its first symbol's bar spacing)."""
    return infer_periods_per_year(datas[0].frame.index)


def decide(datas: Sequence[PriceData], cfg: Config, *, strategy: Strategy | None = None,
           cache: FoldCache | None = None, asof: pd.Timestamp | None = None,
           since: pd.Timestamp | None = None, jobs: int = 1, scheduler: str | None = None,
           quiet: bool = True, fusions: Sequence[str] = (), history: bool = False) -> Decisions:
    """Forecasts of ``datas`` (cut at ``asof`` when given) and the strategy's targets.

    With data cut at ``asof`` the rows up to ``asof`` equal those of the full run:
    forecasts never read later bars, and the strategy decides each bar from that bar's
    rows and earlier ones (path-dependent rules replay from the first decision, the
    fits coming from the fold cache). With ``asof``, rows before every symbol's last
    decision are left out unless the rule needs them or ``history`` asks for them;
    ``since`` moves that first row earlier (a paper step wants every new bar).
    """
    ppy = periods_per_year(datas)
    strategy = strategy if strategy is not None else strategy_for(cfg, ppy)
    first = None
    if asof is not None and not strategy.path_dependent and not history:
        # rows from every symbol's last decision on: a symbol whose data ended before
        # ``asof`` shares capital on its last bar with the symbols trading that day
        lasts = [d.frame.index[d.frame.index <= pd.Timestamp(asof)] for d in datas]
        first = min((ix[-1] for ix in lasts if len(ix)), default=pd.Timestamp(asof))
        if since is not None:
            first = min(first, pd.Timestamp(since))
    fc = forecast(datas, cfg, cache=cache, asof=asof, since=first, jobs=jobs,
                  scheduler=scheduler, quiet=quiet, fusions=fusions)
    return Decisions(fc, strategy.targets(fc.predictions), strategy, ppy)
