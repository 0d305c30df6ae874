"""The SQLite ledger of a paper account, its folder and its lock: every SQL statement lives here.

One folder per account under the accounts root: ``ledger.sqlite`` (WAL mode),
``lock`` (``flock``-ed by whoever writes), ``cache/`` (fold models) and
``report/``. The ledger is recognised by ``PRAGMA application_id``,
``PRAGMA user_version`` and the ``meta`` table; any other file is refused,
never overwritten. Older ledgers are upgraded in place, in one transaction:
version 1 -> 2 adds the ``revisions`` table; 2 -> 3 (universe accounts) adds the
account's ``sources``, ``symbols`` and ``data_options`` and a ``symbol`` column to
``bars`` (one row per symbol and processed bar), filled from the one symbol the
account traded; 3 -> 4 (broker accounts) adds the account's ``broker`` (``'local'``
for every older account), each order's broker record (client order id, broker id,
rejection code and message, average fill price) and the modelled next-open fill
(``model_price`` on orders and fills) beside the broker's fill (``broker_time``).

A broker account (``broker = 'alpaca'``) also holds ``broker.sqlite`` (and its
``-wal``/``-shm``/``-journal``), the broker's own records
(:mod:`engine.paper.broker_store`); the ledger mirrors them.

Nothing in an account folder may be a symbolic link (it would let writes, or
another account's ledger, escape the folder), nor the account folder itself;
the accounts root may be one only when the caller names it explicitly.
SQLite's "database is locked" and "database or disk is full" become one-line
:class:`~engine.errors.UserError`\\ s that say what to do; the transaction in
flight is rolled back, so the ledger stays as it was after the last whole bar.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from lstmknn.engine.errors import UserError
from lstmknn.engine.paper.broker_store import BROKER_FILE

APP_ID = 0x4C4B4E50  # "LKNP"
APP_NAME = "lstmknn-paper"
SCHEMA_VERSION = 4
LEDGER_FILE = "ledger.sqlite"
LOCK_FILE = "lock"
CACHE_DIR = "cache"
REPORT_DIR = "report"
DEFAULT_ROOT = "paper_accounts"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # used with fullmatch
# Files and folders of an account that must never be symbolic links.
ACCOUNT_ENTRIES = (LEDGER_FILE, f"{LEDGER_FILE}-wal", f"{LEDGER_FILE}-shm", f"{LEDGER_FILE}-journal",
                   BROKER_FILE, f"{BROKER_FILE}-wal", f"{BROKER_FILE}-shm",
                   f"{BROKER_FILE}-journal", LOCK_FILE, CACHE_DIR, REPORT_DIR)
BUSY_TIMEOUT = 10.0  # seconds SQLite waits for another connection's write lock

REVISIONS_TABLE = """
CREATE TABLE revisions (
    id INTEGER PRIMARY KEY,
    accepted_at TEXT NOT NULL,
    from_date TEXT NOT NULL,
    through_date TEXT NOT NULL,
    rows_changed INTEGER NOT NULL,
    rows_before INTEGER NOT NULL,
    rows_after INTEGER NOT NULL,
    old_hash TEXT NOT NULL,
    new_hash TEXT NOT NULL,
    old_bars TEXT NOT NULL
)"""

# One row per symbol and processed bar: ``pos`` numbers the account's bars (the union of
# its symbols' timestamps), ``row_hash`` is the symbol's OHLCV hash at that bar.
BARS_TABLE = """
CREATE TABLE bars (
    pos INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    date TEXT NOT NULL,
    row_hash TEXT NOT NULL,
    close REAL NOT NULL,
    traded INTEGER NOT NULL,
    PRIMARY KEY (pos, symbol)
)"""

# A broker account's orders and fills mirror its broker store: one row per client order id and
# per broker fill row (version 4 columns; NULL on a local account).
ORDER_BROKER_COLUMNS = {"client_order_id": "TEXT", "broker_id": "TEXT", "reject_code": "TEXT",
                        "reject_message": "TEXT", "avg_price": "REAL", "model_price": "REAL",
                        "model_date": "TEXT"}
FILL_BROKER_COLUMNS = {"broker_time": "TEXT", "model_price": "REAL", "broker_fill_id": "INTEGER"}
ORDERS_BROKER_INDEX = ("CREATE UNIQUE INDEX orders_client_id ON orders (client_order_id) "
                       "WHERE client_order_id IS NOT NULL")
FILLS_BROKER_INDEX = ("CREATE UNIQUE INDEX fills_broker ON fills (broker_fill_id) "
                      "WHERE broker_fill_id IS NOT NULL")

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE account (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    symbol TEXT NOT NULL,
    data_source TEXT NOT NULL,
    config_toml TEXT NOT NULL,
    config_json TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    initial_cash REAL NOT NULL,
    cash REAL NOT NULL,
    start_date TEXT,
    cache_dir TEXT NOT NULL,
    last_pos INTEGER NOT NULL DEFAULT -1,
    last_bar TEXT,
    created_at TEXT NOT NULL,
    sources TEXT NOT NULL DEFAULT '[]',
    symbols TEXT NOT NULL DEFAULT '[]',
    data_options TEXT NOT NULL DEFAULT '{}',
    broker TEXT NOT NULL DEFAULT 'local'
);
CREATE TABLE positions (
    symbol TEXT PRIMARY KEY,
    shares REAL NOT NULL,
    avg_price REAL NOT NULL
);
""" + BARS_TABLE + """;
CREATE TABLE signals (
    date TEXT NOT NULL,
    symbol TEXT NOT NULL,
    fold INTEGER NOT NULL,
    lstm REAL, lstm_conf REAL, knn REAL, knn_conf REAL,
    regime TEXT NOT NULL, alpha REAL, fused REAL, fusion_used TEXT NOT NULL,
    target REAL NOT NULL,
    train_start TEXT NOT NULL, train_end TEXT NOT NULL,
    config_hash TEXT NOT NULL, data_hash TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (date, symbol)
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    decided TEXT NOT NULL,
    seq INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    size REAL NOT NULL,
    ref_price REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    filled_size REAL NOT NULL DEFAULT 0,
    executed_on TEXT,
    client_order_id TEXT,
    broker_id TEXT,
    reject_code TEXT,
    reject_message TEXT,
    avg_price REAL,
    model_price REAL,
    model_date TEXT,
    UNIQUE (decided, seq)
);
CREATE INDEX orders_pending ON orders (status) WHERE status = 'pending';
""" + ORDERS_BROKER_INDEX + """;
CREATE TABLE fills (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (id),
    date TEXT NOT NULL,
    seq INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    size REAL NOT NULL,
    price REAL,
    commission REAL NOT NULL,
    status TEXT NOT NULL,
    broker_time TEXT,
    model_price REAL,
    broker_fill_id INTEGER
);
""" + FILLS_BROKER_INDEX + """;
CREATE TABLE equity (
    date TEXT PRIMARY KEY,
    cash REAL NOT NULL,
    value REAL NOT NULL,
    ret REAL NOT NULL,
    positions TEXT NOT NULL
);
""" + REVISIONS_TABLE + ";\n"

# Tables a snapshot compares (name -> order), and the trading state of the account row.
TRADING_TABLES = {"positions": "symbol", "bars": "pos, symbol", "signals": "date, symbol",
                  "orders": "id",
                  "fills": "id", "equity": "date"}
SIGNAL_COLUMNS = ["asof", "symbol", "fold", "lstm", "lstm_conf", "knn", "knn_conf", "regime",
                  "alpha", "fused", "fusion_used", "target", "train_start", "train_end",
                  "config_hash", "data_hash"]


class Bar(NamedTuple):
    """A symbol's processed bar: ledger position, timestamp text, OHLCV hash, symbol."""

    pos: int
    date: str
    row_hash: str
    symbol: str


# ----------------------------------------------------------------------------- folders

def default_root() -> Path:
    """``$LSTMKNN_PAPER_ROOT`` or ``./paper_accounts``."""
    return Path(os.environ.get("LSTMKNN_PAPER_ROOT") or DEFAULT_ROOT)


def _refuse_link(path: Path, what: str) -> None:
    if path.is_symlink():
        raise UserError(f"{path}: {what} is a symbolic link; refusing to follow it out of the "
                        "account folder (replace it with a real file or folder)")


def check_account_folder(folder: Path) -> None:
    """UserError when the account folder or anything in it that lstmknn opens is a symlink."""
    _refuse_link(folder, "the account folder")
    for entry in ACCOUNT_ENTRIES:
        _refuse_link(folder / entry, f"the account's {entry!r}")


def account_dir(root: str | Path | None, name: str) -> Path:
    """The folder of account ``name`` (1-64 safe characters, no path tricks, no symlinks).

    ``root`` None means :func:`default_root`; the default ``./paper_accounts`` must
    not be a symbolic link (a root named explicitly, by argument or
    ``$LSTMKNN_PAPER_ROOT``, may be).
    """
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise UserError(f"invalid account name {name!r}: use 1-64 letters, digits, '_', '.', "
                        "'-', starting with a letter or digit")
    base = Path(root) if root is not None else default_root()
    if root is None and not os.environ.get("LSTMKNN_PAPER_ROOT") and base.is_symlink():
        raise UserError(f"{base}: the default accounts folder is a symbolic link; pass it "
                        "explicitly with --root to use it")
    path = base / name
    check_account_folder(path)
    return path


@contextmanager
def account_lock(folder: Path, wait: float = 0.0) -> Iterator[None]:
    """Exclusive lock on the account (``flock``); UserError when busy after ``wait`` seconds."""
    path = folder / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if path.is_symlink():
            _refuse_link(path, "the account's 'lock'")
        raise UserError(f"{folder}: cannot open the account lock ({exc.strerror})") from None
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise UserError(
                        f"account {folder.name} is busy: another lstmknn paper process holds "
                        f"{path} (retry later or pass --wait SECONDS)") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# ----------------------------------------------------------------------------- SQLite errors

def _user_error(exc: sqlite3.OperationalError, path: Path) -> UserError | None:
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return UserError(
            f"{path}: the ledger is locked by another program (an sqlite3 shell, a backup or a "
            f"viewer holding a write lock); close it and run the command again - nothing was "
            f"changed by this run")
    if "disk is full" in text or "disk i/o error" in text:
        return UserError(
            f"{path}: the disk is full ({exc}); free some space and run the command again - the "
            f"ledger is intact up to the last completed bar and resumes from there")
    return None


@contextmanager
def sqlite_errors(path: Path) -> Iterator[None]:
    """Turn a locked ledger or a full disk into a one-line :class:`UserError`."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        err = _user_error(exc, path)
        if err is None:
            raise
        raise err from None


# ----------------------------------------------------------------------------- open/create

def _connect(path: Path, create: bool) -> sqlite3.Connection:
    _refuse_link(path, "the ledger")
    mode = "rwc" if create else "rw"
    conn = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, isolation_level=None,
                           timeout=BUSY_TIMEOUT)
    conn.row_factory = sqlite3.Row
    return conn


def _pragmas(conn: sqlite3.Connection) -> None:
    """WAL + ``synchronous=NORMAL``: every commit is atomic and survives a killed process; an
    OS crash may only lose the last commits, which the next step replays bit-identically.
    (A broker that sends orders outside the ledger should use ``FULL``.)"""
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")


def create_ledger(path: Path, account: dict[str, Any]) -> Ledger:
    """Create a new ledger file; refuses to touch an existing file of any kind."""
    _refuse_link(path, "the ledger")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        raise UserError(f"{path} already exists; refusing to overwrite it") from None
    os.close(fd)
    conn = _connect(path, create=True)
    try:
        with sqlite_errors(path):
            conn.execute("PRAGMA journal_mode = WAL")
            _pragmas(conn)
            conn.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APP_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("application", APP_NAME), ("schema_version", str(SCHEMA_VERSION)),
                ("created_at", account["created_at"])])
            cols = ", ".join(account)
            marks = ", ".join("?" for _ in account)
            conn.execute(f"INSERT INTO account (id, {cols}) VALUES (1, {marks})",
                         list(account.values()))
            conn.execute("COMMIT")
    except BaseException:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        raise
    return Ledger(conn, path)


def require_account(folder: Path) -> None:
    """UserError unless ``folder`` holds a ledger file (and no symlink)."""
    check_account_folder(folder)
    if not (folder / LEDGER_FILE).is_file():
        raise UserError(f"no paper account at {folder} (create it with `lstmknn paper init`)")


def _upgrade_v1(conn: sqlite3.Connection) -> None:
    """Version 1 -> 2: add the ``revisions`` table (nothing else changes)."""
    conn.execute(REVISIONS_TABLE)


def _upgrade_v2(conn: sqlite3.Connection) -> None:
    """Version 2 -> 3: the account's sources, symbols and reading options, and ``bars`` with a
    ``symbol`` column (a version-2 account traded one symbol from one source)."""
    for column, default in (("sources", "'[]'"), ("symbols", "'[]'"), ("data_options", "'{}'")):
        conn.execute(f"ALTER TABLE account ADD COLUMN {column} TEXT NOT NULL DEFAULT {default}")
    symbol, source = conn.execute("SELECT symbol, data_source FROM account WHERE id = 1").fetchone()
    conn.execute("UPDATE account SET sources = ?, symbols = ? WHERE id = 1",
                 (json.dumps([source]), json.dumps([symbol])))
    conn.execute("ALTER TABLE bars RENAME TO bars_v2")
    conn.execute(BARS_TABLE)
    conn.execute("INSERT INTO bars (pos, symbol, date, row_hash, close, traded) "
                 "SELECT pos, ?, date, row_hash, close, traded FROM bars_v2", (symbol,))
    conn.execute("DROP TABLE bars_v2")


def _upgrade_v3(conn: sqlite3.Connection) -> None:
    """Version 3 -> 4: the account's broker (``'local'``), each order's broker record and the
    modelled fill beside the broker's (NULL on a local account's rows)."""
    conn.execute("ALTER TABLE account ADD COLUMN broker TEXT NOT NULL DEFAULT 'local'")
    for table, columns in (("orders", ORDER_BROKER_COLUMNS), ("fills", FILL_BROKER_COLUMNS)):
        for column, kind in columns.items():
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    conn.execute(ORDERS_BROKER_INDEX)
    conn.execute(FILLS_BROKER_INDEX)


UPGRADES = {1: _upgrade_v1, 2: _upgrade_v2, 3: _upgrade_v3}  # version -> step to the next version


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring an older ledger to :data:`SCHEMA_VERSION`, all steps in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        while version < SCHEMA_VERSION:
            UPGRADES[version](conn)
            version += 1
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
            conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def open_ledger(path: Path) -> Ledger:
    """Open an existing ledger, checking that it is one of ours and of a known schema."""
    require_account(path.parent)
    conn = _connect(path, create=False)
    try:
        with sqlite_errors(path):
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if app_id != APP_ID:
                raise UserError(f"{path} is not an lstmknn paper ledger (application_id {app_id});"
                                " refusing to use it")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("application") != APP_NAME:
                raise UserError(f"{path} is not an lstmknn paper ledger (meta table); refusing "
                                "to use it")
            if not 1 <= version <= SCHEMA_VERSION or meta.get("schema_version") != str(version):
                raise UserError(f"{path}: ledger schema version {version} is not supported by "
                                f"this lstmknn (version {SCHEMA_VERSION}); refusing to use it")
            _pragmas(conn)
            if version < SCHEMA_VERSION:
                _upgrade(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if isinstance(exc, sqlite3.OperationalError) and _user_error(exc, path):
            raise _user_error(exc, path) from None
        raise UserError(f"{path} is not a readable lstmknn paper ledger ({exc}); "
                        "refusing to use it") from None
    except BaseException:
        conn.close()
        raise
    return Ledger(conn, path)


def snapshot(path: Path, integrity: bool = False) -> dict[str, Any]:
    """Every trading table of the ledger at ``path`` (see :meth:`Ledger.snapshot`)."""
    ledger = open_ledger(path)
    try:
        return ledger.snapshot(integrity)
    finally:
        ledger.close()


# ----------------------------------------------------------------------------- the ledger

class Ledger:
    """Reads and writes of one account's ledger (writes only inside :meth:`transaction`)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Ledger]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error; a locked ledger or a
        full disk raises a one-line :class:`UserError`."""
        with sqlite_errors(self.path):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            try:
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(sql, tuple(args)).fetchall()]

    # --- identity (for checks and tests)

    def describe(self) -> dict[str, Any]:
        """Journal mode, application id, schema version, meta and table names."""
        c = self.conn
        return {"journal_mode": c.execute("PRAGMA journal_mode").fetchone()[0],
                "application_id": c.execute("PRAGMA application_id").fetchone()[0],
                "user_version": c.execute("PRAGMA user_version").fetchone()[0],
                "meta": dict(c.execute("SELECT key, value FROM meta").fetchall()),
                "tables": sorted(r[0] for r in c.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"))}

    def snapshot(self, integrity: bool = False) -> dict[str, Any]:
        """Every trading table (and the account's trading state), for exact comparisons."""
        out: dict[str, Any] = {t: self.table(t, o) for t, o in TRADING_TABLES.items()}
        out["account"] = dict(self.conn.execute(
            "SELECT cash, last_pos, last_bar FROM account WHERE id = 1").fetchone())
        if integrity:
            out["integrity"] = self.conn.execute("PRAGMA integrity_check").fetchone()[0]
        return out

    def table(self, name: str, order: str) -> list[dict[str, Any]]:
        """All rows of a ledger table (``name`` and ``order`` are trusted identifiers)."""
        return self._all(f"SELECT * FROM {name} ORDER BY {order}")

    def counts(self) -> dict[str, int]:
        out = {}
        for t in ("bars", "signals", "orders", "fills", "equity", "revisions"):
            out[t] = int(self.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
        return out

    # --- account

    def account(self) -> dict[str, Any]:
        return dict(self.conn.execute("SELECT * FROM account WHERE id = 1").fetchone())

    def set_cash(self, cash: float) -> None:
        self.conn.execute("UPDATE account SET cash = ? WHERE id = 1", (cash,))

    # --- positions

    def positions(self) -> dict[str, tuple[float, float]]:
        """``symbol -> (shares, avg_price)``."""
        rows = self.conn.execute("SELECT symbol, shares, avg_price FROM positions ORDER BY symbol")
        return {r[0]: (r[1], r[2]) for r in rows}

    def save_positions(self, held: Mapping[str, tuple[float, float]]) -> None:
        """Upsert ``symbol -> (shares, avg_price)``."""
        self.conn.executemany(
            "INSERT INTO positions (symbol, shares, avg_price) VALUES (?, ?, ?) "
            "ON CONFLICT (symbol) DO UPDATE SET shares = excluded.shares, "
            "avg_price = excluded.avg_price",
            [(s, q, p) for s, (q, p) in held.items()])

    # --- bars

    def bars(self) -> list[Bar]:
        """Processed bars of every symbol, in order (by position, then symbol)."""
        return [Bar(*r) for r in self.conn.execute(
            "SELECT pos, date, row_hash, symbol FROM bars ORDER BY pos, symbol")]

    def bar_rows(self, since_pos: int = 0) -> list[dict[str, Any]]:
        """Full rows of the processed bars from ledger position ``since_pos`` on."""
        return self._all("SELECT * FROM bars WHERE pos >= ? ORDER BY pos, symbol", (since_pos,))

    def add_bars(self, rows: Iterable[tuple[str, str, str, float, bool]]) -> None:
        """Append processed bars ``(date, symbol, row_hash, close, traded)`` (ordered by date;
        the rows of one date share a position) and move ``last_pos`` / ``last_bar``."""
        rows = list(rows)
        if not rows:
            return
        pos = int(self.account()["last_pos"])
        out, date = [], None
        for d, sym, h, c, t in rows:
            if d != date:
                pos, date = pos + 1, d
            out.append((pos, sym, d, h, c, int(t)))
        self.conn.executemany(
            "INSERT INTO bars (pos, symbol, date, row_hash, close, traded) VALUES (?, ?, ?, ?, ?, ?)",
            out)
        self.conn.execute("UPDATE account SET last_pos = ?, last_bar = ? WHERE id = 1",
                          (pos, date))

    def replace_bars(self, from_pos: int,
                     rows: Sequence[tuple[str, str, str, float, bool]]) -> None:
        """Replace the processed bars from ``from_pos`` on with ``rows`` (accepted revisions)."""
        self.conn.execute("DELETE FROM bars WHERE pos >= ?", (from_pos,))
        self.conn.execute("UPDATE account SET last_pos = ? WHERE id = 1", (from_pos - 1,))
        self.add_bars(rows)

    def last_closes(self) -> dict[str, float]:
        """Each symbol's close at its last processed bar."""
        return {s: c for s, (_, c) in self.last_bars().items()}

    def last_bars(self) -> dict[str, tuple[str, float]]:
        """Each symbol's last processed bar: ``symbol -> (date, close)``."""
        rows = self.conn.execute("SELECT symbol, date, close, MAX(pos) FROM bars GROUP BY symbol")
        return {r[0]: (r[1], r[2]) for r in rows}

    # --- equity

    def is_trading(self) -> bool:
        """Whether the account has started (has marked an equity row)."""
        return self.conn.execute("SELECT 1 FROM equity LIMIT 1").fetchone() is not None

    def equity_dates(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT date FROM equity")}

    def last_equity(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM equity ORDER BY date DESC LIMIT 1").fetchone()
        return dict(row) if row else None

    def first_equity_date(self) -> str | None:
        row = self.conn.execute("SELECT date FROM equity ORDER BY date LIMIT 1").fetchone()
        return row[0] if row else None

    def add_equity(self, date: str, cash: float, value: float, ret: float,
                   positions: Mapping[str, float]) -> None:
        self.conn.execute("INSERT INTO equity (date, cash, value, ret, positions) "
                          "VALUES (?, ?, ?, ?, ?)",
                          (date, cash, value, ret, json.dumps(dict(positions), sort_keys=True)))

    # --- orders and fills

    def pending_orders(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM orders WHERE status = 'pending' ORDER BY decided, seq")

    def add_order(self, decided: str, seq: int, symbol: str, size: float, ref_price: float) -> int:
        cur = self.conn.execute("INSERT INTO orders (decided, seq, symbol, size, ref_price) "
                                "VALUES (?, ?, ?, ?, ?)", (decided, seq, symbol, size, ref_price))
        return int(cur.lastrowid)

    def finish_order(self, order_id: int, status: str, filled_size: float, executed_on: str) -> None:
        self.conn.execute("UPDATE orders SET status = ?, filled_size = ?, executed_on = ? "
                          "WHERE id = ?", (status, filled_size, executed_on, order_id))

    def add_fills(self, rows: Iterable[Sequence[Any]]) -> None:
        """Fill reports ``(order_id, date, seq, symbol, side, size, price, commission, status)``."""
        self.conn.executemany(
            "INSERT INTO fills (order_id, date, seq, symbol, side, size, price, commission, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [tuple(r) for r in rows])

    def fills(self) -> list[tuple]:
        """Every fill report, in booking order (fields as in :meth:`add_fills`)."""
        return [tuple(r) for r in self.conn.execute(
            "SELECT order_id, date, seq, symbol, side, size, price, commission, status FROM fills "
            "ORDER BY id")]

    # --- a broker account's mirror of its broker store

    def orders(self) -> list[dict[str, Any]]:
        """Every order, in decision order."""
        return self._all("SELECT * FROM orders ORDER BY decided, seq")

    def mirror_orders(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Insert or update a broker's orders (keyed, as the broker store keys them, by bar and
        sequence): ``decided, seq, symbol, size, ref_price, status, filled_size, executed_on,
        client_order_id, broker_id, reject_code, reject_message, avg_price``."""
        cols = ["decided", "seq", "symbol", "size", "ref_price", "status", "filled_size",
                "executed_on", "client_order_id", "broker_id", "reject_code", "reject_message",
                "avg_price"]
        changing = cols[5:]
        self.conn.executemany(
            f"INSERT INTO orders ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
            "ON CONFLICT (decided, seq) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in changing),
            [[r[c] for c in cols] for r in rows])

    def unpriced_orders(self, before: str) -> list[dict[str, Any]]:
        """Broker orders decided before bar ``before`` without a modelled fill yet."""
        return self._all("SELECT * FROM orders WHERE client_order_id IS NOT NULL AND "
                         "model_date IS NULL AND status != 'missed' AND decided < ? ORDER BY id",
                         (before,))

    def set_model_price(self, order_id: int, date: str, price: float | None) -> None:
        """The fill the backtest's model gives an order at the open of ``date`` (None: the
        model fills nothing there), on the order and its executed fills."""
        self.conn.execute("UPDATE orders SET model_date = ?, model_price = ? WHERE id = ?",
                          (date, price, order_id))
        self.conn.execute("UPDATE fills SET model_price = ? WHERE order_id = ? AND price IS NOT "
                          "NULL", (price, order_id))

    def mirror_fills(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add a broker's fill rows not mirrored yet (keyed by ``broker_fill_id``): ``client_order_id,
        date, seq, symbol, side, size, price, broker_time, status, broker_fill_id``; commission 0,
        the order's modelled price beside an executed fill."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO fills (order_id, date, seq, symbol, side, size, price, "
            "commission, status, broker_time, model_price, broker_fill_id) SELECT o.id, ?, ?, ?, "
            "?, ?, ?, 0.0, ?, ?, CASE WHEN ? IS NULL THEN NULL ELSE o.model_price END, ? "
            "FROM orders o WHERE o.client_order_id = ?",
            [(r["date"], r["seq"], r["symbol"], r["side"], r["size"], r["price"], r["status"],
              r["broker_time"], r["price"], r["broker_fill_id"], r["client_order_id"])
             for r in rows])

    # --- signals

    def add_signal(self, rec: Mapping[str, Any]) -> None:
        """Record one signal (a :func:`engine.asof.signal_record`)."""
        self.conn.execute(
            "INSERT INTO signals (date, symbol, fold, lstm, lstm_conf, knn, knn_conf, regime, "
            "alpha, fused, fusion_used, target, train_start, train_end, config_hash, data_hash, "
            "record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [rec.get(c) for c in SIGNAL_COLUMNS] + [json.dumps(dict(rec))])

    def last_signal(self) -> dict[str, Any] | None:
        """The latest signal record (of the last symbol by name on that bar)."""
        row = self.conn.execute(
            "SELECT record FROM signals ORDER BY date DESC, symbol DESC LIMIT 1").fetchone()
        return json.loads(row[0]) if row else None

    def last_signals(self) -> dict[str, dict[str, Any]]:
        """Each symbol's latest signal record."""
        rows = self.conn.execute("SELECT symbol, record, MAX(date) FROM signals GROUP BY symbol")
        return {r[0]: json.loads(r[1]) for r in rows}

    def signal_targets(self) -> list[tuple[str, str, float]]:
        """``(date, symbol, target)`` of every recorded signal, oldest first."""
        return [tuple(r) for r in self.conn.execute(
            "SELECT date, symbol, target FROM signals ORDER BY date, symbol")]

    def signals(self) -> list[dict[str, Any]]:
        """Every signal record, oldest first."""
        sql = "SELECT record FROM signals ORDER BY date, symbol"
        return [json.loads(r[0]) for r in self.conn.execute(sql)]

    # --- revisions

    def add_revision(self, rev: Mapping[str, Any]) -> None:
        """Log accepted revised history (columns of the ``revisions`` table)."""
        cols = ["accepted_at", "from_date", "through_date", "rows_changed", "rows_before",
                "rows_after", "old_hash", "new_hash", "old_bars"]
        self.conn.execute(f"INSERT INTO revisions ({', '.join(cols)}) VALUES "
                          f"({', '.join('?' for _ in cols)})", [rev[c] for c in cols])

    def revisions(self) -> list[dict[str, Any]]:
        return self.table("revisions", "id")
