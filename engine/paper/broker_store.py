"""The durable records of a real-broker account (``broker.sqlite``): every SQL statement lives here.

A separate SQLite file next to the ledger, with its own connection: its writes
commit on their own, outside the ledger's per-bar transaction, because an
order's intent must be committed *before* it is sent and its outcome right
after (write-intent-before-send). Tables:

* ``broker_meta``: per account the broker, endpoint, the broker's account number
  and the client-order-id nonce (written once at init), opening cash;
* ``broker_decisions``: one row per (bar, symbol) decided: ``orders``, ``none``
  (already at target) or ``missed`` (not the broker's next session: never sent);
* ``broker_orders``: one row per order, keyed by its client order id, from
  ``intended`` to the broker's status (``accepted``, ``filled``, ``expired``, ...),
  ``rejected`` or ``missed``;
* ``broker_fills``: execution increments (``filled``/``partial`` with the broker's
  price and time), rests (``expired``/``cancelled``) and rejections, unique per
  (order, status, cumulative quantity) so booking twice is a no-op;
* ``reconciliations``: position, cash and equity differences found, refused,
  reported or adopted (adopted rows adjust the book).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lstmknn.engine.errors import UserError

BROKER_FILE = "broker.sqlite"
APP_ID = 0x4C4B4E42  # "LKNB"
SCHEMA_VERSION = 1
BUSY_TIMEOUT = 10.0
# Statuses of an order whose outcome is not final yet (besides ``intended``).
FINAL_STATUSES = ("filled", "canceled", "expired", "rejected", "replaced", "missed")

SCHEMA = """
CREATE TABLE broker_meta (
    account TEXT PRIMARY KEY,
    broker TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    account_number TEXT NOT NULL,
    nonce TEXT NOT NULL,
    opening_cash REAL NOT NULL,
    opened_at TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE broker_decisions (
    account TEXT NOT NULL,
    bar TEXT NOT NULL,
    symbol TEXT NOT NULL,
    target REAL,
    ref_price REAL,
    current REAL NOT NULL,
    value REAL NOT NULL,
    status TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    PRIMARY KEY (account, bar, symbol)
);
CREATE TABLE broker_orders (
    id INTEGER PRIMARY KEY,
    client_order_id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    bar TEXT NOT NULL,
    symbol TEXT NOT NULL,
    seq INTEGER NOT NULL,
    side TEXT NOT NULL,
    qty REAL NOT NULL,
    ref_price REAL NOT NULL,
    time_in_force TEXT NOT NULL,
    status TEXT NOT NULL,
    broker_id TEXT,
    filled_qty REAL NOT NULL DEFAULT 0,
    avg_price REAL,
    reject_code TEXT,
    reject_message TEXT,
    intended_at TEXT NOT NULL,
    sent_at TEXT,
    updated_at TEXT NOT NULL,
    UNIQUE (account, bar, seq)
);
CREATE INDEX broker_orders_status ON broker_orders (account, status);
CREATE TABLE broker_fills (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES broker_orders (id),
    client_order_id TEXT NOT NULL,
    account TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty REAL NOT NULL,
    price REAL,
    time TEXT NOT NULL,
    session TEXT NOT NULL,
    cum_qty REAL NOT NULL,
    status TEXT NOT NULL,
    booked_at TEXT NOT NULL,
    UNIQUE (client_order_id, status, cum_qty)
);
CREATE TABLE reconciliations (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    bar TEXT NOT NULL,
    kind TEXT NOT NULL,
    symbol TEXT NOT NULL,
    ledger REAL NOT NULL,
    broker REAL NOT NULL,
    diff REAL NOT NULL,
    cause TEXT NOT NULL,
    action TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE UNIQUE INDEX reconciliations_once ON reconciliations (account, bar, kind, symbol, action)
    WHERE action != 'adopted';
"""

ORDER_FIELDS = ("status", "broker_id", "filled_qty", "avg_price", "reject_code", "reject_message",
                "sent_at")


def utc_now() -> str:
    """The wall clock, ISO 8601 in UTC (bookkeeping times only)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _refuse_links(path: Path) -> None:
    for p in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        if p.is_symlink():
            raise UserError(f"{p} is a symbolic link: refusing to use it")


class BrokerStore:
    """Reads and writes of ``broker.sqlite`` (writes commit at once, or inside :meth:`transaction`)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    def __repr__(self) -> str:
        return f"BrokerStore({str(self.path)!r})"

    @classmethod
    def open(cls, path: str | Path) -> BrokerStore:
        """Open ``path``, creating it with the schema when missing; refuse any other SQLite file."""
        path = Path(path)
        _refuse_links(path)
        existed = path.exists()
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            app = conn.execute("PRAGMA application_id").fetchone()[0]
            if not existed or (app == 0 and not conn.execute(
                    "SELECT 1 FROM sqlite_master LIMIT 1").fetchone()):
                conn.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nPRAGMA application_id = {APP_ID};\n"
                                   f"PRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;")
            elif app != APP_ID:
                raise UserError(f"{path} is not an lstmknn broker store: refusing to use it")
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[BrokerStore]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any error)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(sql, tuple(args)).fetchall()]

    def table(self, name: str) -> list[dict[str, Any]]:
        """All rows of one of the store's tables (``name`` is a trusted identifier)."""
        order = {"broker_meta": "account", "broker_decisions": "account, bar, symbol"}
        return self._all(f"SELECT * FROM {name} ORDER BY {order.get(name, 'id')}")

    # --- meta

    def meta(self, account: str) -> dict[str, Any] | None:
        rows = self._all("SELECT * FROM broker_meta WHERE account = ?", (account,))
        return rows[0] if rows else None

    def create_meta(self, account: str, broker: str, endpoint: str, account_number: str,
                    nonce: str, opening_cash: float, opened_at: str) -> None:
        """Write the account's broker identity once (a second call raises ``IntegrityError``)."""
        with self.transaction():
            self.conn.execute(
                "INSERT INTO broker_meta (account, broker, endpoint, account_number, nonce, "
                "opening_cash, opened_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (account, broker, endpoint, account_number, nonce, opening_cash, opened_at,
                 utc_now()))

    # --- decisions and intents

    def decided(self, account: str, bar: str) -> bool:
        return self.conn.execute("SELECT 1 FROM broker_decisions WHERE account = ? AND bar = ?",
                                 (account, bar)).fetchone() is not None

    def decisions(self, account: str, bar: str | None = None) -> list[dict[str, Any]]:
        if bar is None:
            return self._all("SELECT * FROM broker_decisions WHERE account = ? "
                             "ORDER BY bar, symbol", (account,))
        return self._all("SELECT * FROM broker_decisions WHERE account = ? AND bar = ? "
                         "ORDER BY symbol", (account, bar))

    def record_decision(self, account: str, bar: str, decisions: Iterable[Mapping[str, Any]],
                        orders: Iterable[Mapping[str, Any]]) -> None:
        """Commit a bar's decisions and its orders as ``intended``, in one transaction."""
        now = utc_now()
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO broker_decisions (account, bar, symbol, target, ref_price, current, "
                "value, status, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(account, bar, d["symbol"], d["target"], d["ref_price"], d["current"],
                  d["value"], d["status"], now) for d in decisions])
            self.conn.executemany(
                "INSERT INTO broker_orders (client_order_id, account, bar, symbol, seq, side, qty, "
                "ref_price, time_in_force, status, intended_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'intended', ?, ?)",
                [(o["client_order_id"], account, bar, o["symbol"], o["seq"], o["side"], o["qty"],
                  o["ref_price"], o["time_in_force"], now, now) for o in orders])

    # --- orders

    def orders(self, account: str, statuses: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The account's orders (with one of ``statuses``), in decision order."""
        if statuses is None:
            return self._all("SELECT * FROM broker_orders WHERE account = ? ORDER BY bar, seq",
                             (account,))
        marks = ", ".join("?" * len(statuses))
        return self._all(f"SELECT * FROM broker_orders WHERE account = ? AND status IN ({marks}) "
                         "ORDER BY bar, seq", (account, *statuses))

    def open_orders(self, account: str) -> list[dict[str, Any]]:
        """Orders intended, or sent without a final outcome yet."""
        marks = ", ".join("?" * len(FINAL_STATUSES))
        return self._all(f"SELECT * FROM broker_orders WHERE account = ? AND status NOT IN "
                         f"({marks}) ORDER BY bar, seq", (account, *FINAL_STATUSES))

    def order(self, client_order_id: str) -> dict[str, Any] | None:
        rows = self._all("SELECT * FROM broker_orders WHERE client_order_id = ?",
                         (client_order_id,))
        return rows[0] if rows else None

    def broker_ids(self, account: str) -> set[str]:
        rows = self.conn.execute("SELECT broker_id FROM broker_orders WHERE account = ? AND "
                                 "broker_id IS NOT NULL", (account,))
        return {r[0] for r in rows}

    def book(self, client_order_id: str, fields: Mapping[str, Any],
             fills: Iterable[Mapping[str, Any]] = ()) -> None:
        """Update an order and add its new fill rows in one transaction (fills already booked
        are ignored: a fill row is unique per order, status and cumulative quantity)."""
        bad = set(fields) - set(ORDER_FIELDS)
        if bad:
            raise ValueError(f"not order fields: {sorted(bad)}")
        now = utc_now()
        with self.transaction():
            row = self.conn.execute("SELECT id, account, symbol, side FROM broker_orders "
                                    "WHERE client_order_id = ?", (client_order_id,)).fetchone()
            if row is None:
                raise KeyError(client_order_id)
            sets = ", ".join(f"{k} = ?" for k in fields)
            self.conn.execute(f"UPDATE broker_orders SET {sets}{', ' if sets else ''}"
                              "updated_at = ? WHERE client_order_id = ?",
                              (*fields.values(), now, client_order_id))
            self.conn.executemany(
                "INSERT OR IGNORE INTO broker_fills (order_id, client_order_id, account, symbol, "
                "side, qty, price, time, session, cum_qty, status, booked_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(row["id"], client_order_id, row["account"], row["symbol"], row["side"],
                  f["qty"], f["price"], f["time"], f["session"], f["cum_qty"], f["status"], now)
                 for f in fills])

    # --- fills and the book

    def fills(self, account: str, since: str | None = None) -> list[dict[str, Any]]:
        """Fill rows (of sessions on or after ``since``'s date), in booking order."""
        sql = ("SELECT f.*, o.bar, o.seq FROM broker_fills f JOIN broker_orders o "
               "ON o.id = f.order_id WHERE f.account = ?")
        if since is None:
            return self._all(sql + " ORDER BY f.id", (account,))
        return self._all(sql + " AND f.session >= ? ORDER BY f.id", (account, since[:10]))

    def book_positions(self, account: str) -> dict[str, float]:
        """Shares per symbol: signed executed fills plus adopted adjustments."""
        out: dict[str, float] = {}
        for sym, qty in self.conn.execute(
                "SELECT symbol, SUM(CASE side WHEN 'buy' THEN qty ELSE -qty END) FROM broker_fills "
                "WHERE account = ? AND price IS NOT NULL GROUP BY symbol", (account,)):
            out[sym] = float(qty)
        for sym, diff in self.conn.execute(
                "SELECT symbol, SUM(diff) FROM reconciliations WHERE account = ? AND "
                "kind = 'position' AND action = 'adopted' GROUP BY symbol", (account,)):
            out[sym] = out.get(sym, 0.0) + float(diff)
        return out

    def book_cash(self, account: str) -> float:
        """Opening cash minus signed fill notionals plus adopted cash adjustments."""
        meta = self.meta(account)
        if meta is None:
            raise KeyError(account)
        spent = self.conn.execute(
            "SELECT COALESCE(SUM(CASE side WHEN 'buy' THEN qty * price ELSE -qty * price END), 0) "
            "FROM broker_fills WHERE account = ? AND price IS NOT NULL", (account,)).fetchone()[0]
        adopted = self.conn.execute(
            "SELECT COALESCE(SUM(diff), 0) FROM reconciliations WHERE account = ? AND "
            "kind = 'cash' AND action = 'adopted'", (account,)).fetchone()[0]
        return float(meta["opening_cash"]) - float(spent) + float(adopted)

    # --- reconciliations

    def log_reconciliation(self, account: str, bar: str,
                           rows: Iterable[Mapping[str, Any]]) -> None:
        """Log differences found (``refused``/``reported`` once per bar; ``adopted`` always)."""
        now = utc_now()
        with self.transaction():
            self.conn.executemany(
                "INSERT OR IGNORE INTO reconciliations (account, bar, kind, symbol, ledger, "
                "broker, diff, cause, action, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(account, bar, r["kind"], r["symbol"], r["ledger"], r["broker"], r["diff"],
                  r["cause"], r["action"], now) for r in rows])

    def reconciliations(self, account: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM reconciliations WHERE account = ? ORDER BY id", (account,))
