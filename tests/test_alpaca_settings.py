"""Alpaca bridge settings: endpoint and keys, the lazy SDK import, client order ids, order legs,
the broker store's file checks. No network."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lstmknn.engine.errors import UserError
from lstmknn.engine.paper import alpaca
from lstmknn.engine.paper.alpaca import (
    PAPER_ENDPOINT,
    alpaca_venue,
    check_endpoint,
    credentials_from_env,
    endpoint_from_env,
)
from lstmknn.engine.paper.broker_store import BrokerStore
from lstmknn.engine.paper.orders import MAX_ID_LENGTH, client_order_id, new_nonce, order_legs
from lstmknn.engine.paper.remote import BrokerError

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"APCA_API_KEY_ID": "PKSETTINGS", "APCA_API_SECRET_KEY": "settings-secret-xyz"}


def test_the_paper_endpoint_is_used_when_no_base_url_is_set():
    assert endpoint_from_env({}) == PAPER_ENDPOINT
    assert endpoint_from_env({"APCA_API_BASE_URL": ""}) == PAPER_ENDPOINT


def test_a_trailing_v2_and_slash_are_dropped_from_the_base_url():
    assert check_endpoint("https://paper-api.alpaca.markets/v2/") == PAPER_ENDPOINT
    assert check_endpoint("http://127.0.0.1:8123/") == "http://127.0.0.1:8123"
    assert check_endpoint("http://[::1]:9/v2") == "http://[::1]:9"


@pytest.mark.parametrize("url", ["https://api.alpaca.markets", "https://API.Alpaca.Markets/v2",
                                 "https://api.alpaca.markets.:443/", "http://api.alpaca.markets"])
def test_the_live_endpoint_is_refused_in_any_spelling(url):
    with pytest.raises(BrokerError, match="live endpoint"):
        check_endpoint(url)


@pytest.mark.parametrize("url", ["http://paper-api.alpaca.markets", "http://10.0.0.5:8080",
                                 "http://localhost.example.com"])
def test_plain_http_is_refused_except_on_loopback(url):
    with pytest.raises(BrokerError, match="loopback only"):
        check_endpoint(url)
    for ok in ("http://localhost:1", "http://127.0.0.1:2", "http://127.1.2.3:3", "http://[::1]:4"):
        assert check_endpoint(ok) == ok


@pytest.mark.parametrize("url", ["ftp://paper-api.alpaca.markets", "paper-api.alpaca.markets",
                                 "https://", "https://paper-api.alpaca.markets:99999",
                                 "https://paper-api.alpaca.markets/?x=1"])
def test_urls_that_are_not_an_endpoint_are_refused_in_one_line(url):
    with pytest.raises(BrokerError) as exc:
        check_endpoint(url)
    assert "\n" not in str(exc.value)


def test_credentials_in_the_url_are_refused_without_being_echoed():
    with pytest.raises(BrokerError) as exc:
        check_endpoint("https://PKUSER:hunter2-secret@paper-api.alpaca.markets")
    assert "hunter2" not in str(exc.value) and "PKUSER" not in str(exc.value)
    assert "APCA_API_KEY_ID" in str(exc.value)


@pytest.mark.parametrize("env", [{}, {"APCA_API_KEY_ID": "PK"}, {"APCA_API_SECRET_KEY": "s"},
                                 {"APCA_API_KEY_ID": " ", "APCA_API_SECRET_KEY": "s"}])
def test_missing_keys_give_one_line_naming_both_variables(env):
    with pytest.raises(BrokerError) as exc:
        credentials_from_env(env)
    text = str(exc.value)
    assert "\n" not in text and "APCA_API_KEY_ID" in text and "APCA_API_SECRET_KEY" in text
    assert isinstance(exc.value, UserError)


def test_credentials_never_show_in_repr_or_str():
    c = credentials_from_env(KEYS)
    for text in (repr(c), str(c), f"{c}", repr([c])):
        assert "settings-secret-xyz" not in text and "PKSETTINGS" not in text
    with pytest.raises(TypeError):
        __import__("pickle").dumps(c)
    venue = alpaca_venue({**KEYS, "APCA_API_BASE_URL": "http://127.0.0.1:9"})
    assert "settings-secret" not in repr(venue) and "settings-secret" not in repr(vars(venue))


def test_without_alpaca_py_the_error_names_the_install_command(monkeypatch):
    alpaca._sdk.cache_clear()
    for name in [m for m in sys.modules if m == "alpaca" or m.startswith("alpaca.")] + ["alpaca"]:
        monkeypatch.setitem(sys.modules, name, None)
    try:
        with pytest.raises(BrokerError) as exc:
            alpaca_venue({**KEYS, "APCA_API_BASE_URL": "http://127.0.0.1:9"})
    finally:
        alpaca._sdk.cache_clear()
    assert str(exc.value) == 'trading through Alpaca needs alpaca-py: pip install -e ".[alpaca]"'


def test_importing_the_adapter_does_not_import_alpaca_py():
    code = ("import sys, engine.paper.alpaca, engine.paper.remote, engine.paper.broker_store; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alpaca', 'pydantic')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_client_order_ids_are_deterministic_short_and_distinct():
    nonce = new_nonce()
    a = client_order_id("acct", "2024-01-02", "AAPL", 0, nonce)
    assert a == client_order_id("acct", "2024-01-02", "AAPL", 0, nonce)
    others = {client_order_id(*args, nonce) for args in [
        ("acct", "2024-01-02", "AAPL", 1), ("acct", "2024-01-03", "AAPL", 0),
        ("acct", "2024-01-02", "MSFT", 0), ("other", "2024-01-02", "AAPL", 0)]}
    others.add(client_order_id("acct", "2024-01-02", "AAPL", 0, new_nonce()))
    assert a not in others and len(others) == 5
    longest = client_order_id("a" * 64, "2024-01-02T15:30:00-05:00", "BRK.B", 9999, nonce)
    assert len(longest) <= MAX_ID_LENGTH and longest.replace("-", "").isalnum()
    with pytest.raises(ValueError):
        client_order_id("acct", "2024-01-02", "AAPL", 0, "not-hex!")


def test_order_legs_split_reversals_and_keep_shorts_whole():
    assert order_legs(0, 12.7, fractional=False) == [12.0]
    assert order_legs(0, 12.7, fractional=True) == [12.7]
    assert order_legs(10, -5.6, fractional=True) == [-10.0, -5.0]
    assert order_legs(-5, 3.5, fractional=True) == [5.0, 3.5]
    assert order_legs(-5, 3.5, fractional=False) == [5.0, 3.0]
    assert order_legs(3, 99.99999999997, fractional=False) == [97.0]
    assert order_legs(4.2, 4.2000000000001, fractional=True) == []
    assert order_legs(10, 10.4, fractional=False) == []


def test_the_broker_store_refuses_a_foreign_sqlite_file_and_symlinks(tmp_path):
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(UserError, match="not an lstmknn broker store"):
        BrokerStore.open(other)
    real = BrokerStore.open(tmp_path / "broker.sqlite")
    real.close()
    (tmp_path / "link.sqlite").symlink_to(tmp_path / "broker.sqlite")
    with pytest.raises(UserError, match="symbolic link"):
        BrokerStore.open(tmp_path / "link.sqlite")
    again = BrokerStore.open(tmp_path / "broker.sqlite")
    assert again.table("broker_orders") == []
    again.close()
