"""The paper ledger: account names, schema identity, refusal of foreign files and symlinks, the
lock, and SQLite's locked/full errors as one-line errors with the ledger left correct."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from lstmknn.engine.cli import main
from lstmknn.engine.config import from_dict
from lstmknn.engine.errors import UserError
from lstmknn.engine.paper import step, store
from lstmknn.engine.paper.accounts import init_account
from lstmknn.engine.paper.store import (
    APP_ID,
    APP_NAME,
    FILL_BROKER_COLUMNS,
    LEDGER_FILE,
    ORDER_BROKER_COLUMNS,
    SCHEMA_VERSION,
    account_dir,
    account_lock,
    default_root,
    open_ledger,
    snapshot,
)
from tests.helpers import SMALL, write_config


@pytest.fixture
def root(tmp_path):
    return tmp_path / "accounts"


def cfg(**execution):
    return from_dict({**SMALL, "execution": execution})


@pytest.fixture
def ledger_path(root, small_csv):
    init_account(root, "acct", str(small_csv), cfg(cash=25_000))
    return root / "acct" / LEDGER_FILE


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "-x", "a b", "x" * 65, "é", "a\0",
                                  "acct\n", "acct\r", "\nacct"])
def test_unsafe_account_names_are_refused(root, name):
    with pytest.raises(UserError, match="invalid account name"):
        account_dir(root, name)


@pytest.mark.parametrize("name", ["a", "Paper-1", "spy_2024.v2", "9" * 64])
def test_safe_account_names_map_to_a_folder_directly_under_the_root(root, name):
    assert account_dir(root, name) == root / name


def test_the_root_defaults_to_the_environment_variable_or_paper_accounts(monkeypatch, tmp_path):
    monkeypatch.delenv("LSTMKNN_PAPER_ROOT", raising=False)
    assert str(default_root()) == "paper_accounts"
    monkeypatch.setenv("LSTMKNN_PAPER_ROOT", str(tmp_path))
    assert default_root() == tmp_path


def test_init_writes_a_wal_ledger_marked_with_application_id_version_and_meta(ledger_path):
    ledger = open_ledger(ledger_path)
    try:
        info = ledger.describe()
    finally:
        ledger.close()
    assert info["journal_mode"] == "wal" and info["application_id"] == APP_ID
    assert info["user_version"] == SCHEMA_VERSION
    meta = info["meta"]
    assert meta["application"] == APP_NAME and meta["schema_version"] == str(SCHEMA_VERSION)
    assert {"meta", "account", "positions", "bars", "signals", "orders", "fills", "equity",
            "revisions"} <= set(info["tables"])


def test_the_account_row_keeps_config_data_source_and_cash(ledger_path, small_csv):
    ledger = open_ledger(ledger_path)
    try:
        acct = ledger.account()
    finally:
        ledger.close()
    assert acct["cash"] == acct["initial_cash"] == 25_000
    assert acct["data_source"] == str(small_csv.resolve())
    assert '"cash": 25000.0' in acct["config_json"] and acct["last_pos"] == -1


def test_init_refuses_an_existing_account_and_leaves_it_untouched(root, ledger_path, small_csv):
    before = ledger_path.read_bytes()
    with pytest.raises(UserError, match="already exists"):
        init_account(root, "acct", str(small_csv), cfg(cash=1))
    assert ledger_path.read_bytes() == before


@pytest.mark.parametrize("kind", ["foreign-sqlite", "garbage", "empty"])
def test_a_foreign_or_corrupt_ledger_file_is_refused_and_never_overwritten(root, kind, capsys):
    folder = root / "acct"
    folder.mkdir(parents=True)
    path = folder / LEDGER_FILE
    if kind == "foreign-sqlite":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE account (x)")
        conn.commit()
        conn.close()
    elif kind == "garbage":
        path.write_bytes(b"not a database at all\n" * 300)
    else:
        path.touch()
    before = path.read_bytes()
    for cmd in (["status"], ["step"], ["report"]):
        assert main(["paper", *cmd, "--account", "acct", "--root", str(root)]) == 2
        err = capsys.readouterr().err
        assert "not" in err and "lstmknn paper ledger" in err and "Traceback" not in err
    with pytest.raises(UserError):
        init_account(root, "acct", "sp500", cfg())
    assert path.read_bytes() == before


def test_a_ledger_of_another_schema_version_is_refused(ledger_path):
    conn = sqlite3.connect(ledger_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(UserError, match="schema version"):
        open_ledger(ledger_path)


@pytest.mark.parametrize("cmd", ["status", "step", "report", "signals"])
def test_a_missing_account_is_a_one_line_error(root, capsys, cmd):
    assert main(["paper", cmd, "--account", "nope", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "no paper account" in err and len(err.strip().splitlines()) == 1
    assert not (root / "nope").exists()


def test_a_failed_transaction_rolls_back_completely(ledger_path):
    ledger = open_ledger(ledger_path)
    try:
        with pytest.raises(RuntimeError), ledger.transaction():
            ledger.set_cash(1)
            raise RuntimeError("boom")
        assert ledger.account()["cash"] == 25_000
    finally:
        ledger.close()


def test_the_account_lock_is_exclusive_and_reports_busy(tmp_path):
    with account_lock(tmp_path), pytest.raises(UserError, match="busy"), account_lock(tmp_path):
        pass
    with account_lock(tmp_path):  # released again
        pass


def test_waiting_for_the_lock_succeeds_once_the_holder_lets_go(tmp_path):
    held = threading.Event()

    def holder():
        with account_lock(tmp_path):
            held.set()
            time.sleep(0.3)

    t = threading.Thread(target=holder)
    t.start()
    held.wait()
    t0 = time.monotonic()
    with pytest.raises(UserError, match="busy"), account_lock(tmp_path, wait=0.05):
        pass
    with account_lock(tmp_path, wait=5.0):
        assert time.monotonic() - t0 < 5.0
    t.join()


def rewrite_as_version(path, version):
    """Rewrite a ledger as version 1, 2 or 3 wrote it: no account broker, no broker columns on
    orders and fills (version 3); ``bars`` without ``symbol``, no account sources/symbols/
    reading options (version 2); and no ``revisions`` table (version 1)."""
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX orders_client_id")
    conn.execute("DROP INDEX fills_broker")
    conn.execute("ALTER TABLE account DROP COLUMN broker")
    for table, columns in (("orders", ORDER_BROKER_COLUMNS), ("fills", FILL_BROKER_COLUMNS)):
        for column in columns:
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    if version <= 2:
        for column in ("sources", "symbols", "data_options"):
            conn.execute(f"ALTER TABLE account DROP COLUMN {column}")
        conn.execute("CREATE TABLE old_bars (pos INTEGER PRIMARY KEY, date TEXT NOT NULL UNIQUE, "
                     "row_hash TEXT NOT NULL, close REAL NOT NULL, traded INTEGER NOT NULL)")
        conn.execute("INSERT INTO old_bars SELECT pos, date, row_hash, close, traded FROM bars")
        conn.execute("DROP TABLE bars")
        conn.execute("ALTER TABLE old_bars RENAME TO bars")
    if version == 1:
        conn.execute("DROP TABLE revisions")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_older_ledger_is_upgraded_in_place_and_steps_on_like_a_new_one(root, small_csv,
                                                                          shared, version):
    # Version 3 (universe accounts) changed the bars table: this replaces the version-1 test
    # that only dropped the revisions table, which cannot rebuild a version-1 file any more.
    # Version 4 (broker accounts) added columns: an older account trades locally.
    make_account(root, "new", small_csv, shared)
    make_account(root, "old", small_csv, shared)
    for name in ("new", "old"):
        assert paper(root, "step", "--account", name, "--until", "2000-06-01", "--quiet") == 0
    path = root / "old" / LEDGER_FILE
    before = snapshot(path)
    rewrite_as_version(path, version)
    ledger = open_ledger(path)
    try:
        info = ledger.describe()
        assert info["user_version"] == SCHEMA_VERSION == 4
        assert info["meta"]["schema_version"] == "4"
        assert ledger.revisions() == [] or version == 3
        assert ledger.account()["symbols"] == '["small"]'
        assert ledger.account()["broker"] == "local"
    finally:
        ledger.close()
    assert snapshot(path) == before
    for name in ("new", "old"):
        assert paper(root, "step", "--account", name, "--quiet") == 0
    assert snapshot(path) == snapshot(root / "new" / LEDGER_FILE)


# ----------------------------------------------------------------------------- symlinks

@pytest.mark.parametrize("entry", [LEDGER_FILE, "lock", "cache", "report", "broker.sqlite"])
def test_a_symlink_inside_an_account_folder_is_refused_and_nothing_lands_outside(
        root, small_csv, tmp_path, capsys, entry):
    init_account(root, "other", str(small_csv), cfg(cash=5))
    init_account(root, "acct", str(small_csv), cfg(cash=25_000))
    folder = root / "acct"
    outside = tmp_path / "outside"
    outside.mkdir()
    if entry == LEDGER_FILE:  # another account's ledger, which this one would step
        (folder / LEDGER_FILE).unlink()
        target = root / "other" / LEDGER_FILE
    else:
        if (folder / entry).exists():
            (folder / entry).unlink()
        target = outside / entry
    (folder / entry).symlink_to(target)
    other_before = snapshot(root / "other" / LEDGER_FILE)
    for cmd in (["step"], ["status"], ["report", "--fast"], ["signals"]):
        assert main(["paper", *cmd, "--account", "acct", "--root", str(root)]) == 2
        err = capsys.readouterr().err
        assert "symbolic link" in err and entry in err and len(err.strip().splitlines()) == 1
    assert list(outside.iterdir()) == []
    assert snapshot(root / "other" / LEDGER_FILE) == other_before


def test_a_symlinked_account_folder_is_refused(root, small_csv, tmp_path):
    init_account(tmp_path / "elsewhere", "acct", str(small_csv), cfg())
    root.mkdir()
    (root / "acct").symlink_to(tmp_path / "elsewhere" / "acct")
    with pytest.raises(UserError, match="symbolic link"):
        account_dir(root, "acct")


def test_a_symlinked_default_root_is_refused_unless_named_explicitly(tmp_path, monkeypatch,
                                                                      small_csv):
    monkeypatch.delenv("LSTMKNN_PAPER_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "paper_accounts").symlink_to(tmp_path / "real")
    with pytest.raises(UserError, match="default accounts folder is a symbolic link"):
        account_dir(None, "acct")
    init_account(tmp_path / "paper_accounts", "acct", str(small_csv), cfg())  # --root given
    assert (tmp_path / "real" / "acct" / LEDGER_FILE).is_file()
    monkeypatch.setenv("LSTMKNN_PAPER_ROOT", "paper_accounts")  # named in the variable
    assert account_dir(None, "acct") == Path("paper_accounts") / "acct"


# ----------------------------------------------------------------------------- locked, full

@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    d = tmp_path_factory.mktemp("store-shared")
    return {"cfg": write_config(d / "small.toml"), "cache": d / "cache"}


def paper(root, *args):
    return main(["paper", *args, "--root", str(root)])


def make_account(root, name, csv, shared):
    assert paper(root, "init", "--account", name, "--data", str(csv), "--config",
                 str(shared["cfg"]), "--cache", str(shared["cache"])) == 0


def test_a_write_locked_ledger_is_a_one_line_error_and_nothing_changes(ledger_path):
    holder = open_ledger(ledger_path)
    ledger = open_ledger(ledger_path)
    ledger.conn.execute("PRAGMA busy_timeout = 100")  # deliberately impatient connection
    try:
        with holder.transaction():
            holder.set_cash(7)
            with pytest.raises(UserError, match="locked by another program") as info, \
                    ledger.transaction():
                ledger.set_cash(1)
        assert "run the command again" in str(info.value) and "\n" not in str(info.value)
        assert ledger.account()["cash"] == 7
    finally:
        holder.close()
        ledger.close()


def test_a_step_on_a_write_locked_ledger_exits_with_one_line_and_resumes_later(
        root, small_csv, shared, capsys, monkeypatch):
    make_account(root, "acct", small_csv, shared)
    assert paper(root, "step", "--account", "acct", "--until", "2000-05-01", "--quiet") == 0
    path = root / "acct" / LEDGER_FILE
    before = snapshot(path)
    monkeypatch.setattr(store, "BUSY_TIMEOUT", 0.2)
    holder = open_ledger(path)  # e.g. a sqlite3 shell inside a write transaction
    try:
        with holder.transaction():
            capsys.readouterr()
            assert paper(root, "step", "--account", "acct", "--quiet") == 2
            err = capsys.readouterr().err
            assert "locked by another program" in err and "Traceback" not in err
            assert len(err.strip().splitlines()) == 1
    finally:
        holder.close()
    assert snapshot(path, integrity=True) == {**before, "integrity": "ok"}
    assert paper(root, "step", "--account", "acct", "--quiet") == 0
    assert snapshot(path)["account"]["last_pos"] == 419


def test_a_full_disk_mid_step_is_one_line_the_ledger_stays_whole_and_a_later_step_completes(
        root, small_csv, shared, capsys, monkeypatch):
    make_account(root, "ref", small_csv, shared)
    assert paper(root, "step", "--account", "ref", "--quiet") == 0
    make_account(root, "full", small_csv, shared)
    assert paper(root, "step", "--account", "full", "--until", "2000-03-01", "--quiet") == 0
    path = root / "full" / LEDGER_FILE
    before = snapshot(path)

    def small_disk(p):  # the real ledger, on a "disk" a few pages larger than the file
        ledger = store.open_ledger(p)
        pages = ledger.conn.execute("PRAGMA page_count").fetchone()[0]
        ledger.conn.execute(f"PRAGMA max_page_count = {pages + 4}")
        return ledger

    monkeypatch.setattr(step, "open_ledger", small_disk)
    capsys.readouterr()
    assert paper(root, "step", "--account", "full", "--quiet") == 2
    err = capsys.readouterr().err
    assert "disk is full" in err and "free some space" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    stuck = snapshot(path, integrity=True)
    assert stuck["integrity"] == "ok" and len(stuck["bars"]) > len(before["bars"])  # some bars
    traded = [b["date"] for b in stuck["bars"] if b["traded"]]
    assert [e["date"] for e in stuck["equity"]] == traded  # only whole bars were committed
    assert stuck["account"]["last_pos"] == len(stuck["bars"]) - 1 < 419
    monkeypatch.undo()
    assert paper(root, "step", "--account", "full", "--quiet") == 0
    assert snapshot(path) == snapshot(root / "ref" / LEDGER_FILE)
