"""The broker boundary, and the local paper broker that keeps its book in the SQLite ledger.

A :class:`Broker` takes target weights at a close and reports fills, positions
and cash. :class:`PaperBroker` implements it with the backtest's own bar-step
execution (:func:`strategies.account.plan_orders` at the close,
:func:`strategies.account.fill_orders` at the next open), so a paper account
trades exactly like ``lstmknn backtest``. It must be used inside a ledger
transaction: every call reads and writes the same ``BEGIN IMMEDIATE`` snapshot.
The runner gets its broker from a :data:`BrokerFactory` (default
:func:`paper_broker`), so another broker plugs in without touching the runner.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from lstmknn.engine.paper.store import Ledger
from lstmknn.strategies.account import AccountState, OrderRequest, fill_orders, plan_orders
from lstmknn.strategies.costs import ExecutionParams


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
    """Everything the paper runner needs from a broker (the local simulation or a real one).

    The runner calls, per bar: :meth:`sync` at the open, :meth:`value`,
    :meth:`cash` and :meth:`positions` to mark the account at the close (the
    equity row is the ledger's), and :meth:`submit_targets` after the signal;
    ``status`` also reads :meth:`open_orders` and :meth:`cost_basis`, the report
    :meth:`fills`. Each bar's calls happen inside one ledger transaction; after the
    step the runner reads :meth:`notes` and calls :meth:`close`.
    """

    @abstractmethod
    def sync(self, bar: str, opens: Mapping[str, float],
             volumes: Mapping[str, float]) -> list[Fill]:
        """Bring the book up to the open of ``bar``; return the fills that happened there.

        ``opens`` holds the symbols with a bar here; an order for any other symbol expires
        unfilled (the backtest never sends an order that has no bar to fill at).
        """

    @abstractmethod
    def submit_targets(self, bar: str, targets: Mapping[str, float],
                       closes: Mapping[str, float]) -> list[Order]:
        """Send the orders that move each symbol to its target weight (decided at ``bar``'s close)."""

    @abstractmethod
    def open_orders(self) -> list[Order]:
        """Orders sent and not yet executed, in submission order."""

    @abstractmethod
    def fills(self, since: str | None = None) -> list[Fill]:
        """Execution reports (of bars on or after ``since``), in booking order."""

    @abstractmethod
    def positions(self) -> dict[str, float]:
        """Shares held per symbol (symbols once held stay, with 0)."""

    @abstractmethod
    def cost_basis(self) -> dict[str, float]:
        """Average entry price per held symbol."""

    @abstractmethod
    def cash(self) -> float:
        """Cash balance (short sale proceeds included)."""

    def value(self, closes: Mapping[str, float]) -> float:
        """Mark-to-market account value at ``closes``."""
        return self.cash() + sum(q * closes[s] for s, q in self.positions().items() if q)

    def notes(self) -> list[str]:
        """What the broker has to say about the step, one line each (default: nothing)."""
        return []

    def close(self) -> None:
        """Release what the broker holds (connections); the runner calls it after a step."""
        return None


def _since(fills: list[Fill], since: str | None) -> list[Fill]:
    if since is None:
        return fills
    ts = pd.Timestamp(since)
    return [f for f in fills if pd.Timestamp(f.date) >= ts]


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
        self.ledger.set_cash(state.cash)
        self.ledger.save_positions({s: (q, state.avg_price.get(s, 0.0))
                                    for s, q in state.positions.items()})

    def sync(self, bar: str, opens: Mapping[str, float],
             volumes: Mapping[str, float]) -> list[Fill]:
        pending = self.ledger.pending_orders()
        for o in pending:
            if o["symbol"] not in opens:
                self.ledger.finish_order(o["id"], "expired", 0.0, bar)
        pending = [o for o in pending if o["symbol"] in opens]
        if not pending:
            return []
        state = self._state()
        requests = [OrderRequest(o["symbol"], o["size"], o["ref_price"]) for o in pending]
        outcomes = fill_orders(state, requests, opens, volumes, self.params)
        fills = [Fill(pending[o.seq]["id"], bar, o.seq, o.symbol, o.side, o.size,
                      o.price if o.price == o.price else None, o.commission, o.status)
                 for o in outcomes]
        self.ledger.add_fills((f.order_id, f.date, f.seq, f.symbol, f.side, f.size, f.price,
                               f.commission, f.status) for f in fills)
        for o in pending:
            mine = [f for f in fills if f.order_id == o["id"]]
            done = sum(f.size for f in mine if f.price is not None)
            status = mine[-1].status if mine else "cancelled"
            if status == "partial":  # pragma: no cover - a partial is always followed by its rest
                status = "filled"
            self.ledger.finish_order(o["id"], status, done, bar)
        self._save(state)
        return fills

    def submit_targets(self, bar: str, targets: Mapping[str, float],
                       closes: Mapping[str, float]) -> list[Order]:
        requests = plan_orders(self._state(), targets, closes, self.params)
        out = []
        for seq, r in enumerate(requests):
            oid = self.ledger.add_order(bar, seq, r.symbol, r.size, r.ref_price)
            out.append(Order(oid, bar, seq, r.symbol, r.size, r.ref_price, "pending"))
        return out

    def open_orders(self) -> list[Order]:
        return [Order(o["id"], o["decided"], o["seq"], o["symbol"], o["size"], o["ref_price"],
                      o["status"]) for o in self.ledger.pending_orders()]

    def fills(self, since: str | None = None) -> list[Fill]:
        return _since([Fill(*r) for r in self.ledger.fills()], since)

    def positions(self) -> dict[str, float]:
        return {s: p[0] for s, p in self.ledger.positions().items()}

    def cost_basis(self) -> dict[str, float]:
        return {s: p[1] for s, p in self.ledger.positions().items()}

    def cash(self) -> float:
        return float(self.ledger.account()["cash"])


BrokerFactory = Callable[[Ledger, ExecutionParams], Broker]


def paper_broker(ledger: Ledger, params: ExecutionParams) -> Broker:
    """The default :data:`BrokerFactory`: a :class:`PaperBroker` on the account's ledger."""
    return PaperBroker(ledger, params)
