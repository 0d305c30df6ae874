"""The one strategy: forecasts (and the book held) -> target weights, decided at each close.

Every command computes targets here and nowhere else: the backtest (both execution
engines trade its ``target`` column), ``signal``, paper accounts, sweeps and the audit.

Sizings (``StrategyParams.sizing``):

* ``threshold`` / ``proportional`` / ``vol_target``: a position per symbol from its own
  fused forecast (:mod:`strategies.targets`), then capital shared among the symbols with
  a decision on that bar (``allocation``).
* ``rank``: the cross-sectional top-k / drop-n book (:mod:`strategies.ranking`).

With ``cost_aware`` a position changes only when the forecast, in the direction of the
change, beats the cost rate (commission + slippage). Decisions are path-dependent in time
only: the target of a bar depends on that bar's rows and on earlier ones, never on later
rows, so cutting the forecasts after a bar never changes its target.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from strategies.params import StrategyParams
from strategies.ranking import rank_targets
from strategies.targets import target_positions


class Strategy:
    """Turns forecasts into target weights (fractions of equity) for every sizing.

    Parameters
    ----------
    params : StrategyParams, optional
        The rule and its limits (default: ``StrategyParams()``).

    Subclass and override :meth:`targets` to write a rule as code; it receives only
    rows up to the decision bar, as the built-in rules do.
    """

    def __init__(self, params: StrategyParams | None = None) -> None:
        self.params = params if params is not None else StrategyParams()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"

    @property
    def path_dependent(self) -> bool:
        """Whether a bar's target depends on earlier bars' decisions (cost-aware or rank)."""
        return bool(self.params.cost_aware or self.params.sizing == "rank")

    def targets(self, forecasts: pd.DataFrame,
                held: Mapping[str, float] | None = None) -> pd.DataFrame:
        """``forecasts`` with a ``target`` column: the weight decided at each row's close.

        Parameters
        ----------
        forecasts : DataFrame
            One row per symbol and decision bar, with ``date``, ``symbol`` (optional
            for one symbol), ``fused`` and, for ``vol_target``, ``vol``.
        held : mapping, optional
            Each symbol's position before the first row (to continue a live book);
            flat when absent.

        Returns
        -------
        DataFrame
            A copy of ``forecasts`` (same rows, same order) with ``target``.
        """
        out = forecasts.copy()
        if out.empty:
            out["target"] = pd.Series(dtype=float)
            return out
        if self.params.sizing == "rank":
            return self._ranked(out, held)
        return self._per_symbol(out, held)

    # ------------------------------------------------------------------ built-in rules

    def _per_symbol(self, out: pd.DataFrame, held: Mapping[str, float] | None) -> pd.DataFrame:
        p = self.params
        symbol = out["symbol"] if "symbol" in out else pd.Series("_", index=out.index)
        target = np.zeros(len(out))
        for sym, rows in out.groupby(symbol, sort=False).indices.items():
            g = out.iloc[rows]
            start = float((held or {}).get(str(sym), 0.0))
            target[rows] = target_positions(g["fused"].to_numpy(), p, vol=g.get("vol"),
                                            periods_per_year=p.periods_per_year,
                                            cost_rate=p.cost_rate, start=start)
        out["target"] = target
        if symbol.nunique() > 1:
            if p.allocation == "equal":
                live = out.groupby("date")["fused"].transform("size")
                out["target"] = out["target"] / live
            else:  # by signal strength among that bar's symbols
                strength = out["fused"].abs()
                total = strength.groupby(out["date"]).transform("sum")
                out["target"] = out["target"] * np.where(total > 0, strength / total, 0.0)
        return out

    def _ranked(self, out: pd.DataFrame, held: Mapping[str, float] | None) -> pd.DataFrame:
        p = self.params
        ranked = rank_targets(out, p, p.cost_rate, previous=dict(held) if held else None)
        keys = pd.MultiIndex.from_frame(ranked[["date", "symbol"]])
        weight = pd.Series(ranked["target"].to_numpy(), index=keys)
        at = pd.MultiIndex.from_arrays([out["date"], out["symbol"].astype(str)])
        out["target"] = weight.reindex(at).to_numpy()
        out.attrs["holdings"] = ranked.attrs.get("holdings", {})
        return out


def closed_out(predictions: pd.DataFrame) -> dict[str, str]:
    """Symbols whose data ends before the run's last bar, with their last bar (ISO): the
    execution closes them out there (a delisting, see :mod:`strategies.market`)."""
    if "symbol" not in predictions or predictions["symbol"].nunique() < 2:
        return {}
    last = predictions.groupby("symbol")["date"].max()
    end = predictions["date"].max()
    return {str(s): pd.Timestamp(d).isoformat() for s, d in last.items() if d < end}
