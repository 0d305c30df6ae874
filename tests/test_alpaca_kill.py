"""kill -9 at random moments of a broker step (between a POST and its commit among them): the
fake broker ends with exactly the orders of an uninterrupted run, and the store equals it."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import pytest

from lstmknn.engine.paper.remote import PAUSE_ENV
from tests.fake_alpaca import (
    KEY,
    SECRET,
    AlpacaAccount,
    FakeControl,
    fake_env,
    fake_orders,
    spawned_fake,
    store_rows,
)
from tests.helpers import Driver

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = ("AAPL", "MSFT", "SPY")
NUMBER = "PA0000000042"
NONCE = "c0ffee00"
# (bar, targets at its close, closes, next session's opens, fill fractions at that open)
BARS = [
    ("2024-01-02", {"AAPL": 0.3, "MSFT": 0.2, "SPY": -0.1},
     {"AAPL": 100.0, "MSFT": 200.0, "SPY": 400.0}, {"AAPL": 101.0, "MSFT": 199.0, "SPY": 401.0},
     None),
    ("2024-01-03", {"AAPL": -0.2, "MSFT": 0.25, "SPY": 0.1},
     {"AAPL": 102.0, "MSFT": 198.0, "SPY": 402.0}, {"AAPL": 103.0, "MSFT": 197.0, "SPY": 399.0},
     {"MSFT": 0.5}),
    ("2024-01-04", {"AAPL": 0.1, "MSFT": -0.15, "SPY": 0.2},
     {"AAPL": 104.0, "MSFT": 196.0, "SPY": 398.0}, {"AAPL": 104.5, "MSFT": 195.0, "SPY": 397.0},
     None),
    ("2024-01-05", {"AAPL": 0.25, "MSFT": 0.1, "SPY": -0.2},
     {"AAPL": 105.0, "MSFT": 194.0, "SPY": 396.0}, {"AAPL": 106.0, "MSFT": 193.0, "SPY": 395.0},
     {"AAPL": 0.4}),
    ("2024-01-08", {"AAPL": -0.1, "MSFT": 0.3, "SPY": 0.05},
     {"AAPL": 107.0, "MSFT": 192.0, "SPY": 394.0}, {"AAPL": 108.0, "MSFT": 191.0, "SPY": 393.0},
     None),
    ("2024-01-09", {"AAPL": 0.0, "MSFT": 0.0, "SPY": 0.1},
     {"AAPL": 109.0, "MSFT": 190.0, "SPY": 392.0}, {"AAPL": 110.0, "MSFT": 189.0, "SPY": 391.0},
     None),
]
# Kill plan per bar: at the pause after the intents, after POSTs, or at a random moment.
PLAN = ["intent", "post", "random", "post", "random", "post"]


def driver_args(spec: dict) -> list[str]:
    return [sys.executable, "-m", "tests.broker_driver", json.dumps(spec)]


def reference_run(fake: FakeControl, folder: Path) -> tuple[list, dict]:
    fake.reset(account_number=NUMBER)
    acct = AlpacaAccount(folder, fake, SYMBOLS, nonce=NONCE)
    for bar, targets, closes, opens, fill in BARS:
        acct.step(bar, targets, closes)
        fake.advance(opens, fill)
    out = fake_orders(fake), store_rows(acct.store)
    acct.store.close()
    return out


@pytest.mark.slow
def test_kill_nine_at_random_moments_leaves_exactly_the_orders_of_an_uninterrupted_run(tmp_path):
    rng = random.Random(20240102)
    kills = {"intent": 0, "post": 0, "random": 0}
    outputs: list[str] = []
    with spawned_fake() as fake:
        ref_orders, ref_store = reference_run(fake, tmp_path / "reference")
        assert len(ref_orders) >= 18 and any(o[5] == "expired" for o in ref_orders)

        fake.reset(account_number=NUMBER)
        folder = tmp_path / "killed"
        AlpacaAccount(folder, fake, SYMBOLS, nonce=NONCE).store.close()
        base_env = {**os.environ, **fake_env(fake), "PYTHONPATH": str(ROOT)}
        base_env.pop(PAUSE_ENV, None)
        for bar, targets, closes, opens, fill in BARS:
            spec = {"folder": str(folder), "account": "acct", "symbols": list(SYMBOLS),
                    "bar": bar, "targets": targets, "closes": closes}
            done = False
            for kind in PLAN:
                env = dict(base_env)
                if kind != "random":
                    env[PAUSE_ENV] = f"after_{kind}=60"
                d = Driver(driver_args(spec), env)
                if kind == "random":
                    d.wait_for("out", "ready")
                    time.sleep(rng.uniform(0.0, 0.25))
                    killed = d.kill()
                else:
                    killed = d.wait_for("err", f"lstmknn-pause after_{kind}") and d.kill()
                if not killed:
                    assert d.finish() == 0, "".join(d.text)
                    done = True
                kills[kind] += killed
                outputs += d.text
                if done:
                    break
            if not done:
                d = Driver(driver_args(spec), base_env)
                assert d.finish() == 0, "".join(d.text)
                outputs += d.text
            fake.advance(opens, fill)
        killed_orders = fake_orders(fake)
        from lstmknn.engine.paper.broker_store import BROKER_FILE, BrokerStore

        store = BrokerStore.open(folder / BROKER_FILE)
        killed_store = store_rows(store)
        store.close()
    assert sum(kills.values()) >= 16 and kills["post"] >= 6 and kills["intent"] >= 3, kills
    assert killed_orders == ref_orders
    assert killed_store == ref_store
    for text in outputs:
        assert SECRET not in text and KEY not in text
    for p in folder.rglob("*"):
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes() and KEY.encode() not in p.read_bytes()
