"""Paper accounts trading through Alpaca's paper API, end to end through the CLI against the
loopback fake (``tests/fake_alpaca.py``): init, steps across sessions with fills at the fake's
prices, the ledger following the broker, missed catch-up bars, drift refused then adopted,
the implementation shortfall in status and report, lost replies, missing keys, the live
endpoint, secrets, and ``kill -9`` of ``paper step`` at the broker's dangerous moments."""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lstmknn.engine.cli import main
from lstmknn.engine.paper import alpaca
from lstmknn.engine.paper.broker_store import BROKER_FILE, BrokerStore
from lstmknn.engine.paper.remote import PAUSE_ENV as BROKER_PAUSE
from lstmknn.engine.paper.step import PAUSE_ENV as BAR_PAUSE
from lstmknn.engine.paper.store import LEDGER_FILE, TRADING_TABLES, snapshot
from tests.fake_alpaca import (
    KEY,
    SECRET,
    FakeControl,
    fake_env,
    fake_orders,
    running_fake,
    spawned_fake,
    store_rows,
)
from tests.helpers import Driver, session_universe, write_config, write_long_csv

ROOT = Path(__file__).resolve().parents[1]
NUMBER = "PA0000000042"
AFTER = 6  # sessions after the first step's last bar (2024-01-02)
SLIPPAGE = 0.0005  # the config's default: the model's fill is open * (1 +/- slippage)
RANK = {"walk_forward": {"train_window": 80, "step": 20}, "lstm": {"mc_passes": 3},
        "model": {"scope": "pooled"}, "signal": {"sizing": "rank", "top_k": 1, "bottom_k": 1}}


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """Two tickers on the fake's sessions; one rank config and fold cache for every test."""
    d = tmp_path_factory.mktemp("alpaca-market")
    frame = session_universe(after=AFTER)
    dates = sorted(pd.Timestamp(t) for t in frame["date"].unique())
    return {"frame": frame, "dates": dates, "cfg": write_config(d / "rank.toml", RANK),
            "cache": d / "cache"}


class Paper:
    """One account driven through ``lstmknn paper`` against a fake, its data growing a session
    at a time; every output is kept for the secret check."""

    def __init__(self, tmp_path: Path, market: dict, fake: FakeControl, capsys,
                 name: str = "alp") -> None:
        self.market, self.fake, self.capsys, self.name = market, fake, capsys, name
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.csv = tmp_path / "prices.csv"
        self.root = tmp_path / "accounts"
        self.texts: list[str] = []
        self.shown = 0
        self.write(0)

    @property
    def folder(self) -> Path:
        return self.root / self.name

    def bar(self, k: int | None = None):
        """The data's last bar when it holds ``k`` sessions after the first step's last bar."""
        k = self.shown if k is None else k
        return self.market["dates"][len(self.market["dates"]) - AFTER - 1 + k]

    def write(self, k: int) -> None:
        frame = self.market["frame"]
        write_long_csv(frame[frame["date"] <= self.bar(k)], self.csv)
        self.shown = k

    def rows(self, k: int) -> dict[str, dict[str, float]]:
        frame = self.market["frame"]
        return frame[frame["date"] == self.bar(k)].set_index("symbol")[["open", "close"]].to_dict(
            "index")

    def reset_fake(self) -> None:
        closes = {s: round(r["close"], 4) for s, r in self.rows(0).items()}
        self.fake.reset(account_number=NUMBER, assets={s: {"price": p} for s, p in closes.items()})

    def cli(self, cmd: str, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        rc = main(["paper", cmd, "--account", self.name, "--root", str(self.root), *args])
        out, err = self.capsys.readouterr()
        self.texts += [out, err]
        return rc, out, err

    def init(self, *args: str) -> str:
        rc, out, err = self.cli("init", "--data", str(self.csv), "--config",
                                str(self.market["cfg"]), "--cache", str(self.market["cache"]),
                                "--broker", "alpaca", *args)
        assert rc == 0, err
        return out

    def step(self, *args: str) -> str:
        rc, out, err = self.cli("step", *args)
        assert rc == 0, err
        return out

    def open_next(self, factor: float = 1.01,
                  fill: dict[str, float] | None = None) -> dict[str, float]:
        """The fake opens the next session at the data's opens times ``factor`` (fills,
        ``fill``: the fraction filled per symbol), then closes it (rests expire); the data
        gains that session."""
        prices = {s: round(r["open"] * factor, 4) for s, r in self.rows(self.shown + 1).items()}
        self.fake.advance(prices, fill)
        self.write(self.shown + 1)
        return prices

    def ledger(self) -> dict:
        return snapshot(self.folder / LEDGER_FILE)

    def store(self) -> dict:
        store = BrokerStore.open(self.folder / BROKER_FILE)
        try:
            return {t: store.table(t) for t in ("broker_meta", "broker_decisions",
                                                "broker_orders", "broker_fills",
                                                "reconciliations")}
        finally:
            store.close()


@pytest.fixture
def fake():
    with running_fake() as f:
        yield f


@pytest.fixture
def paper(tmp_path, market, fake, capsys, monkeypatch):
    for name, value in fake_env(fake).items():
        monkeypatch.setenv(name, value)
    for name in (BROKER_PAUSE, BAR_PAUSE):
        monkeypatch.delenv(name, raising=False)
    p = Paper(tmp_path, market, fake, capsys)
    p.reset_fake()
    return p


def assert_follows_the_broker(paper: Paper) -> None:
    """The ledger's book, cash and last equity row are the fake broker's; every order at the
    fake (but trades outside lstmknn) is in the ledger with its status, fill quantity and
    price."""
    state, led = paper.fake.state(), paper.ledger()
    held = {p["symbol"]: p["shares"] for p in led["positions"] if p["shares"]}
    assert held == {s: p["qty"] for s, p in state["positions"].items()}
    assert led["account"]["cash"] == pytest.approx(state["cash"], abs=1e-6)
    last = led["equity"][-1]
    closes = {s: r["close"] for s, r in paper.rows(paper.shown).items()}
    assert last["date"] == str(paper.bar().date()) and last["cash"] == pytest.approx(state["cash"])
    assert last["value"] == pytest.approx(state["cash"] + sum(q * closes[s]
                                                              for s, q in held.items()))
    ours = {o["client_order_id"]: o for o in led["orders"]}
    for o in state["orders"]:
        if o["client_order_id"].startswith("manual-"):  # a trade outside lstmknn
            continue
        mine = ours[o["client_order_id"]]
        assert (mine["symbol"], abs(mine["size"]), mine["status"], mine["filled_size"]) == (
            o["symbol"], float(o["qty"]), o["status"], float(o["filled_qty"]))
        assert mine["avg_price"] == (float(o["filled_avg_price"]) if o["filled_avg_price"]
                                     else None)
    at_broker = {o["client_order_id"] for o in state["orders"]}
    assert {o["client_order_id"] for o in led["orders"]
            if o["status"] not in ("missed", "rejected", "intended")} <= at_broker


def assert_no_secret(paper: Paper, *texts: str) -> None:
    for text in [*paper.texts, *texts]:
        assert SECRET not in text and KEY not in text
    files = [p for p in paper.root.rglob("*") if p.is_file()]
    assert any(p.name == BROKER_FILE for p in files)
    for p in files:
        data = p.read_bytes()
        assert SECRET.encode() not in data and KEY.encode() not in data, p


def test_a_broker_account_steps_bar_by_bar_and_its_ledger_follows_alpacas_fills(paper):
    out = paper.init()
    assert f"trades through Alpaca paper account {NUMBER}" in out
    rc, text, _ = paper.cli("status")
    assert rc == 0 and "reconciliation: not yet (no step has traded)" in text
    led = paper.ledger()
    assert led["account"]["cash"] == 100_000.0
    store = paper.store()
    assert store["broker_meta"][0]["account_number"] == NUMBER
    out = paper.step()
    first = paper.ledger()
    assert first["equity"] and all(e["cash"] == 100_000.0 for e in first["equity"])
    decided = {d["bar"] for d in paper.store()["broker_decisions"]}
    assert len(decided) == len(first["equity"]) > 5  # every traded bar is decided ...
    sent = fake_orders(paper.fake)
    assert sent and {o[0].split("-")[1] for o in sent} == {"20240102"}  # ... only the last sent
    assert "bar(s) decided and recorded but not sent" in out and "sent, Alpaca says accepted" in out
    assert_follows_the_broker(paper)
    fills = 0
    for k in range(AFTER):
        opens = paper.open_next(1.01, {"MSFT": 0.5} if k == 0 else None)
        paper.step()
        assert_follows_the_broker(paper)
        led = paper.ledger()
        for f in led["fills"]:
            if f["price"] is not None:
                assert f["commission"] == 0.0 and f["broker_time"].startswith(f["date"])
        fills = len([f for f in led["fills"] if f["price"] is not None])
        bar = str(paper.bar().date())
        for o in led["orders"]:
            if o["model_date"] == bar and o["filled_size"]:  # filled at this session's open
                sign = 1.0 if o["size"] > 0 else -1.0
                assert o["avg_price"] == pytest.approx(opens[o["symbol"]])
                assert o["model_price"] == pytest.approx(
                    paper.rows(paper.shown)[o["symbol"]]["open"] * (1 + sign * SLIPPAGE))
    assert fills >= 3
    led = paper.ledger()
    partial = [o for o in led["orders"] if o["status"] == "expired" and o["filled_size"]]
    assert partial and 0 < partial[0]["filled_size"] < abs(partial[0]["size"])
    rest = [f for f in led["fills"] if f["order_id"] == partial[0]["id"]]
    assert [f["status"] for f in rest] == ["partial", "expired"] and rest[1]["price"] is None
    filled = [o for o in led["orders"] if o["filled_size"] and o["model_price"] is not None]
    expect = sum((1 if o["size"] > 0 else -1) * (o["avg_price"] - o["model_price"])
                 * o["filled_size"] for o in filled)
    assert len(filled) >= 3 and abs(expect) > 1.0

    rc, text, _ = paper.cli("status")
    assert rc == 0 and f"trades through Alpaca paper account {NUMBER}" in text
    assert "reconciliation: positions matched Alpaca's at the last step" in text
    assert "implementation shortfall (Alpaca's fills vs the model's next-open fills; " in text
    assert f"{expect:+,.2f} over {len(filled)} filled order(s)" in text
    rc, raw, _ = paper.cli("status", "--json")
    st = json.loads(raw)
    sf = st["broker_account"]["shortfall"]
    assert st["broker"] == "alpaca" and sf["total"] == pytest.approx(expect)
    assert [o["cumulative"] for o in sf["orders"]][-1] == pytest.approx(expect)
    assert len(sf["orders"]) == len(filled)
    rc, out, err = paper.cli("report", "--fast")
    assert rc == 0, err
    page = (paper.folder / "report" / "tearsheet.html").read_text()
    assert "Implementation shortfall: Alpaca&#x27;s fills vs the model&#x27;s next-open" in page
    assert_no_secret(paper, page)


def test_status_and_report_read_the_stores_and_never_contact_alpaca(paper, monkeypatch):
    paper.init()
    paper.step()
    paper.open_next()
    paper.step()
    before = len(paper.fake.state()["requests"])
    for name in fake_env(paper.fake):
        monkeypatch.delenv(name)
    rc, out, err = paper.cli("status")
    assert rc == 0, err
    assert paper.cli("report", "--fast")[0] == 0
    assert len(paper.fake.state()["requests"]) == before


def test_bars_before_alpacas_next_session_are_recorded_and_never_sent(paper):
    paper.init()
    paper.step()
    paper.open_next()
    paper.open_next()  # two sessions pass before the next step
    out = paper.step()
    assert "processed 2 bars" in out and "1 bar(s) decided and recorded but not sent" in out
    missed, current = str(paper.bar(1).date()), str(paper.bar(2).date())
    decisions = paper.store()["broker_decisions"]
    assert {d["status"] for d in decisions if d["bar"] == missed} <= {"missed", "none"}
    stamps = {o[0].split("-")[1] for o in fake_orders(paper.fake)}
    assert missed.replace("-", "") not in stamps
    assert {d["bar"] for d in decisions if d["status"] == "orders"} <= {"2024-01-02", current}
    assert [e["date"] for e in paper.ledger()["equity"]][-2:] == [missed, current]
    assert_follows_the_broker(paper)


def test_a_trade_outside_lstmknn_refuses_the_step_with_a_table_until_adopted(paper):
    paper.init()
    paper.step()
    paper.open_next()
    paper.step()
    paper.open_next()
    paper.fake.trade("AAPL", 7, 30.0)
    before, orders = paper.ledger(), fake_orders(paper.fake)
    rc, out, err = paper.cli("step")
    assert rc == 2
    lines = err.strip().splitlines()
    assert lines[0].startswith("lstmknn: error: positions at Alpaca differ from the ledger; no "
                               "order is sent until they match or a step runs with "
                               "--adopt-broker-positions")
    assert len(lines) == 2 and lines[1].startswith("  AAPL: ledger ")
    assert "difference +7: 1 fill(s) of orders not placed by lstmknn" in lines[1]
    assert paper.ledger() == before and fake_orders(paper.fake) == orders
    rc, text, _ = paper.cli("status")
    assert "REFUSED" in text and "refused at" in text
    out = paper.step("--adopt-broker-positions")
    assert "adopted AAPL: ledger" in out
    assert_follows_the_broker(paper)
    rc, raw, _ = paper.cli("status", "--json")
    rec = json.loads(raw)["broker_account"]["reconciliation"]
    assert rec["state"] == "matched" and {r["action"] for r in rec["rows"]} >= {"adopted"}
    paper.open_next()
    paper.step()  # and trading goes on
    assert_follows_the_broker(paper)


def test_a_reply_lost_after_the_order_went_out_rolls_the_bar_back_and_nothing_is_sent_twice(
        paper):
    paper.init()
    paper.step()
    paper.open_next()
    paper.fake.fault("POST", "/v2/orders", "drop")  # the next order sent loses its reply
    for _ in range(AFTER - 1):
        before = paper.ledger()
        rc, _, err = paper.cli("step")
        if rc:
            break
        paper.open_next()
    else:
        pytest.fail("no order was sent")
    assert rc == 2 and "run the step again later" in err and len(err.strip().splitlines()) == 1
    assert paper.ledger() == before  # the bar was rolled back; its order is at Alpaca
    placed = len(paper.fake.orders())
    paper.step()
    ids = [o["client_order_id"] for o in paper.fake.orders()]
    assert len(ids) == len(set(ids)) >= placed
    assert_follows_the_broker(paper)


def test_missing_keys_or_the_live_endpoint_are_refused_in_one_line_and_create_nothing(
        paper, monkeypatch):
    monkeypatch.delenv("APCA_API_SECRET_KEY")
    rc, _, err = paper.cli("init", "--data", str(paper.csv), "--broker", "alpaca")
    assert rc == 2 and "set APCA_API_KEY_ID and APCA_API_SECRET_KEY" in err
    assert len(err.strip().splitlines()) == 1 and not paper.folder.exists()
    monkeypatch.setenv("APCA_API_SECRET_KEY", "not-the-secret")
    rc, _, err = paper.cli("init", "--data", str(paper.csv), "--broker", "alpaca")
    assert rc == 2 and "check that APCA_API_KEY_ID and APCA_API_SECRET_KEY" in err
    assert not (paper.folder / LEDGER_FILE).exists()
    assert not (paper.folder / BROKER_FILE).exists()
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    monkeypatch.setenv("APCA_API_BASE_URL", "https://api.alpaca.markets/v2")
    rc, _, err = paper.cli("init", "--data", str(paper.csv), "--broker", "alpaca")
    assert rc == 2 and "is Alpaca's live endpoint" in err
    assert not (paper.folder / LEDGER_FILE).exists()
    monkeypatch.setenv("APCA_API_BASE_URL", paper.fake.url)
    paper.init()
    requests = len(paper.fake.state()["requests"])
    monkeypatch.setenv("APCA_API_BASE_URL", "https://API.Alpaca.Markets.")
    rc, _, err = paper.cli("step")
    assert rc == 2 and "is Alpaca's live endpoint" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("APCA_API_BASE_URL", paper.fake.url)
    monkeypatch.delenv("APCA_API_KEY_ID")
    rc, _, err = paper.cli("step")
    assert rc == 2 and "set APCA_API_KEY_ID and APCA_API_SECRET_KEY" in err
    assert len(paper.fake.state()["requests"]) == requests  # nothing was asked of Alpaca
    assert paper.ledger()["equity"] == []
    assert_no_secret(paper)


def test_without_alpaca_py_init_names_the_install_command(paper, monkeypatch):
    alpaca._sdk.cache_clear()
    for name in [m for m in sys.modules if m == "alpaca" or m.startswith("alpaca.")] + ["alpaca"]:
        monkeypatch.setitem(sys.modules, name, None)
    try:
        rc, _, err = paper.cli("init", "--data", str(paper.csv), "--broker", "alpaca")
    finally:
        alpaca._sdk.cache_clear()
    assert rc == 2
    assert err.strip() == ('lstmknn: error: trading through Alpaca needs alpaca-py: '
                           'pip install -e ".[alpaca]"')
    assert not paper.folder.exists()


def test_broker_options_are_refused_where_they_do_not_apply(paper):
    rc, _, err = paper.cli("init", "--data", str(paper.csv), "--broker", "alpaca", "--cash", "5")
    assert rc == 2 and "--cash does not apply to --broker alpaca" in err
    rc, _, err = paper.cli("init", "--data", str(paper.csv), "--config", str(paper.market["cfg"]),
                           "--cache", str(paper.market["cache"]))
    assert rc == 0, err
    assert paper.ledger()["account"]["cash"] == 100_000.0
    rc, _, err = paper.cli("step", "--adopt-broker-positions")
    assert rc == 2 and "applies to accounts trading through a broker" in err
    assert len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- kill -9

KILL_PLAN = ["sync", "intent", "post", "sync", "random", "post"]  # per step, until one completes


def spawn_step(root: Path, env: dict[str, str], kind: str) -> Driver:
    env = dict(env)
    if kind in ("sync", "intent", "post"):
        env[BROKER_PAUSE] = f"after_{kind}=60"
    else:
        env[BAR_PAUSE] = "0.01"
    return Driver([sys.executable, "-m", "lstmknn.engine.cli", "paper", "step", "--root", str(root),
                   "--account", "alp", "--quiet"], env)


def comparable(led: dict) -> dict:
    """A ledger snapshot without the broker's random order ids."""
    out = {t: led[t] for t in (*TRADING_TABLES, "account")}
    out["orders"] = [{k: v for k, v in o.items() if k != "broker_id"} for o in led["orders"]]
    return out


@pytest.mark.slow
def test_kill_9_of_paper_step_leaves_alpaca_with_exactly_the_orders_of_an_uninterrupted_run(
        tmp_path, market, capsys, monkeypatch):
    rng = random.Random(20240103)
    kills = {"sync": 0, "intent": 0, "post": 0, "random": 0}
    outputs: list[str] = []
    with spawned_fake() as fake:
        for name, value in fake_env(fake).items():
            monkeypatch.setenv(name, value)
        for name in (BROKER_PAUSE, BAR_PAUSE):
            monkeypatch.delenv(name, raising=False)
        ref = Paper(tmp_path / "ref", market, fake, capsys)
        ref.reset_fake()
        ref.init()
        killed_root = tmp_path / "killed" / "accounts"
        shutil.copytree(ref.folder, killed_root / "alp")  # the same account: name, nonce
        for _ in range(AFTER):
            ref.step()
            ref.open_next()
        ref.step()
        reference = (fake_orders(fake), comparable(ref.ledger()), store_rows_of(ref.folder))
        assert len(reference[0]) >= 4

        ref.reset_fake()
        ref.write(0)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for k in range(AFTER + 1):
            done = False
            for kind in KILL_PLAN:
                d = spawn_step(killed_root, env, kind)
                if kind == "random":
                    time.sleep(rng.uniform(0.5, 6.0))
                    killed = d.kill()
                else:
                    killed = d.wait_for("err", f"lstmknn-pause after_{kind}") and d.kill()
                outputs += d.text
                if not killed:
                    assert d.finish() == 0, "".join(d.text)
                    done = True
                    break
                kills[kind] += 1
            if not done:
                d = spawn_step(killed_root, env, "random")
                assert d.finish() == 0, "".join(d.text)
                outputs += d.text
            if k < AFTER:
                ref.open_next()
        killed = (fake_orders(fake), comparable(snapshot(killed_root / "alp" / LEDGER_FILE)),
                  store_rows_of(killed_root / "alp"))
    print(f"kill -9 of paper step: {kills}")
    assert sum(kills.values()) >= 16 and kills["post"] >= 3 and kills["sync"] >= AFTER, kills
    assert killed[0] == reference[0]
    assert killed[2] == reference[2]
    for table in reference[1]:
        assert killed[1][table] == reference[1][table], table
    for text in outputs:
        assert SECRET not in text and KEY not in text
    for p in (tmp_path / "killed").rglob("*"):
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes() and KEY.encode() not in p.read_bytes()


def store_rows_of(folder: Path) -> dict:
    store = BrokerStore.open(folder / BROKER_FILE)
    try:
        return store_rows(store)
    finally:
        store.close()
