"""Paper accounts that trade through a real broker (``paper init --broker alpaca``).

The step loop is the local one; only its :data:`~engine.paper.broker.BrokerFactory` changes.
:func:`step_broker` gives a :class:`MirroredBroker`: a
:class:`~engine.paper.remote.RemoteBroker` on Alpaca's paper API
(:mod:`engine.paper.alpaca`) whose records in ``broker.sqlite`` the ledger mirrors inside
each bar's transaction:

* orders (one row per client order id: broker id, status, rejection code and message,
  average fill price) and fills (the broker's price, its session as the fill's date and its
  time in ``broker_time``, commission 0) are upserted from the broker store, so a bar rolled
  back after its orders went out is mirrored again when it is re-run;
* beside each order, the fill the backtest's model gives it: the open of the next bar with
  that symbol, slipped as the backtest slips it (:func:`strategies.costs.fill_price`);
  :func:`shortfall` compares the two (the implementation shortfall);
* ``positions`` and the account's cash are the broker's, as the step's reconciliation found
  them.

Keys are read from the environment at init and when a step runs, never stored; a step checks
them before the walk-forward (:func:`check_environment`). ``status`` and ``report`` read the
two stores (:class:`BrokerBook`) and never contact the broker.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lstmknn.engine.errors import UserError
from lstmknn.engine.paper.broker import Broker, BrokerFactory, Fill, Order, paper_broker
from lstmknn.engine.paper.broker_store import BROKER_FILE, BrokerStore
from lstmknn.engine.paper.remote import ADOPT_OPTION, RemoteBroker
from lstmknn.engine.paper.store import Ledger
from lstmknn.strategies.costs import ExecutionParams, fill_price

LOCAL, ALPACA = "local", "alpaca"
BROKERS = (LOCAL, ALPACA)
VENUES = {ALPACA: "Alpaca"}  # broker -> the name a user knows it by


def check_broker(broker: str) -> str:
    """``broker`` when it is one lstmknn trades through; one line otherwise."""
    if broker not in BROKERS:
        raise UserError(f"unknown broker {broker!r}: use one of {', '.join(BROKERS)}")
    return broker


def check_environment(broker: str) -> None:
    """One line now, before any work, when the broker's endpoint, keys or client library are
    missing or refused (nothing is contacted)."""
    if broker == ALPACA:
        from lstmknn.engine.paper.alpaca import alpaca_venue

        alpaca_venue()


def broker_path(folder: Path) -> Path:
    return folder / BROKER_FILE


def remove_broker_store(folder: Path) -> None:
    """Delete ``broker.sqlite`` and its side files (an init that did not complete)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{broker_path(folder)}{suffix}").unlink(missing_ok=True)


def open_broker_account(folder: Path, name: str, broker: str) -> dict[str, Any]:
    """Create ``broker.sqlite`` and record the broker's account number and a client-order-id
    nonce (keys from the environment); nothing is left behind when that fails."""
    path = broker_path(folder)
    if path.exists() or path.is_symlink():
        raise UserError(f"{path} already exists; refusing to overwrite it")
    from lstmknn.engine.paper.alpaca import open_alpaca_account

    store = BrokerStore.open(path)
    try:
        meta = open_alpaca_account(store, name)
    except BaseException:
        store.close()
        remove_broker_store(folder)
        raise
    store.close()
    return meta


def _open_store(folder: Path, acct: Mapping[str, Any]) -> BrokerStore:
    path = broker_path(folder)
    if not path.is_file():
        raise UserError(f"{path} is missing: it records account {acct['name']}'s orders at "
                        f"{VENUES[acct['broker']]}; restore it (nothing is traded without it)")
    return BrokerStore.open(path)


def step_broker(folder: Path, acct: Mapping[str, Any], *, adopt: bool = False) -> BrokerFactory:
    """The step loop's broker for the account (keys checked now for a broker account)."""
    broker = check_broker(acct["broker"])
    if broker == LOCAL:
        if adopt:
            raise UserError(f"{ADOPT_OPTION} applies to accounts trading through a broker; "
                            f"{acct['name']} is a local paper account")
        return paper_broker
    check_environment(broker)
    _open_store(folder, acct).close()
    from lstmknn.engine.paper.alpaca import alpaca_factory

    remote = alpaca_factory(folder, acct["name"], json.loads(acct["symbols"]), adopt=adopt)

    def factory(ledger: Ledger, params: ExecutionParams) -> Broker:
        return MirroredBroker(ledger, remote(ledger, params), params, VENUES[broker])
    return factory


def status_broker(folder: Path, acct: Mapping[str, Any]) -> BrokerFactory:
    """The broker ``status`` reads: the local one, or :class:`BrokerBook` (no network)."""
    if check_broker(acct["broker"]) == LOCAL:
        return paper_broker

    def factory(ledger: Ledger, params: ExecutionParams) -> Broker:
        return BrokerBook(ledger, _open_store(folder, acct), acct["name"])
    return factory


# ----------------------------------------------------------------------------- the mirror

def _order_rows(store: BrokerStore, account: str) -> list[dict[str, Any]]:
    """The broker store's orders as ledger ``orders`` rows (signed size, last fill session)."""
    sessions = {f["client_order_id"]: f["session"] for f in store.fills(account)
                if f["price"] is not None}
    return [{"decided": r["bar"], "seq": r["seq"], "symbol": r["symbol"],
             "size": r["qty"] if r["side"] == "buy" else -r["qty"], "ref_price": r["ref_price"],
             "status": r["status"], "filled_size": r["filled_qty"],
             "executed_on": sessions.get(r["client_order_id"]),
             "client_order_id": r["client_order_id"], "broker_id": r["broker_id"],
             "reject_code": r["reject_code"], "reject_message": r["reject_message"],
             "avg_price": r["avg_price"]} for r in store.orders(account)]


def _fill_rows(store: BrokerStore, account: str) -> list[dict[str, Any]]:
    """The broker store's fill rows as ledger ``fills`` rows (dated by the broker's session)."""
    return [{"client_order_id": f["client_order_id"], "date": f["session"], "seq": f["seq"],
             "symbol": f["symbol"], "side": f["side"], "size": f["qty"], "price": f["price"],
             "broker_time": f["time"], "status": f["status"], "broker_fill_id": f["id"]}
            for f in store.fills(account)]


class MirroredBroker(Broker):
    """A :class:`RemoteBroker` whose records the ledger mirrors (see the module doc)."""

    def __init__(self, ledger: Ledger, remote: RemoteBroker, params: ExecutionParams,
                 venue: str) -> None:
        self.ledger = ledger
        self.remote = remote
        self.params = params
        self.venue = venue
        self.missed_bars: list[str] = []
        self.submitted: list[str] = []

    def __repr__(self) -> str:
        return f"MirroredBroker({self.remote!r})"

    def _mirror(self) -> None:
        store, account = self.remote.store, self.remote.account
        self.ledger.mirror_orders(_order_rows(store, account))
        self.ledger.mirror_fills(_fill_rows(store, account))

    def sync(self, bar: str, opens: Mapping[str, float],
             volumes: Mapping[str, float]) -> list[Fill]:
        """The broker's sync; then the orders decided before ``bar`` get the model's fill at
        this open, the broker's orders and fills are mirrored, the book and cash saved."""
        fills = self.remote.sync(bar, opens, volumes)
        self.ledger.mirror_orders(_order_rows(self.remote.store, self.remote.account))
        for o in self.ledger.unpriced_orders(bar):
            price = opens.get(o["symbol"])
            self.ledger.set_model_price(o["id"], bar, None if price is None else
                                        fill_price(price, o["size"], self.params.slippage))
        self.ledger.mirror_fills(_fill_rows(self.remote.store, self.remote.account))
        held, basis = self.remote.positions(), self.remote.cost_basis()
        self.ledger.save_positions({s: (q, basis.get(s, 0.0) if q else 0.0)
                                    for s, q in held.items()})
        self.ledger.set_cash(self.remote.cash())
        return fills

    def submit_targets(self, bar: str, targets: Mapping[str, float],
                       closes: Mapping[str, float]) -> list[Order]:
        """Decide and send (a bar that is not the broker's current one is recorded missed)."""
        orders = self.remote.submit_targets(bar, targets, closes)
        self.submitted.append(bar)
        if not self.remote.is_current(bar):
            self.missed_bars.append(bar)
        self._mirror()
        return orders

    def open_orders(self) -> list[Order]:
        return self.remote.open_orders()

    def fills(self, since: str | None = None) -> list[Fill]:
        return self.remote.fills(since)

    def positions(self) -> dict[str, float]:
        return self.remote.positions()

    def cost_basis(self) -> dict[str, float]:
        return self.remote.cost_basis()

    def cash(self) -> float:
        return self.remote.cash()

    def notes(self) -> list[str]:
        """Reconciliation findings, bars decided but not sent, orders missed or rejected."""
        out = []
        rec = self.remote.reconciliation
        if rec is not None:
            out += rec.lines()
        if self.missed_bars:
            first, last = self.missed_bars[0], self.missed_bars[-1]
            span = first if first == last else f"{first}..{last}"
            out.append(f"{len(self.missed_bars)} bar(s) decided and recorded but not sent "
                       f"({span}): only the bar before {self.venue}'s next session sends orders")
        if self.remote.missed_orders:
            out.append(f"{len(self.remote.missed_orders)} order(s) intended earlier and never "
                       "sent: their session has passed (missed)")
        bars = set(self.submitted)
        for r in self.remote.store.orders(self.remote.account, ["rejected"]):
            if r["bar"] in bars:
                out.append(f"{self.venue} rejected {r['side']} {r['qty']:.9g} {r['symbol']} "
                           f"(decided {r['bar']}): {r['reject_code'] or '-'} "
                           f"{r['reject_message']}")
        return out

    def close(self) -> None:
        self.remote.close()


# ----------------------------------------------------------------------------- status

class BrokerBook(Broker):
    """A broker account as its stores hold it, for ``status``: the book from the broker
    store's fills and adjustments, cash and average prices as the last step found them at
    the broker, its open orders. Never contacts the broker; cannot trade."""

    def __init__(self, ledger: Ledger, store: BrokerStore, account: str) -> None:
        self.ledger = ledger
        self.store = store
        self.account = account

    def sync(self, bar: str, opens: Mapping[str, float],
             volumes: Mapping[str, float]) -> list[Fill]:
        raise UserError("a broker account's status view cannot trade")

    def submit_targets(self, bar: str, targets: Mapping[str, float],
                       closes: Mapping[str, float]) -> list[Order]:
        raise UserError("a broker account's status view cannot trade")

    def open_orders(self) -> list[Order]:
        return [RemoteBroker._order(r) for r in self.store.open_orders(self.account)]

    def fills(self, since: str | None = None) -> list[Fill]:
        return [RemoteBroker._fill(r) for r in self.store.fills(self.account, since)]

    def positions(self) -> dict[str, float]:
        held = {s: 0.0 for s in self.ledger.positions()}
        return {**held, **self.store.book_positions(self.account)}

    def cost_basis(self) -> dict[str, float]:
        return {s: p[1] for s, p in self.ledger.positions().items()}

    def cash(self) -> float:
        return float(self.ledger.account()["cash"])

    def close(self) -> None:
        self.store.close()


def shortfall(orders: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Implementation shortfall of a broker account's orders: per executed order, the broker's
    average fill price against the model's next-open fill on the executed shares (positive:
    the broker filled worse than the model), in money and basis points, and cumulative.

    Unfilled quantities (expired, rejected, missed) are not costed; an order executed before
    the next bar is processed has no modelled price yet (``unpriced``)."""
    rows, total, notional, unpriced = [], 0.0, 0.0, 0
    for o in orders:
        if not o.get("client_order_id") or not o["filled_size"] or o["avg_price"] is None:
            continue
        if o["model_price"] is None:
            unpriced += 1
            continue
        sign = 1.0 if o["size"] > 0 else -1.0
        per_share = sign * (o["avg_price"] - o["model_price"])
        cost = per_share * o["filled_size"]
        total += cost
        notional += o["model_price"] * o["filled_size"]
        rows.append({"decided": o["decided"], "symbol": o["symbol"],
                     "side": "buy" if sign > 0 else "sell", "shares": o["filled_size"],
                     "model_date": o["model_date"], "model_price": o["model_price"],
                     "broker_price": o["avg_price"], "shortfall": cost,
                     "bps": per_share / o["model_price"] * 1e4, "cumulative": total})
    return {"orders": rows, "total": total, "notional": notional,
            "bps": total / notional * 1e4 if notional else None, "unpriced": unpriced}


def broker_status(folder: Path, ledger: Ledger, acct: Mapping[str, Any]) -> dict[str, Any]:
    """What ``status`` adds for a broker account: the broker account, its open orders, the last
    reconciliation, recent rejections and the implementation shortfall (no network)."""
    store = _open_store(folder, acct)
    try:
        name = acct["name"]
        meta = store.meta(name) or {}
        recs = store.reconciliations(name)
        last_bar = acct["last_bar"]
        refused = [r for r in recs if r["action"] == "refused"
                   and (last_bar is None or r["bar"] > last_bar)]
        if refused:
            at = refused[-1]["bar"]
            state, rows = "refused", [r for r in refused if r["bar"] == at]
        else:
            done = [r for r in recs if r["action"] != "refused"]
            at = done[-1]["bar"] if done else None
            state, rows = "matched", [r for r in done if r["bar"] == at]
        keep = ("bar", "kind", "symbol", "ledger", "broker", "diff", "cause", "action")
        orders = [{"decided": r["bar"], "symbol": r["symbol"], "side": r["side"],
                   "qty": r["qty"], "filled": r["filled_qty"], "status": r["status"],
                   "client_order_id": r["client_order_id"], "broker_id": r["broker_id"]}
                  for r in store.open_orders(name)]
        rejected = [{"decided": r["bar"], "symbol": r["symbol"], "side": r["side"],
                     "qty": r["qty"], "code": r["reject_code"], "message": r["reject_message"]}
                    for r in store.orders(name, ["rejected"])]
        missed = sum(1 for r in store.orders(name, ["missed"]))
        return {"broker": acct["broker"], "venue": VENUES[acct["broker"]],
                "endpoint": meta.get("endpoint"), "account_number": meta.get("account_number"),
                "opened_at": meta.get("opened_at"), "open_orders": orders,
                "reconciliation": {"state": state, "checked_at": last_bar, "bar": at,
                                   "rows": [{k: r[k] for k in keep} for r in rows]},
                "rejected": rejected, "missed_orders": missed,
                "shortfall": shortfall(ledger.orders())}
    finally:
        store.close()
