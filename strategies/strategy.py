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

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from lstmknn.strategies.params import StrategyParams
from lstmknn.strategies.ranking import rank_targets
from lstmknn.strategies.targets import target_positions

_COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3 or bool(
    getattr(pd.options.mode, "copy_on_write", False) is True)
# Columns a rule written as code never sees: the label is the return *after* each bar.
HIDDEN = ["y_true"]


class Strategy:
    """Turns forecasts into target weights (fractions of equity) for every sizing.

    Parameters
    ----------
    params : StrategyParams, optional
        The rule and its limits (default: ``StrategyParams()``).

    Notes
    -----
    To write a rule as code, subclass and override :meth:`decide`: it is called once
    per decision bar, in time order, with the forecasts up to and including that bar
    (without the labels, which are only known later) and the weights held, and returns
    the new weights: it cannot see later rows. Overriding :meth:`targets` instead (one
    vectorised call over every row) is faster but can look ahead: ``lstmknn audit``
    checks it.
    """

    def __init__(self, params: StrategyParams | None = None) -> None:
        self.params = params if params is not None else StrategyParams()

    def decide(self, history: pd.DataFrame, held: pd.Series) -> Mapping[str, float] | pd.Series:
        """Target weights of the symbols decided at the last bar of ``history``.

        Parameters
        ----------
        history : DataFrame
            Every forecast row up to and including the decision bar (a copy), sorted by
            ``date`` then ``symbol``: ``date, symbol, fused, lstm, knn, lstm_conf,
            knn_conf, vol, regime, alpha, persistence (the last known return), ...``;
            never the label ``y_true``. The rows of the decision bar are
            ``history[history["date"] == history["date"].iloc[-1]]``.
        held : Series
            The weight of every symbol after the previous decision (0.0 when flat).

        Returns
        -------
        mapping or Series
            symbol -> weight (fraction of equity, negative = short) for symbols with
            a row at the decision bar; symbols left out keep their weight.
        """
        raise NotImplementedError  # the built-in rules use their vectorised form

    @property
    def custom(self) -> bool:
        """Whether this strategy decides bar by bar in user code (:meth:`decide`)."""
        return type(self).decide is not Strategy.decide

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"

    @property
    def path_dependent(self) -> bool:
        """Whether a bar's target may depend on earlier bars (cost-aware, rank, user code)."""
        return bool(self.custom or self.params.cost_aware or self.params.sizing == "rank")

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
        if self.custom:
            return self._bar_by_bar(out, held)
        if self.params.sizing == "rank":
            return self._ranked(out, held)
        return self._per_symbol(out, held)

    # ------------------------------------------------------------------ rules as code

    def _bar_by_bar(self, out: pd.DataFrame, held: Mapping[str, float] | None) -> pd.DataFrame:
        if "symbol" not in out:
            out["symbol"] = "_"
        symbols = out["symbol"].astype(str).to_numpy()
        order = np.lexsort((symbols, out["date"].to_numpy()))
        visible = out.iloc[order].drop(columns=HIDDEN, errors="ignore").reset_index(drop=True)
        ordered = symbols[order]
        weights = {s: 0.0 for s in sorted(set(ordered))}
        weights.update({s: float(w) for s, w in (held or {}).items() if s in weights})
        dates = visible["date"].to_numpy()
        ends = np.flatnonzero(np.r_[dates[1:] != dates[:-1], True])
        target = np.empty(len(visible))
        start = 0
        for end in ends:
            today = ordered[start:end + 1].tolist()
            history = visible.iloc[: end + 1]
            if not _COPY_ON_WRITE:  # a user's edit must never reach later bars' history
                history = history.copy()
            decided = self.decide(history, pd.Series(weights, name="held"))
            for s, w in _checked_weights(decided, today, dates[end], type(self).__name__).items():
                weights[s] = w
            target[start:end + 1] = [weights[s] for s in today]
            start = end + 1
        result = np.empty(len(visible))
        result[order] = target
        out["target"] = result
        return out

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


class FunctionStrategy(Strategy):
    """A rule written as a function ``fn(history, held) -> weights`` (see :meth:`Strategy.decide`)."""

    def __init__(self, fn: Callable[[pd.DataFrame, pd.Series], Mapping[str, float] | pd.Series],
                 params: StrategyParams | None = None) -> None:
        super().__init__(params)
        self.fn = fn

    def __repr__(self) -> str:
        return f"FunctionStrategy({getattr(self.fn, '__qualname__', self.fn)!r})"

    def decide(self, history: pd.DataFrame, held: pd.Series) -> Mapping[str, float] | pd.Series:
        return self.fn(history, held)


def _checked_weights(decided: object, today: list[str], when: object, name: str
                     ) -> dict[str, float]:
    """A user rule's weights as floats, refused (one line) when not a mapping of finite numbers
    for symbols that have a bar at the decision."""
    if isinstance(decided, pd.Series):
        decided = decided.to_dict()
    if not isinstance(decided, Mapping):
        raise StrategyError(f"strategy {name} at {when}: must return a mapping or Series of "
                            f"symbol -> weight (got {type(decided).__name__})")
    out = {}
    for s, w in decided.items():
        if str(s) not in today:
            raise StrategyError(f"strategy {name} at {when}: weight for {s!r}, which has no bar "
                                f"there (symbols of that bar: {', '.join(today[:10])})")
        try:
            value = float(w)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            value = float("nan")
        if not np.isfinite(value):
            raise StrategyError(f"strategy {name} at {when}: weight of {s} must be a finite "
                                f"number (got {w!r})")
        out[str(s)] = value
    return out


class StrategyError(ValueError):
    """A strategy written as code returned something that is not a valid set of weights."""


def closed_out(predictions: pd.DataFrame) -> dict[str, str]:
    """Symbols whose data ends before the run's last bar, with their last bar (ISO): the
    execution closes them out there (a delisting, see :mod:`strategies.market`)."""
    if "symbol" not in predictions or predictions["symbol"].nunique() < 2:
        return {}
    last = predictions.groupby("symbol")["date"].max()
    end = predictions["date"].max()
    return {str(s): pd.Timestamp(d).isoformat() for s, d in last.items() if d < end}
