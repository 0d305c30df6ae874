"""The SQLite ledger of a paper account, its folder and its lock.

One folder per account under the accounts root: ``ledger.sqlite`` (WAL mode),
``lock`` (``flock``-ed by whoever writes) and ``cache/`` (fold models). The
ledger is recognised by ``PRAGMA application_id``, ``PRAGMA user_version`` and
the ``meta`` table; any other file is refused, never overwritten or migrated.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import UserError

APP_ID = 0x4C4B4E50  # "LKNP"
APP_NAME = "lstmknn-paper"
SCHEMA_VERSION = 1
LEDGER_FILE = "ledger.sqlite"
LOCK_FILE = "lock"
DEFAULT_ROOT = "paper_accounts"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

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
    created_at TEXT NOT NULL
);
CREATE TABLE positions (
    symbol TEXT PRIMARY KEY,
    shares REAL NOT NULL,
    avg_price REAL NOT NULL
);
CREATE TABLE bars (
    pos INTEGER PRIMARY KEY,
    date TEXT NOT NULL UNIQUE,
    row_hash TEXT NOT NULL,
    close REAL NOT NULL,
    traded INTEGER NOT NULL
);
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
    UNIQUE (decided, seq)
);
CREATE INDEX orders_pending ON orders (status) WHERE status = 'pending';
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
    status TEXT NOT NULL
);
CREATE TABLE equity (
    date TEXT PRIMARY KEY,
    cash REAL NOT NULL,
    value REAL NOT NULL,
    ret REAL NOT NULL,
    positions TEXT NOT NULL
);
"""


def default_root() -> Path:
    """``$LSTMKNN_PAPER_ROOT`` or ``./paper_accounts``."""
    return Path(os.environ.get("LSTMKNN_PAPER_ROOT") or DEFAULT_ROOT)


def account_dir(root: str | Path | None, name: str) -> Path:
    """The folder of account ``name`` (validated: no path tricks, 1-64 safe characters)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UserError(f"invalid account name {name!r}: use 1-64 letters, digits, '_', '.', "
                        "'-', starting with a letter or digit")
    base = Path(root) if root is not None else default_root()
    path = base / name
    if path.resolve().parent != base.resolve():  # pragma: no cover - the regex forbids it
        raise UserError(f"invalid account name {name!r}")
    return path


@contextmanager
def account_lock(folder: Path, wait: float = 0.0) -> Iterator[None]:
    """Exclusive lock on the account (``flock``); UserError when busy after ``wait`` seconds."""
    path = folder / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
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


def _connect(path: Path, create: bool) -> sqlite3.Connection:
    mode = "rwc" if create else "rw"
    conn = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, isolation_level=None,
                           timeout=10.0)
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
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise UserError(f"{path} already exists; refusing to overwrite it") from None
    os.close(fd)
    conn = _connect(path, create=True)
    try:
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
    """UserError unless ``folder`` holds a ledger file."""
    if not (folder / LEDGER_FILE).is_file():
        raise UserError(f"no paper account at {folder} (create it with `lstmknn paper init`)")


def open_ledger(path: Path) -> Ledger:
    """Open an existing ledger, checking that it is one of ours and of a known schema."""
    require_account(path.parent)
    conn = _connect(path, create=False)
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id != APP_ID:
            raise UserError(f"{path} is not an lstmknn paper ledger (application_id {app_id}); "
                            "refusing to use it")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("application") != APP_NAME:
            raise UserError(f"{path} is not an lstmknn paper ledger (meta table); refusing to use it")
        if version != SCHEMA_VERSION or meta.get("schema_version") != str(SCHEMA_VERSION):
            raise UserError(f"{path}: ledger schema version {version} is not supported by this "
                            f"lstmknn (version {SCHEMA_VERSION}); refusing to use it")
        _pragmas(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise UserError(f"{path} is not a readable lstmknn paper ledger ({exc}); "
                        "refusing to use it") from None
    except BaseException:
        conn.close()
        raise
    return Ledger(conn, path)


class Ledger:
    """Reads and writes of one account's ledger (writes only inside :meth:`transaction`)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any error)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _all(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(sql, args).fetchall()]

    def account(self) -> dict[str, Any]:
        return dict(self.conn.execute("SELECT * FROM account WHERE id = 1").fetchone())

    def positions(self) -> dict[str, tuple[float, float]]:
        """``symbol -> (shares, avg_price)``."""
        rows = self.conn.execute("SELECT symbol, shares, avg_price FROM positions ORDER BY symbol")
        return {r[0]: (r[1], r[2]) for r in rows}

    def bars(self) -> list[tuple[int, str, str]]:
        """Processed bars as ``(pos, date, row_hash)`` in order."""
        return [tuple(r) for r in self.conn.execute("SELECT pos, date, row_hash FROM bars ORDER BY pos")]

    def is_trading(self) -> bool:
        """Whether the account has started (has marked an equity row)."""
        return self.conn.execute("SELECT 1 FROM equity LIMIT 1").fetchone() is not None

    def last_equity(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM equity ORDER BY date DESC LIMIT 1").fetchone()
        return dict(row) if row else None

    def pending_orders(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM orders WHERE status = 'pending' ORDER BY decided, seq")

    def last_signal(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT record FROM signals ORDER BY date DESC LIMIT 1").fetchone()
        return json.loads(row[0]) if row else None

    def signals(self, since: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT record FROM signals WHERE date >= ? ORDER BY date, symbol"
        return [json.loads(r[0]) for r in self.conn.execute(sql, (since or "",))]

    def table(self, name: str, order: str) -> list[dict[str, Any]]:
        """All rows of a ledger table (``name`` and ``order`` are trusted identifiers)."""
        return self._all(f"SELECT * FROM {name} ORDER BY {order}")

    def counts(self) -> dict[str, int]:
        out = {}
        for t in ("bars", "signals", "orders", "fills", "equity"):
            out[t] = int(self.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
        return out
