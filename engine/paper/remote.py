"""A real broker behind the :class:`~engine.paper.broker.Broker` boundary: a step that never
sends anything twice.

A :class:`RemoteBroker` talks to a broker through a :class:`Venue` (the wire
protocol: :class:`engine.paper.alpaca.AlpacaVenue`; an Interactive Brokers venue
would be another) and keeps its durable records in a
:class:`~engine.paper.broker_store.BrokerStore`. A step runs these phases, in
this order (:func:`broker_step` is the reference driver):

1. :meth:`~RemoteBroker.begin`: the broker's account must be the one recorded at
   init (other keys or a reset paper account are refused); read the clock.
2. :meth:`~RemoteBroker.resolve`: every order intended without a known outcome is
   looked up by its client order id before anything else; one the broker never
   saw stays ``intended``.
3. :meth:`~RemoteBroker.sync_fills`: open orders are read back; executions are
   booked as increments of the cumulative filled quantity at the broker's
   prices and times, rests of expired/cancelled orders recorded (idempotent).
4. :meth:`~RemoteBroker.reconcile`: the book (booked fills plus adopted
   adjustments) must equal the broker's positions for the account's symbols;
   a difference refuses to trade (:class:`DriftError`, one line per symbol)
   unless adopted. Cash and equity differences are reported only.
5. :meth:`~RemoteBroker.decide`: target weights become orders from the broker's
   positions net of its open orders, committed as ``intended`` (one transaction)
   *before* anything is sent; a bar already decided is never decided again.
6. :meth:`~RemoteBroker.send`: each intended order goes out with its client order
   id; a bar whose next session is not the broker's next session (catching up
   old bars) is ``missed``, never sent. A duplicate-id or other refusal is looked
   up before it is believed.

Test hook: ``LSTMKNN_BROKER_PAUSE="after_post=SECONDS,after_intent=SECONDS,after_sync=SECONDS"``
sleeps at those points (after a reply to a POST, before its outcome is
committed; after a bar's intents are committed; after the first :meth:`~RemoteBroker.sync`
of a step, inside the paper ledger's bar transaction), announcing itself on stderr.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

from lstmknn.engine.errors import UserError
from lstmknn.engine.paper.broker import Broker, Fill, Order
from lstmknn.engine.paper.broker_store import FINAL_STATUSES, BrokerStore
from lstmknn.engine.paper.orders import client_order_id, new_nonce, order_legs
from lstmknn.strategies.costs import ExecutionParams, order_size

PAUSE_ENV = "LSTMKNN_BROKER_PAUSE"
ADOPT_OPTION = "--adopt-broker-positions"
QTY_TOL = 1e-6  # shares: smaller position differences are float noise
MONEY_TOL = 0.01
CALENDAR_DAYS = 40  # calendar read before the next session (always holds earlier sessions)


class BrokerError(UserError):
    """A broker refused or could not do what a step needs (one line; never contains a secret)."""


class BrokerUnavailable(BrokerError):
    """No usable answer (timeout, rate limit, gateway or server error): run the step again later."""


class DriftError(BrokerError):
    """The book and the broker's positions differ: no order is sent until adopted."""

    def __init__(self, message: str, rows: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.rows = rows


class OrderRejected(Exception):
    """The venue refused an order (4xx): ``code`` as the broker gave it (None when unreadable)."""

    def __init__(self, code: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DuplicateOrder(Exception):
    """The venue already holds an order with this client order id."""


# ----------------------------------------------------------------------------- the venue

@dataclass(frozen=True)
class VenueAccount:
    number: str
    cash: float
    equity: float
    status: str
    blocked: bool


@dataclass(frozen=True)
class VenueClock:
    """``session``: the exchange date of the session an order sent now trades in."""

    now: str
    is_open: bool
    session: date


@dataclass(frozen=True)
class VenueAsset:
    symbol: str
    tradable: bool
    fractionable: bool
    shortable: bool


@dataclass(frozen=True)
class VenuePosition:
    symbol: str
    qty: float  # signed: negative is short
    avg_price: float
    price: float | None


@dataclass(frozen=True)
class VenueOrder:
    broker_id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float
    filled_qty: float
    avg_price: float | None
    status: str
    updated_at: str
    filled_at: str | None

    @property
    def is_open(self) -> bool:
        return self.status not in FINAL_STATUSES

    @property
    def signed_remaining(self) -> float:
        rest = max(self.qty - self.filled_qty, 0.0)
        return rest if self.side == "buy" else -rest


@dataclass(frozen=True)
class VenueFill:
    id: str
    order_id: str
    symbol: str
    side: str
    qty: float
    price: float
    time: str


@dataclass(frozen=True)
class OrderIntent:
    client_order_id: str
    symbol: str
    side: str
    qty: float
    time_in_force: str


class Venue(Protocol):
    """The wire protocol of one broker. Methods raise :class:`BrokerError` (one line)."""

    name: str
    endpoint: str

    def account(self) -> VenueAccount: ...
    def clock(self) -> VenueClock: ...
    def sessions(self, start: date, end: date) -> list[date]: ...
    def asset(self, symbol: str) -> VenueAsset: ...
    def position(self, symbol: str) -> VenuePosition | None:
        """The position, or None only when the broker says there is none (flat)."""
    def open_orders(self, symbols: Sequence[str]) -> list[VenueOrder]: ...
    def order(self, broker_id: str) -> VenueOrder: ...
    def order_by_client_id(self, client_order_id: str) -> VenueOrder | None:
        """The order, or None only when the broker says it never saw this id."""
    def submit(self, intent: OrderIntent) -> VenueOrder:
        """Place an order; raises :class:`DuplicateOrder`, :class:`OrderRejected` or
        :class:`BrokerUnavailable` (outcome unknown)."""
    def fills_since(self, after: str) -> list[VenueFill]: ...
    def session_of(self, when: str) -> str:
        """The exchange date (ISO) of a broker timestamp."""
    def send_window(self, time_in_force: str) -> str | None:
        """Why orders with this time in force cannot be sent now (None: they can)."""


# ----------------------------------------------------------------------------- helpers

def _pause(point: str, detail: str) -> None:
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    for item in spec.split(","):
        name, _, seconds = item.partition("=")
        if name.strip() == point:
            sys.stderr.write(f"lstmknn-pause {point} {detail}\n")
            sys.stderr.flush()
            time.sleep(float(seconds or 0))


def _fmt(x: float) -> str:
    return f"{x:.9g}"


@dataclass
class Reconciliation:
    """What :meth:`RemoteBroker.reconcile` found: per-symbol drift, cash and equity."""

    positions: dict[str, float]
    drift: list[dict[str, Any]] = field(default_factory=list)
    adopted: bool = False
    cash: tuple[float, float] | None = None  # (ledger, broker)
    equity: tuple[float, float] | None = None

    def lines(self) -> list[str]:
        out = [f"adopted {r['symbol']}: ledger {_fmt(r['ledger'])} -> broker {_fmt(r['broker'])} "
               f"({r['diff']:+.9g}; {r['cause']})" for r in self.drift if self.adopted]
        for what, pair in (("cash", self.cash), ("equity", self.equity)):
            if pair is not None and abs(pair[1] - pair[0]) >= MONEY_TOL:
                out.append(f"{what} differs: ledger {pair[0]:.2f}, broker {pair[1]:.2f} "
                           f"({pair[1] - pair[0]:+.2f}; reported, not blocking)")
        return out


@dataclass
class StepReport:
    """What :func:`broker_step` did."""

    bar: str
    resolved: list[str]
    fills: list[Fill]
    reconciliation: Reconciliation
    sent: list[Order]
    missed: list[str]  # symbols whose decision at this bar was not sent (not current)
    missed_orders: list[str]  # intended orders of older bars marked missed in this step
    rejected: list[dict[str, Any]]

    def lines(self) -> list[str]:
        out = [f"{self.bar}: {len(self.resolved)} resolved, {len(self.fills)} fill(s) booked, "
               f"{len(self.sent)} order(s) sent, {len(self.rejected)} rejected"]
        if self.missed:
            out.append(f"missed (not the broker's next session): {', '.join(self.missed)}")
        if self.missed_orders:
            out.append(f"{len(self.missed_orders)} intended order(s) of earlier bars never sent: "
                       "missed")
        out += self.reconciliation.lines()
        out += [f"rejected {r['symbol']} {r['side']} {_fmt(r['qty'])}: "
                f"{r['reject_code'] or '-'} {r['reject_message']}" for r in self.rejected]
        return out


@dataclass
class _Context:
    meta: dict[str, Any]
    account: VenueAccount
    clock: VenueClock
    sessions: list[date]
    resolved: bool = False
    positions: dict[str, VenuePosition | None] | None = None
    assets: dict[str, VenueAsset] = field(default_factory=dict)


def open_remote_account(store: BrokerStore, venue: Venue, account: str, *,
                        nonce: str | None = None) -> dict[str, Any]:
    """Record the broker's account number and a fresh client-order-id nonce, once.

    A second call checks that the broker's account is still the recorded one.
    """
    meta = store.meta(account)
    acct = venue.account()
    if meta is not None:
        _same_account(meta, acct, venue)
        return meta
    clock = venue.clock()
    store.create_meta(account, venue.name, venue.endpoint, acct.number, nonce or new_nonce(),
                      acct.cash, clock.now)
    return store.meta(account) or {}


def _same_account(meta: Mapping[str, Any], acct: VenueAccount, venue: Venue) -> None:
    if acct.number != meta["account_number"]:
        raise BrokerError(
            f"the keys given open {venue.name} account {acct.number}, but this account trades "
            f"{meta['account_number']} (other keys, or the paper account was reset): refusing to "
            "trade; open a new lstmknn account for it")


# ----------------------------------------------------------------------------- the broker

class RemoteBroker(Broker):
    """A :class:`Broker` on a real venue, with the crash-safe step phases.

    One instance serves one step: :meth:`begin` reads the account and clock that
    the later phases use. The plain :class:`Broker` methods run the phases too:
    the first :meth:`sync` of an instance runs begin, resolve, sync_fills and
    reconcile; :meth:`submit_targets` runs decide and send.
    """

    def __init__(self, store: BrokerStore, venue: Venue, account: str, symbols: Sequence[str],
                 params: ExecutionParams | None = None, *, time_in_force: str = "day",
                 fractional: bool = False, adopt: bool = False) -> None:
        self.store = store
        self.venue = venue
        self.account = account
        self.symbols = tuple(dict.fromkeys(symbols))
        self.params = params or ExecutionParams()
        self.time_in_force = time_in_force
        self.fractional = fractional
        self.adopt = adopt
        self._ctx: _Context | None = None
        self._prepared = False
        self.missed_orders: list[str] = []
        self.reconciliation: Reconciliation | None = None  # what the first sync found

    def __repr__(self) -> str:
        return (f"RemoteBroker(venue={self.venue!r}, account={self.account!r}, "
                f"symbols={list(self.symbols)!r})")

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    # --- phases

    def begin(self) -> VenueAccount:
        """Check the broker's account against the one recorded at init; read the clock."""
        meta = self.store.meta(self.account)
        if meta is None:
            raise BrokerError(f"account {self.account!r} has no broker record: initialise it "
                              "for the broker first")
        acct = self.venue.account()
        _same_account(meta, acct, self.venue)
        if acct.blocked:
            raise BrokerError(f"{self.venue.name} account {acct.number} cannot trade now "
                              f"(status {acct.status}, or trading blocked)")
        clock = self.venue.clock()
        sessions = self.venue.sessions(clock.session - timedelta(days=CALENDAR_DAYS),
                                       clock.session)
        self._ctx = _Context(meta, acct, clock, sorted(sessions))
        return acct

    def _context(self) -> _Context:
        if self._ctx is None:
            raise RuntimeError("begin() first")
        return self._ctx

    def resolve(self) -> list[str]:
        """Look up every ``intended`` order by client order id; return the ids the broker has."""
        ctx = self._context()
        found = []
        for row in self.store.orders(self.account, ["intended"]):
            o = self.venue.order_by_client_id(row["client_order_id"])
            if o is not None:
                self._apply(row, o)
                found.append(row["client_order_id"])
        ctx.resolved = True
        return found

    def sync_fills(self) -> list[Fill]:
        """Read back every sent order without a final outcome; return the fill rows booked."""
        self._context()
        start = self._last_fill_id()
        for row in self.store.open_orders(self.account):
            if row["status"] != "intended":
                self._apply(row, self.venue.order(row["broker_id"]))
        return self._fills_after(start)

    def reconcile(self, bar: str, closes: Mapping[str, float] | None = None, *,
                  adopt: bool | None = None) -> Reconciliation:
        """Compare the book with the broker's positions (and cash, equity); refuse on drift.

        Equity compares the book marked at the broker's prices (``closes`` where the
        broker has none) with the broker's equity, so only real differences show.

        With ``adopt`` (default: the instance's) a drift is booked as an adjustment
        (``reconciliations`` rows with action ``adopted``), the cash difference too.
        """
        ctx = self._context()
        adopt = self.adopt if adopt is None else adopt
        held = self._reconcile_positions(ctx)
        book = self.store.book_positions(self.account)
        acct = ctx.account = self.venue.account()
        qty = {s: (p.qty if p else 0.0) for s, p in held.items()}
        rec = Reconciliation(positions=qty)
        for sym in held:
            diff = qty[sym] - book.get(sym, 0.0)
            if abs(diff) > QTY_TOL:
                rec.drift.append({"kind": "position", "symbol": sym, "ledger": book.get(sym, 0.0),
                                  "broker": qty[sym], "diff": diff, "cause": ""})
        cash_book = self.store.book_cash(self.account)
        rec.cash = (cash_book, acct.cash)
        marks = {s: (p.price if p and p.price else (closes or {}).get(s)) for s, p in held.items()}
        if all(marks[s] for s in held if book.get(s)):  # the book at the broker's own marks
            rec.equity = (cash_book + sum(book.get(s, 0.0) * (marks[s] or 0.0) for s in held),
                          acct.equity)
        if rec.drift:
            causes = self._causes([r["symbol"] for r in rec.drift], ctx)
            for r in rec.drift:
                r["cause"] = causes[r["symbol"]]
            if not adopt:
                self.store.log_reconciliation(self.account, bar,
                                              [{**r, "action": "refused"} for r in rec.drift])
                lines = [f"  {r['symbol']}: ledger {_fmt(r['ledger'])}, broker "
                         f"{_fmt(r['broker'])}, difference {r['diff']:+.9g}: {r['cause']}"
                         for r in rec.drift]
                raise DriftError(
                    f"positions at {self.venue.name} differ from the ledger; no order is sent "
                    f"until they match or a step runs with {ADOPT_OPTION}:\n" + "\n".join(lines),
                    rec.drift)
            rows = [{**r, "action": "adopted"} for r in rec.drift]
            if abs(acct.cash - cash_book) >= MONEY_TOL:
                rows.append({"kind": "cash", "symbol": "", "ledger": cash_book,
                             "broker": acct.cash, "diff": acct.cash - cash_book,
                             "cause": "adopted with the positions", "action": "adopted"})
                rec.cash = (acct.cash, acct.cash)
            self.store.log_reconciliation(self.account, bar, rows)
            rec.adopted = True
        reported = [{"kind": k, "symbol": "", "ledger": p[0], "broker": p[1],
                     "diff": p[1] - p[0], "cause": "", "action": "reported"}
                    for k, p in (("cash", rec.cash), ("equity", rec.equity))
                    if p is not None and abs(p[1] - p[0]) >= MONEY_TOL]
        if reported:
            self.store.log_reconciliation(self.account, bar, reported)
        ctx.positions = held
        return rec

    def _reconcile_positions(self, ctx: _Context) -> dict[str, VenuePosition | None]:
        """The broker's positions of the account's symbols (and of any the book holds).

        A fill may land between reading the orders and reading the positions: when
        a symbol differs and has an open order, the orders are read once more.
        """
        book = self.store.book_positions(self.account)
        symbols = list(dict.fromkeys([*self.symbols, *(s for s, q in book.items() if q)]))
        for attempt in range(2):
            held = {s: self.venue.position(s) for s in symbols}
            book = self.store.book_positions(self.account)
            moving = {r["symbol"] for r in self.store.open_orders(self.account)
                      if r["status"] != "intended"}
            drifted = [s for s in symbols
                       if abs((held[s].qty if held[s] else 0.0) - book.get(s, 0.0)) > QTY_TOL]
            if attempt or not (set(drifted) & moving):
                return held
            self.sync_fills()
        return held  # pragma: no cover

    def _causes(self, symbols: list[str], ctx: _Context) -> dict[str, str]:
        """A likely cause per drifted symbol, from the broker's fill history since init."""
        fills = self.venue.fills_since(ctx.meta["opened_at"])
        ours = self.store.broker_ids(self.account)
        out = {}
        for sym in symbols:
            outside = [f for f in fills if f.symbol == sym and f.order_id not in ours]
            if outside:
                last = outside[-1]
                out[sym] = (f"{len(outside)} fill(s) of orders not placed by lstmknn since "
                            f"{ctx.meta['opened_at'][:10]}, last {last.side} {_fmt(last.qty)} at "
                            f"{_fmt(last.price)} on {last.time}")
            else:
                out[sym] = ("no fill outside lstmknn in the broker's history since "
                            f"{ctx.meta['opened_at'][:10]}: a position held before init, a reset "
                            "paper account or a corporate action (split)")
        return out

    def is_current(self, bar: str) -> bool:
        """Whether the session after ``bar`` is the broker's next session (orders may go out)."""
        ctx = self._context()
        day = date.fromisoformat(bar[:10])
        if not ctx.sessions or day < ctx.sessions[0]:
            return False
        after = [s for s in ctx.sessions if s > day]
        return bool(after) and after[0] == ctx.clock.session

    def decide(self, bar: str, targets: Mapping[str, float],
               closes: Mapping[str, float]) -> list[dict[str, Any]]:
        """Record the orders that move each symbol to its target weight, as ``intended``.

        From the broker's positions net of its open orders; value = broker cash plus
        the account's positions at ``closes``. A bar decided before is not decided
        again (its recorded orders are returned). A bar that is not current is
        recorded as ``missed`` and yields no order.
        """
        ctx = self._context()
        if ctx.positions is None:
            raise RuntimeError("reconcile() before decide()")
        if self.store.decided(self.account, bar):
            return [r for r in self.store.orders(self.account) if r["bar"] == bar]
        unknown = sorted(set(targets) - set(self.symbols))
        if unknown:
            raise BrokerError(f"targets for symbols outside the account: {', '.join(unknown)}")
        current = self.is_current(bar)
        shares = {s: (p.qty if p else 0.0) for s, p in ctx.positions.items()}
        value = ctx.account.cash
        for s, q in shares.items():
            if q:
                p = closes.get(s) or ctx.positions[s].price or ctx.positions[s].avg_price
                value += q * p
        net = dict(shares)
        if current:
            for o in self.venue.open_orders(list(self.symbols)):
                net[o.symbol] = net.get(o.symbol, 0.0) + o.signed_remaining
        decisions, legs = [], []
        for sym in sorted(targets):
            w, close = targets[sym], closes.get(sym)
            cur = net.get(sym, 0.0)
            row = {"symbol": sym, "target": w, "ref_price": close, "current": cur, "value": value,
                   "status": "none"}
            decisions.append(row)
            if w is None or w != w:
                row["target"] = None
                continue
            if close is None or not close > 0 or not math.isfinite(close):
                raise BrokerError(f"{bar}: no usable close for {sym} to size its order")
            delta = order_size(w, value, close, cur, self.params)
            if not delta:
                continue
            if not current:
                row["status"] = "missed"
                continue
            qtys = order_legs(cur, cur + delta, fractional=self._fractional(sym))
            if qtys:
                row["status"] = "orders"
                legs += [(sym, q, close) for q in qtys]
        legs.sort(key=lambda leg: leg[1] > 0)  # sells first (stable: by symbol, then leg order)
        nonce = ctx.meta["nonce"]
        orders = [{"client_order_id": client_order_id(self.account, bar, sym, seq, nonce),
                   "symbol": sym, "seq": seq, "side": "buy" if q > 0 else "sell", "qty": abs(q),
                   "ref_price": close, "time_in_force": self.time_in_force}
                  for seq, (sym, q, close) in enumerate(legs)]
        self.store.record_decision(self.account, bar, decisions, orders)
        if orders:
            _pause("after_intent", bar)
        return [r for r in self.store.orders(self.account) if r["bar"] == bar]

    def _fractional(self, symbol: str) -> bool:
        if not self.fractional or self.time_in_force != "day":
            return False
        ctx = self._context()
        if symbol not in ctx.assets:
            ctx.assets[symbol] = self.venue.asset(symbol)
        return ctx.assets[symbol].fractionable

    def send(self) -> list[Order]:
        """Send every ``intended`` order of the current bar; mark older ones ``missed``.

        Runs only after :meth:`resolve` in the same step. A refusal is looked up by
        client order id before it is recorded (a lost reply retried by the client
        comes back as a duplicate id: the order is placed). No answer raises
        :class:`BrokerUnavailable` and leaves the order ``intended``.
        """
        ctx = self._context()
        if not ctx.resolved:
            raise RuntimeError("resolve() before send()")
        sent = []
        for row in self.store.orders(self.account, ["intended"]):
            cid = row["client_order_id"]
            if not self.is_current(row["bar"]):
                self.store.book(cid, {"status": "missed"})
                self.missed_orders.append(cid)
                continue
            why = self.venue.send_window(row["time_in_force"])
            if why:
                raise BrokerError(f"{why}; the orders of {row['bar']} stay intended and go out at "
                                  "a later step of the same session window")
            intent = OrderIntent(cid, row["symbol"], row["side"], row["qty"], row["time_in_force"])
            try:
                placed: VenueOrder | None = self.venue.submit(intent)
            except (DuplicateOrder, OrderRejected) as exc:
                placed = self.venue.order_by_client_id(cid)
                if placed is None and isinstance(exc, DuplicateOrder):
                    raise BrokerError(f"{self.venue.name} says client order id {cid} is taken but "
                                      "cannot find it: nothing was resent") from None
                if placed is None:
                    assert isinstance(exc, OrderRejected)
                    self._reject(row, exc)
                    continue
            _pause("after_post", cid)
            self._apply(row, placed)
            sent.append(self._order(self.store.order(cid) or row))
        return sent

    def _reject(self, row: Mapping[str, Any], exc: OrderRejected) -> None:
        ctx = self._context()
        self.store.book(row["client_order_id"],
                        {"status": "rejected", "reject_code": exc.code,
                         "reject_message": exc.message},
                        [{"qty": row["qty"], "price": None, "time": ctx.clock.now,
                          "session": ctx.clock.session.isoformat(), "cum_qty": 0.0,
                          "status": "rejected"}])

    def _apply(self, row: Mapping[str, Any], o: VenueOrder) -> None:
        """Book the broker's view of an order: new executions as increments, a final rest."""
        if o.client_order_id != row["client_order_id"]:
            raise BrokerError(f"{self.venue.name} answered order {row['client_order_id']} with "
                              f"{o.client_order_id}")
        cum_old, avg_old = float(row["filled_qty"]), float(row["avg_price"] or 0.0)
        cum, avg = o.filled_qty, o.avg_price
        fills = []
        if cum > cum_old + QTY_TOL and avg is not None:
            inc = cum - cum_old
            done = o.status == "filled" and cum >= row["qty"] - QTY_TOL
            when = (o.filled_at if done and o.filled_at else o.updated_at)
            fills.append({"qty": inc, "price": (avg * cum - avg_old * cum_old) / inc,
                          "time": when, "session": self.venue.session_of(when), "cum_qty": cum,
                          "status": "filled" if done else "partial"})
        else:
            cum, avg = cum_old, (avg_old if row["avg_price"] is not None else None)
        rest = row["qty"] - cum
        if o.status in ("canceled", "expired", "rejected") and rest > QTY_TOL:
            fills.append({"qty": rest, "price": None, "time": o.updated_at,
                          "session": self.venue.session_of(o.updated_at), "cum_qty": cum,
                          "status": "cancelled" if o.status == "canceled" else o.status})
        fields = {"status": o.status, "broker_id": o.broker_id, "filled_qty": cum,
                  "avg_price": avg}
        if row["sent_at"] is None:
            fields["sent_at"] = o.updated_at
        self.store.book(row["client_order_id"], fields, fills)

    # --- the Broker boundary

    def sync(self, bar: str, opens: Mapping[str, float],
             volumes: Mapping[str, float]) -> list[Fill]:
        """First call: begin, resolve, sync_fills, reconcile; later calls: sync_fills."""
        start = self._last_fill_id()
        if not self._prepared:
            self.begin()
            self.resolve()
            self.sync_fills()
            self.reconciliation = self.reconcile(bar)
            self._prepared = True
            _pause("after_sync", bar)
        else:
            self.sync_fills()
        return self._fills_after(start)

    def submit_targets(self, bar: str, targets: Mapping[str, float],
                       closes: Mapping[str, float]) -> list[Order]:
        """Decide and send (the orders of a bar that is not current are ``missed``)."""
        if not self._prepared:
            self.sync(bar, {}, {})
        self.decide(bar, targets, closes)
        self.send()
        return [self._order(r) for r in self.store.orders(self.account)
                if r["bar"] == bar and r["status"] not in ("missed", "rejected")]

    def open_orders(self) -> list[Order]:
        return [self._order(r) for r in self.store.open_orders(self.account)]

    def fills(self, since: str | None = None) -> list[Fill]:
        return [self._fill(r) for r in self.store.fills(self.account, since)]

    def positions(self) -> dict[str, float]:
        held = self._held()
        return {s: (p.qty if p else 0.0) for s, p in held.items()}

    def cost_basis(self) -> dict[str, float]:
        return {s: p.avg_price for s, p in self._held().items() if p}

    def cash(self) -> float:
        if self._ctx is None:
            return self.venue.account().cash
        return self._ctx.account.cash

    def _held(self) -> dict[str, VenuePosition | None]:
        if self._ctx is not None and self._ctx.positions is not None:
            return self._ctx.positions
        return {s: self.venue.position(s) for s in self.symbols}

    # --- rows

    def _last_fill_id(self) -> int:
        rows = self.store.fills(self.account)
        return rows[-1]["id"] if rows else 0

    def _fills_after(self, start: int) -> list[Fill]:
        return [self._fill(r) for r in self.store.fills(self.account) if r["id"] > start]

    @staticmethod
    def _fill(r: Mapping[str, Any]) -> Fill:
        return Fill(r["order_id"], r["time"], r["seq"], r["symbol"], r["side"], r["qty"],
                    r["price"], 0.0, r["status"])

    @staticmethod
    def _order(r: Mapping[str, Any]) -> Order:
        rest = float(r["qty"]) - float(r["filled_qty"])
        return Order(r["id"], r["bar"], r["seq"], r["symbol"],
                     rest if r["side"] == "buy" else -rest, r["ref_price"], r["status"])


def broker_step(broker: RemoteBroker, bar: str, targets: Mapping[str, float],
                closes: Mapping[str, float], *, adopt: bool = False) -> StepReport:
    """One step on a real broker: begin, resolve, sync fills, reconcile, decide, send.

    ``targets``: weight per symbol decided at ``bar``'s close; ``closes``: that
    close per symbol. Raises :class:`DriftError` (nothing sent) on a position
    difference unless ``adopt``; :class:`BrokerUnavailable` when the broker does
    not answer (what was intended stays so and is resolved by the next step).
    """
    broker.begin()
    start = broker._last_fill_id()
    resolved = broker.resolve()
    broker.sync_fills()
    rec = broker.reconcile(bar, closes, adopt=adopt)
    fills = broker._fills_after(start)
    broker.decide(bar, targets, closes)
    sent = broker.send()
    rows = [r for r in broker.store.orders(broker.account) if r["bar"] == bar]
    missed = [d["symbol"] for d in broker.store.decisions(broker.account, bar)
              if d["status"] == "missed"]
    return StepReport(bar, resolved, fills, rec, sent, missed, list(broker.missed_orders),
                      [r for r in rows if r["status"] == "rejected"])
