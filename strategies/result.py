"""The common output of every backtest engine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
import pandas as pd

from lstmknn.strategies.account import OrderOutcome
from lstmknn.strategies.market import MarketData

TRADE_COLUMNS = ["date", "symbol", "side", "size", "price", "commission", "status"]


@dataclass
class BacktestResult:
    """Equity curve, order outcomes and positions of one backtest.

    ``equity``: columns ``date, value, return`` (one row per bar from the first
    target date; ``value`` = account value at the close, first return 0.0).
    ``trades``: one row per order outcome (``date`` = fill/attempt bar),
    columns :data:`TRADE_COLUMNS`; ``price``/``commission`` are NaN/0 for
    ``margin``/``rejected``/``cancelled`` rows.  ``positions``: shares held at
    each close (index ``date``, one column per symbol).  ``commission_paid``:
    total commission; ``slippage_cost``: total ``|size| * |price - open|``;
    ``slippage``: that amount per ``trades`` row (0 for rows without a fill);
    :attr:`costs` = commission + slippage.
    """

    equity: pd.DataFrame
    trades: pd.DataFrame
    positions: pd.DataFrame
    commission_paid: float
    slippage_cost: float
    engine: str
    slippage: pd.Series | None = None

    @property
    def costs(self) -> float:
        """Trading costs: commission paid plus slippage (fill price vs the bar's open)."""
        return self.commission_paid + self.slippage_cost

    def trades_with_costs(self) -> pd.DataFrame:
        """``trades`` with a ``slippage`` column (what ``trades.csv`` holds)."""
        slip = self.slippage if self.slippage is not None else 0.0
        return self.trades.assign(slippage=slip)

    @property
    def final_value(self) -> float:
        return float(self.equity["value"].iloc[-1])

    @property
    def returns(self) -> pd.Series:
        """Daily returns indexed by date."""
        return self.equity.set_index("date")["return"]


Row = tuple[int, int, str, str, float, float, float, str]
"""An order outcome: ``(bar, seq, symbol, side, size, price, commission, status)``."""


def outcome_row(bar: int, o: OrderOutcome) -> Row:
    return (bar, o.seq, o.symbol, o.side, o.size, o.price, o.commission, o.status)


def build_result(
    md: MarketData,
    values: np.ndarray,
    positions: np.ndarray,
    rows: Sequence[Row],
    engine: str,
    presorted: bool = False,
) -> BacktestResult:
    """Assemble a :class:`BacktestResult`; ``rows`` are sorted by (bar, seq) unless ``presorted``."""
    ret = np.zeros_like(values)
    ret[1:] = values[1:] / values[:-1] - 1.0
    equity = pd.DataFrame({"date": md.dates, "value": values, "return": ret})
    if not presorted:
        rows = sorted(rows, key=itemgetter(0, 1))
    cols = list(zip(*rows, strict=True)) if rows else [()] * 8
    bars = np.array(cols[0], dtype=np.int64)
    size = np.array(cols[4], dtype=float)
    price = np.array(cols[5], dtype=float)
    comm = np.array(cols[6], dtype=float)
    trades = pd.DataFrame(
        {
            "date": md.dates[bars],
            "symbol": pd.Series(cols[2], dtype=str),
            "side": pd.Series(cols[3], dtype=str),
            "size": size,
            "price": price,
            "commission": comm,
            "status": pd.Series(cols[7], dtype=str),
        },
        columns=TRADE_COLUMNS,
    )
    slip_rows = np.zeros(len(rows))
    if rows:
        col = {s: j for j, s in enumerate(md.symbols)}
        opens = md.open[bars, [col[s] for s in cols[2]]]
        done = ~np.isnan(price)  # filled and partial rows carry a price
        slip_rows[done] = np.abs(price[done] - opens[done]) * size[done]
    pos = pd.DataFrame(positions, index=md.dates, columns=list(md.symbols))
    return BacktestResult(
        equity=equity,
        trades=trades,
        positions=pos,
        commission_paid=float(comm.sum()),
        slippage_cost=float(slip_rows.sum()),
        engine=engine,
        slippage=pd.Series(slip_rows, index=trades.index, name="slippage"),
    )
