"""The Alpaca bridge against a stateful fake of Alpaca's API on loopback: the wire protocol,
lost replies, faults, fills, rejections, reconciliation, missed bars and secrets."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from lstmknn.engine.paper.alpaca import alpaca_factory
from lstmknn.engine.paper.broker import Fill
from lstmknn.engine.paper.remote import BrokerError, BrokerUnavailable, DriftError
from tests.fake_alpaca import KEY, SECRET, AlpacaAccount, fake_orders, running_fake

B0, B1, B2, B3 = "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"
CLOSES = {"AAPL": 100.0, "MSFT": 200.0}
TARGETS = {"AAPL": 0.3, "MSFT": 0.2}  # 300 AAPL, 100 MSFT on 100,000


@pytest.fixture
def fake():
    with running_fake() as f:
        yield f


@pytest.fixture
def acct(tmp_path: Path, fake) -> AlpacaAccount:
    return AlpacaAccount(tmp_path / "acct", fake)


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and SECRET not in text and KEY not in text
    return text


def test_every_call_speaks_alpacas_protocol_with_the_auth_headers(tmp_path, fake):
    acct = AlpacaAccount(tmp_path / "a", fake, fractional=True)
    acct.step(B0, TARGETS, CLOSES)
    fake.trade("AAPL", 7, 100.0)
    fake.advance({"AAPL": 101.0, "MSFT": 199.0})
    with pytest.raises(DriftError):
        acct.step(B1, TARGETS, CLOSES)
    acct.step(B1, TARGETS, CLOSES, adopt=True)
    reqs = fake.state()["requests"]
    assert reqs and all(r["auth"] for r in reqs)
    assert {r["user_agent"].split()[0] for r in reqs} == {"APCA-PY/0.44.0"}
    allowed = [r"GET /v2/account", r"GET /v2/clock", r"GET /v2/calendar", r"GET /v2/assets/\w+",
               r"GET /v2/positions/\w+", r"GET /v2/orders", r"POST /v2/orders",
               r"GET /v2/orders/[0-9a-f-]{36}", r"GET /v2/orders:by_client_order_id",
               r"GET /v2/account/activities/FILL"]
    seen = {f"{r['method']} {r['path']}" for r in reqs}
    assert all(any(re.fullmatch(a, s) for a in allowed) for s in seen), seen
    assert {"GET /v2/account", "GET /v2/clock", "GET /v2/calendar", "GET /v2/assets/AAPL",
            "GET /v2/positions/AAPL", "GET /v2/positions/MSFT", "GET /v2/orders",
            "POST /v2/orders", "GET /v2/account/activities/FILL"} <= seen
    assert any(re.fullmatch(r"GET /v2/orders/[0-9a-f-]{36}", s) for s in seen)
    by_path = {}
    for r in reqs:
        by_path.setdefault(r["path"], []).append(r)
    cal = by_path["/v2/calendar"][0]["query"]
    assert cal["end"] == "2024-01-03" and re.fullmatch(r"\d{4}-\d\d-\d\d", cal["start"])
    assert by_path["/v2/orders"][0]["query"] == {"status": "open", "symbols": "AAPL,MSFT",
                                                 "limit": "500"}
    act = by_path["/v2/account/activities/FILL"][0]["query"]
    assert act["direction"] == "asc" and act["page_size"] == "100" and act["after"]
    posts = [r["body"] for r in reqs if r["method"] == "POST"]
    for body in posts:
        assert set(body) == {"symbol", "qty", "side", "type", "time_in_force", "client_order_id"}
        assert body["type"] == "market" and body["time_in_force"] == "day"
        assert isinstance(body["qty"], (int, float)) and body["qty"] > 0
        assert len(body["client_order_id"]) <= 48
    assert len({b["client_order_id"] for b in posts}) == len(posts)


def test_a_lost_reply_retried_by_the_sdk_places_exactly_one_order(acct, fake):
    fake.fault("POST", "/v2/orders", "504_after_accept")
    report = acct.step(B0, TARGETS, CLOSES)
    orders = fake.orders()
    assert [(o["symbol"], o["qty"]) for o in orders] == [("AAPL", "300"), ("MSFT", "100")]
    reqs = fake.state()["requests"]
    posts = [r for r in reqs if r["method"] == "POST"]
    assert len(posts) == 3  # the lost reply, its retry (duplicate id), the second order
    assert posts[0]["body"]["client_order_id"] == posts[1]["body"]["client_order_id"]
    assert any(r["path"] == "/v2/orders:by_client_order_id"
               and r["query"] == {"client_order_id": posts[0]["body"]["client_order_id"]}
               for r in reqs)
    assert [r["status"] for r in acct.store.orders("acct")] == ["accepted", "accepted"]
    assert len(report.sent) == 2 and not report.rejected


def test_a_reply_lost_without_retry_leaves_the_order_intended_until_the_next_step_finds_it(
        acct, fake):
    fake.fault("POST", "/v2/orders", "drop")
    with pytest.raises(BrokerUnavailable) as exc:
        acct.step(B0, TARGETS, CLOSES)
    assert "run the step again" in one_line(exc.value)
    assert [r["status"] for r in acct.store.orders("acct")] == ["intended", "intended"]
    assert len(fake.orders()) == 1  # the broker got it; its reply was lost
    report = acct.step(B0, TARGETS, CLOSES)
    assert len(report.resolved) == 1 and len(report.sent) == 1
    assert [(o["symbol"], o["qty"]) for o in fake.orders()] == [("AAPL", "300"), ("MSFT", "100")]


@pytest.mark.parametrize("method,path,kind,times,expect", [
    ("GET", "/v2/account", "429", 9, "HTTP 429 code 42910000: rate limit exceeded after 2 retries"),
    ("POST", "/v2/orders", "504", 9, "HTTP 504: Gateway Timeout after 2 retries"),
    ("POST", "/v2/orders", "hang", 1, "did not answer POST /v2/orders within 1 s"),
    ("POST", "/v2/orders", "500_text", 1, "HTTP 500: Internal Server Error"),
    ("GET", "/v2/positions/MSFT", "500_text", 1, "GET /v2/positions/MSFT with HTTP 500"),
    ("GET", "/v2/account", "403", 1, "Alpaca refused GET /v2/account (HTTP 403 code 40310000"),
    ("GET", "/v2/clock", "echo_keys", 1, "bad keys <hidden> <hidden>"),
])
def test_faults_end_in_one_clear_line_and_a_later_step_completes(acct, fake, method, path, kind,
                                                                 times, expect):
    fake.fault(method, path, kind, times=times, seconds=3.0)
    t0 = time.monotonic()
    with pytest.raises(BrokerError) as exc:
        acct.step(B0, TARGETS, CLOSES)
    assert time.monotonic() - t0 < 3.0
    assert expect in one_line(exc.value)
    fake.state()  # the fake is still there
    time.sleep(3.1 if kind == "hang" else 0)  # let a hung reply finish
    fake.clear_faults()
    report = acct.step(B0, TARGETS, CLOSES)
    assert [(o["symbol"], o["qty"]) for o in fake.orders()] == [("AAPL", "300"), ("MSFT", "100")]
    assert [r["status"] for r in acct.store.orders("acct")] == ["accepted", "accepted"]
    assert len(report.resolved) + len(report.sent) == 2  # a hung POST was placed: resolved


def test_partial_fills_are_booked_as_increments_then_the_rest_expires(acct, fake):
    acct.step(B0, {"AAPL": 0.3}, CLOSES)
    fake.open({"AAPL": 100.0}, fill={"AAPL": 0.5})
    broker = acct.broker()
    broker.begin()
    broker.resolve()
    first = broker.sync_fills()
    assert [(f.status, f.size, f.price) for f in first] == [("partial", 150.0, 100.0)]
    fake.open({"AAPL": 110.0}, fill={"AAPL": 0.8})  # same session: cumulative 240
    second = broker.sync_fills()
    assert [(f.status, f.size, f.price) for f in second] == [("partial", 90.0, 110.0)]
    assert broker.sync_fills() == []
    fake.close()
    third = broker.sync_fills()
    assert [(f.status, f.size, f.price) for f in third] == [("expired", 60.0, None)]
    row = acct.store.orders("acct")[0]
    assert (row["status"], row["filled_qty"], row["avg_price"]) == ("expired", 240.0, 103.75)
    rec = broker.reconcile(B1)
    assert rec.positions["AAPL"] == 240.0 and not rec.drift
    assert acct.store.book_positions("acct") == {"AAPL": 240.0}
    assert acct.store.book_cash("acct") == pytest.approx(100_000 - 150 * 100 - 90 * 110)


def test_an_order_cancelled_at_the_broker_records_its_rest(acct, fake):
    acct.step(B0, TARGETS, CLOSES)
    order = fake.orders()[1]
    acct.broker().venue.cancel(order["id"])  # as a user would, from another client
    assert [r for r in fake.state()["requests"] if r["method"] == "DELETE"] == [
        {"method": "DELETE", "path": f"/v2/orders/{order['id']}", "query": {}, "body": None,
         "auth": True, "user_agent": fake.state()["requests"][0]["user_agent"]}]
    fake.advance({"AAPL": 101.0, "MSFT": 199.0})
    report = acct.step(B1, {}, CLOSES)
    assert sorted((f.symbol, f.status, f.size, f.price) for f in report.fills) == [
        ("AAPL", "filled", 300.0, 101.0), ("MSFT", "cancelled", 100.0, None)]
    assert report.reconciliation.positions == {"AAPL": 300.0, "MSFT": 0.0}


def test_decisions_count_the_brokers_open_orders(acct, fake):
    body = json.dumps({"symbol": "AAPL", "qty": 100, "side": "buy", "type": "market",
                       "time_in_force": "day", "client_order_id": "placed-by-hand-1"}).encode()
    req = urllib.request.Request(f"{fake.url}/v2/orders", method="POST", data=body,
                                 headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert json.loads(r.read())["status"] == "accepted"
    acct.step(B0, TARGETS, CLOSES)
    assert [(o["symbol"], o["qty"]) for o in fake.orders()[1:]] == [("AAPL", "200"),
                                                                    ("MSFT", "100")]
    assert [d["current"] for d in acct.store.decisions("acct", B0)] == [100.0, 0.0]


def test_syncing_again_books_nothing_twice(acct, fake):
    acct.step(B0, TARGETS, CLOSES)
    fake.advance({"AAPL": 101.0, "MSFT": 199.0})
    acct.step(B1, TARGETS, CLOSES)
    before = acct.store.table("broker_fills")
    broker = acct.broker()
    broker.begin()
    broker.resolve()
    assert broker.sync_fills() == []
    for row in acct.store.orders("acct"):  # book every order's state once more
        broker._apply(row, broker.venue.order_by_client_id(row["client_order_id"]))
    assert acct.store.table("broker_fills") == before
    assert len(before) == 2


def test_a_rejected_order_is_recorded_with_the_brokers_code_and_message(tmp_path, fake):
    fake.reset(assets={"AAPL": {}, "MSFT": {"tradable": False}})
    acct = AlpacaAccount(tmp_path / "a", fake)
    report = acct.step(B0, {"AAPL": 5.0, "MSFT": 0.1}, CLOSES)
    assert fake.orders() == []
    got = {r["symbol"]: (r["status"], r["reject_code"], r["reject_message"])
           for r in report.rejected}
    assert got == {"AAPL": ("rejected", "40310000", "insufficient buying power"),
                   "MSFT": ("rejected", "42210000", "asset MSFT is not tradable")}
    assert [f.status for f in acct.broker().fills()] == ["rejected", "rejected"]
    lookups = [r for r in fake.state()["requests"]
               if r["path"] == "/v2/orders:by_client_order_id"]
    assert len(lookups) == 2  # a refusal is looked up before it is believed
    assert any("rejected AAPL buy 5000: 40310000 insufficient buying power" in line
               for line in report.lines())
    again = acct.step(B0, {"AAPL": 5.0, "MSFT": 0.1}, CLOSES)
    assert again.sent == [] and fake.orders() == []  # a rejection is final: never resent


def test_fractional_orders_follow_alpacas_rules(tmp_path, fake):
    fake.reset(assets={"AAPL": {}, "MSFT": {"fractionable": False}})
    acct = AlpacaAccount(tmp_path / "a", fake, fractional=True)
    report = acct.step(B0, {"AAPL": 1 / 3, "MSFT": 0.1}, CLOSES)
    assert not report.rejected
    assert [(o["symbol"], o["side"], o["qty"]) for o in fake.orders()] == [
        ("AAPL", "buy", "333.333333333"), ("MSFT", "buy", "50")]
    fake.advance({"AAPL": 100.0, "MSFT": 200.0})
    report = acct.step(B1, {"AAPL": -0.1, "MSFT": 0.1}, CLOSES)
    assert not report.rejected
    assert [(o["symbol"], o["side"], o["qty"]) for o in fake.orders()[2:]] == [
        ("AAPL", "sell", "333.333333333"), ("AAPL", "sell", "100")]  # close, then a whole short
    fake.advance({"AAPL": 100.0, "MSFT": 200.0})
    assert acct.step(B2, {"AAPL": -0.1, "MSFT": 0.1}, CLOSES).reconciliation.positions == {
        "AAPL": -100.0, "MSFT": 50.0}


def test_an_external_trade_refuses_the_step_with_one_line_per_symbol_until_adopted(acct, fake):
    acct.step(B0, TARGETS, CLOSES)
    fake.advance({"AAPL": 101.0, "MSFT": 199.0})
    fake.trade("AAPL", 7, 102.0)
    fake.trade("MSFT", -100, 198.0)
    sent_before = len(fake.orders())
    for _ in range(2):
        with pytest.raises(DriftError) as exc:
            acct.step(B1, TARGETS, CLOSES)
    lines = str(exc.value).splitlines()
    assert "--adopt-broker-positions" in lines[0] and len(lines) == 3
    assert lines[1].startswith("  AAPL: ledger 300, broker 307, difference +7: 1 fill(s) of "
                               "orders not placed by lstmknn since 2024-01-02, last buy 7 at 102")
    assert lines[2].startswith("  MSFT: ledger 100, broker 0, difference -100: 1 fill(s)")
    assert len(fake.orders()) == sent_before  # nothing sent
    refused = [r for r in acct.store.reconciliations("acct") if r["action"] == "refused"]
    assert len(refused) == 2  # logged once per bar, however many times refused
    report = acct.step(B1, TARGETS, CLOSES, adopt=True)
    assert report.reconciliation.adopted
    assert any(line.startswith("adopted AAPL: ledger 300 -> broker 307") for line in
               report.reconciliation.lines())
    assert acct.store.book_positions("acct") == {"AAPL": 307.0, "MSFT": 0.0}
    assert acct.store.book_cash("acct") == pytest.approx(fake.state()["cash"])
    assert [(o["symbol"], o["side"]) for o in fake.orders()[sent_before:]] == [
        ("AAPL", "sell"), ("MSFT", "buy")]
    fake.advance({"AAPL": 100.0, "MSFT": 200.0})
    report = acct.step(B2, TARGETS, CLOSES)
    assert not report.reconciliation.drift and not report.reconciliation.lines()


def test_a_reset_paper_account_or_other_keys_are_refused(acct, fake):
    acct.step(B0, TARGETS, CLOSES)
    acct.env["APCA_API_SECRET_KEY"] = "another-secret"
    with pytest.raises(BrokerError, match="Alpaca refused GET /v2/account .HTTP 401"):
        acct.step(B0, TARGETS, CLOSES)
    acct.env["APCA_API_SECRET_KEY"] = SECRET
    number = acct.meta["account_number"]
    new = fake.reset_account()["account_number"]
    with pytest.raises(BrokerError) as exc:
        acct.step(B0, TARGETS, CLOSES)
    assert f"open Alpaca account {new}, but this account trades {number}" in one_line(exc.value)
    assert "reset" in str(exc.value)
    assert fake.orders() == []


def test_catch_up_bars_are_recorded_missed_and_never_sent(acct, fake):
    broker = acct.broker()
    for bar in ("2023-12-27", "2023-12-28", "2023-12-29", B0):  # the loop catching up
        broker.sync(bar, {}, {})
        broker.submit_targets(bar, TARGETS, CLOSES)
    assert {o["client_order_id"][11:19] for o in fake.orders()} == {"20240102"}
    status = {(d["bar"], d["status"]) for d in acct.store.decisions("acct")}
    assert status == {("2023-12-27", "missed"), ("2023-12-28", "missed"),
                      ("2023-12-29", "missed"), (B0, "orders")}
    fake.advance({"AAPL": 101.0, "MSFT": 199.0})
    fake.advance({"AAPL": 101.0, "MSFT": 199.0})  # a session passes without a step
    report = acct.step(B1, {"AAPL": 0.1, "MSFT": 0.1}, CLOSES)
    assert report.missed == ["AAPL", "MSFT"] and report.sent == []
    assert len(fake.orders()) == 2


def test_intended_orders_of_a_bar_whose_session_passed_are_missed_not_sent_late(acct, fake):
    fake.fault("POST", "/v2/orders", "504", times=9)
    with pytest.raises(BrokerUnavailable):
        acct.step(B0, TARGETS, CLOSES)
    fake.clear_faults()
    fake.advance({"AAPL": 101.0, "MSFT": 199.0})
    report = acct.step(B1, {"AAPL": 0.1, "MSFT": 0.1}, CLOSES)
    assert len(report.missed_orders) == 2 and len(report.sent) == 2
    assert any("never sent: missed" in line for line in report.lines())
    statuses = [(r["bar"], r["status"]) for r in acct.store.orders("acct")]
    assert statuses[:2] == [(B0, "missed"), (B0, "missed")]
    assert {o["client_order_id"][11:19] for o in fake.orders()} == {"20240103"}


def test_opg_orders_wait_outside_alpacas_window(tmp_path, fake):
    acct = AlpacaAccount(tmp_path / "a", fake, time_in_force="opg")
    fake.clock("2024-01-03T10:00:00", "open")
    with pytest.raises(BrokerError, match="refuses opg orders between 9:28am and 7pm ET"):
        acct.step(B0, TARGETS, CLOSES)
    assert [r["status"] for r in acct.store.orders("acct")] == ["intended", "intended"]
    assert fake.orders() == []
    fake.clock("2024-01-03T08:00:00", "pre")
    report = acct.step(B0, TARGETS, CLOSES)
    assert len(report.sent) == 2
    assert {o["time_in_force"] for o in fake.orders()} == {"opg"}


def test_a_decided_bar_is_never_decided_again(acct, fake):
    acct.step(B0, TARGETS, CLOSES)
    fake.trade("AAPL", 5, 100.0)
    fake.trade("AAPL", -5, 100.0)
    report = acct.step(B0, {"AAPL": 0.5, "MSFT": 0.5}, CLOSES)
    assert report.sent == [] and len(fake.orders()) == 4  # 2 ours, 2 outside


def test_the_broker_boundary_runs_the_phases_for_the_step_loop(acct, fake):
    factory = alpaca_factory(acct.folder, "acct", ("AAPL", "MSFT"), env=acct.env, timeout=1.0,
                             retries=1, retry_wait=0.01)
    broker = factory(None, None)
    assert broker.sync(B0, {"AAPL": 99.0}, {"AAPL": 1e6}) == []
    assert broker.value(CLOSES) == 100_000.0 and broker.cash() == 100_000.0
    orders = broker.submit_targets(B0, TARGETS, CLOSES)
    assert [(o.symbol, o.size, o.status) for o in orders] == [("AAPL", 300.0, "accepted"),
                                                             ("MSFT", 100.0, "accepted")]
    assert [o.symbol for o in broker.open_orders()] == ["AAPL", "MSFT"]
    broker.close()
    fake.advance({"AAPL": 101.0, "MSFT": 199.0})
    broker = factory(None, None)
    fills = broker.sync(B1, {}, {})
    assert all(isinstance(f, Fill) for f in fills)
    assert [(f.symbol, f.side, f.size, f.price, f.status) for f in fills] == [
        ("AAPL", "buy", 300.0, 101.0, "filled"), ("MSFT", "buy", 100.0, 199.0, "filled")]
    assert fills[0].date.startswith("2024-01-03T14:30")  # the broker's time (UTC)
    assert broker.positions() == {"AAPL": 300.0, "MSFT": 100.0}
    assert broker.cost_basis() == {"AAPL": 101.0, "MSFT": 199.0}
    assert broker.open_orders() == []
    assert broker.fills(since=B1) == fills and broker.fills(since="2024-01-04") == []
    assert broker.value({"AAPL": 102.0, "MSFT": 200.0}) == pytest.approx(
        100_000 - 30_300 - 19_900 + 30_600 + 20_000)
    broker.close()


def test_no_secret_reaches_the_account_folder_output_or_reprs(tmp_path, fake, capsys, caplog):
    caplog.set_level("DEBUG")
    acct = AlpacaAccount(tmp_path / "acct", fake)
    texts = []
    acct.step(B0, TARGETS, CLOSES)
    fake.trade("AAPL", 1, 100.0)
    fake.advance({"AAPL": 101.0, "MSFT": 199.0})
    for kind in ("echo_keys", "500_text", "429"):
        fake.fault("GET", "/v2/clock", kind, times=9)
        with pytest.raises(BrokerError) as exc:
            acct.step(B1, TARGETS, CLOSES)
        texts.append(str(exc.value))
        fake.clear_faults()
    with pytest.raises(DriftError) as exc:
        acct.step(B1, TARGETS, CLOSES)
    texts.append(str(exc.value))
    report = acct.step(B1, TARGETS, CLOSES, adopt=True)
    broker = acct.broker()
    texts += report.lines() + [repr(report), repr(broker), repr(broker.venue), repr(acct.store),
                               repr(vars(broker)), repr(vars(broker.venue))]
    out = capsys.readouterr()
    texts += [out.out, out.err, caplog.text]
    for text in texts:
        assert SECRET not in text and KEY not in text
    acct.store.close()
    files = [p for p in acct.folder.rglob("*") if p.is_file()]
    assert files
    for p in files:
        data = p.read_bytes()
        assert SECRET.encode() not in data and KEY.encode() not in data, p


def test_the_fakes_state_is_json_for_tests(fake):
    assert json.loads(json.dumps(fake.state()))["today"] == B0
    assert fake_orders(fake) == []
