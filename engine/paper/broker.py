"""The broker boundary, and the local paper broker that keeps its book in the SQLite ledger.

A :class:`Broker` takes target weights at a close and reports fills, positions
and cash. :class:`PaperBroker` implements it with the backtest's own bar-step
execution (:func:`strategies.account.plan_orders` at the close,
:func:`strategies.account.fill_orders` at the next open), so a paper account
trades exactly like ``lstmknn backtest``. It must be used inside a ledger
transaction: every call reads and writes the same ``BEGIN IMMEDIATE`` snapshot.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from engine.paper.store import Ledger
from strategies.account import AccountState, OrderRequest, fill_orders, plan_orders
from strategies.costs import ExecutionParams


@dataclass(frozen=True)
class Order:
    """A market order decided at the close of ``decided`` (signed ``size`` in shares)."""

    id: int
    decided: str
    seq: int
    symbol: str
    size: float
    ref_price: float
    status: str


@dataclass(frozen=True)
class Fill:
    """One execution report: ``filled``/``partial`` with a price, or ``margin``/``cancelled``."""

    order_id: int
    date: str
    seq: int
    symbol: str
    side: str
    size: float
    price: float | None
    commission: float
    status: str


class Broker(ABC):
    """What the paper runner needs from a broker (local simulation or a real one)."""

    @abstractmethod
    def sync(self, bar: str, opens: Mapping[str, float],
             volumes: Mapping[str, float]) -> list[Fill]:
        """Bring the book up to the open of ``bar``; return the fills that happened there."""

    @abstractmethod
    def submit_targets(self, bar: str, targets: Mapping[str, float],
                       closes: Mapping[str, float]) -> list[Order]:
        """Send the orders that move each symbol to its target weight (decided at ``bar``'s close)."""

    @abstractmethod
    def fills(self, since: str | None = None) -> list[Fill]:
        """Execution reports (of bars on or after ``since``)."""

    @abstractmethod
    def positions(self) -> dict[str, float]:
        """Shares held per symbol."""

    @abstractmethod
    def cash(self) -> float:
        """Cash balance (short sale proceeds included)."""

    def value(self, closes: Mapping[str, float]) -> float:
        """Mark-to-market account value at ``closes``."""
        return self.cash() + sum(q * closes[s] for s, q in self.positions().items() if q)


class PaperBroker(Broker):
    """Simulated fills at the next open with the configured costs, booked in the ledger."""

    def __init__(self, ledger: Ledger, params: ExecutionParams) -> None:
        self.ledger = ledger
        self.params = params

    def _state(self) -> AccountState:
        held = self.ledger.positions()
        return AccountState(cash=self.ledger.account()["cash"],
                            positions={s: p[0] for s, p in held.items()},
                            avg_price={s: p[1] for s, p in held.items()})

    def _save(self, state: AccountState) -> None:
        db = self.ledger.conn
        db.execute("UPDATE account SET cash = ? WHERE id = 1", (state.cash,))
        db.executemany(
            "INSERT INTO positions (symbol, shares, avg_price) VALUES (?, ?, ?) "
            "ON CONFLICT (symbol) DO UPDATE SET shares = excluded.shares, "
            "avg_price = excluded.avg_price",
            [(s, q, state.avg_price.get(s, 0.0)) for s, q in state.positions.items()])

    def sync(self, bar: str, opens: Mapping[str, float],
             volumes: Mapping[str, float]) -> list[Fill]:
        pending = self.ledger.pending_orders()
        if not pending:
            return []
        state = self._state()
        requests = [OrderRequest(o["symbol"], o["size"], o["ref_price"]) for o in pending]
        outcomes = fill_orders(state, requests, opens, volumes, self.params)
        fills = [Fill(pending[o.seq]["id"], bar, o.seq, o.symbol, o.side, o.size,
                      o.price if o.price == o.price else None, o.commission, o.status)
                 for o in outcomes]
        db = self.ledger.conn
        db.executemany(
            "INSERT INTO fills (order_id, date, seq, symbol, side, size, price, commission, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(f.order_id, f.date, f.seq, f.symbol, f.side, f.size, f.price, f.commission, f.status)
             for f in fills])
        for o in pending:
            mine = [f for f in fills if f.order_id == o["id"]]
            done = sum(f.size for f in mine if f.price is not None)
            status = mine[-1].status if mine else "cancelled"
            if status == "partial":  # pragma: no cover - a partial is always followed by its rest
                status = "filled"
            db.execute("UPDATE orders SET status = ?, filled_size = ?, executed_on = ? WHERE id = ?",
                       (status, done, bar, o["id"]))
        self._save(state)
        return fills

    def submit_targets(self, bar: str, targets: Mapping[str, float],
                       closes: Mapping[str, float]) -> list[Order]:
        requests = plan_orders(self._state(), targets, closes, self.params)
        db = self.ledger.conn
        out = []
        for seq, r in enumerate(requests):
            cur = db.execute("INSERT INTO orders (decided, seq, symbol, size, ref_price) "
                             "VALUES (?, ?, ?, ?, ?)", (bar, seq, r.symbol, r.size, r.ref_price))
            out.append(Order(int(cur.lastrowid), bar, seq, r.symbol, r.size, r.ref_price, "pending"))
        return out

    def fills(self, since: str | None = None) -> list[Fill]:
        rows = self.ledger.conn.execute(
            "SELECT order_id, date, seq, symbol, side, size, price, commission, status FROM fills "
            "WHERE date >= ? ORDER BY id", (since or "",))
        return [Fill(*r) for r in rows]

    def positions(self) -> dict[str, float]:
        return {s: p[0] for s, p in self.ledger.positions().items()}

    def cash(self) -> float:
        return float(self.ledger.account()["cash"])

    def record_equity(self, bar: str, closes: Mapping[str, float], previous: float | None) -> float:
        """Mark to market at ``bar``'s close and book the equity row; returns the value."""
        state = self._state()
        value = state.value(closes)
        ret = value / previous - 1.0 if previous is not None and previous != 0 else 0.0
        self.ledger.conn.execute("INSERT INTO equity (date, cash, value, ret, positions) "
                                 "VALUES (?, ?, ?, ?, ?)",
                                 (bar, state.cash, value, ret, json.dumps(state.positions, sort_keys=True)))
        return value
