"""The paper ledger: account names, schema identity, refusal of foreign files, the lock."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from engine.cli import main
from engine.errors import UserError
from engine.paper.runner import init_account
from engine.paper.store import (
    APP_ID,
    APP_NAME,
    LEDGER_FILE,
    SCHEMA_VERSION,
    account_dir,
    account_lock,
    default_root,
    open_ledger,
)


@pytest.fixture
def root(tmp_path):
    return tmp_path / "accounts"


@pytest.fixture
def ledger_path(root, small_csv):
    init_account(root, "acct", str(small_csv), cash=25_000)
    return root / "acct" / LEDGER_FILE


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "-x", "a b", "x" * 65, "é", "a\0"])
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
    conn = sqlite3.connect(ledger_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APP_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta["application"] == APP_NAME and meta["schema_version"] == str(SCHEMA_VERSION)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"meta", "account", "positions", "bars", "signals", "orders", "fills",
                "equity"} <= tables
    finally:
        conn.close()


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
        init_account(root, "acct", str(small_csv), cash=1)
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
        init_account(root, "acct", "sp500")
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
        with pytest.raises(RuntimeError), ledger.transaction() as db:
            db.execute("UPDATE account SET cash = 1 WHERE id = 1")
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
