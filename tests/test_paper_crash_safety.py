"""``kill -9`` of ``paper step`` at random moments loses nothing; one account, one stepper."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from lstmknn.engine.cli import main
from lstmknn.engine.paper.step import PAUSE_ENV
from lstmknn.engine.paper.store import LEDGER_FILE, TRADING_TABLES, open_ledger, snapshot
from tests.helpers import staggered_universe, write_config, write_csv, write_long_csv

KILLS = 16
UNIVERSE_KILLS = 10
RANK = {"walk_forward": {"train_window": 80, "step": 20}, "lstm": {"mc_passes": 3},
        "model": {"scope": "pooled"}, "signal": {"sizing": "rank", "top_k": 2, "bottom_k": 1}}




@pytest.fixture
def accounts(tmp_path, sp500):
    """Two accounts on the same ~420-row CSV and config, each with its own fold cache."""
    csv = write_csv(sp500.iloc[:420], tmp_path / "spx.csv")
    cfg = write_config(tmp_path / "small.toml")
    root = tmp_path / "accounts"
    for name in ("ref", "crash"):
        assert main(["paper", "init", "--root", str(root), "--account", name, "--data", str(csv),
                     "--config", str(cfg)]) == 0
    return root


@pytest.fixture
def universe_accounts(tmp_path):
    """Two pooled rank accounts on the same 5-symbol universe (staggered listings), sharing
    one fold cache: the reference trains it, the killed steps find their models there."""
    frame = staggered_universe(5, 200, seed=4, starts=(0, 10, 20, 30, 40))
    csv = write_long_csv(frame, tmp_path / "universe.csv")
    cfg = write_config(tmp_path / "rank.toml", RANK)
    root = tmp_path / "accounts"
    for name in ("ref", "crash"):
        assert main(["paper", "init", "--root", str(root), "--account", name, "--data", str(csv),
                     "--config", str(cfg), "--cache", str(tmp_path / "cache")]) == 0
    return root


def spawn(root, name, pause):
    env = {**os.environ, PAUSE_ENV: str(pause)}
    return subprocess.Popen(
        [sys.executable, "-m", "lstmknn.engine.cli", "paper", "step", "--root", str(root), "--account",
         name, "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def last_pos(path):
    ledger = open_ledger(path)
    try:
        return ledger.account()["last_pos"]
    finally:
        ledger.close()



def assert_consistent(led):
    """Invariants of a committed ledger: every traded bar has its equity row, orders are
    pending only for the last bar, every fill belongs to an order executed that bar (a bar
    has one row per symbol with data there)."""
    traded = list(dict.fromkeys(b["date"] for b in led["bars"] if b["traded"]))
    assert [e["date"] for e in led["equity"]] == traded
    assert led["account"]["last_pos"] == len({b["pos"] for b in led["bars"]}) - 1
    last = led["account"]["last_bar"]
    assert all(o["decided"] == last for o in led["orders"] if o["status"] == "pending")
    executed = {o["id"]: o["executed_on"] for o in led["orders"]}
    assert all(executed[f["order_id"]] == f["date"] for f in led["fills"])
    assert led["integrity"] == "ok"


def wait_for_commit(proc, path, before, limit=20.0):
    """Seconds until ``proc`` commits a bar past ``before`` (or exits)."""
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < limit and last_pos(path) == before:
        time.sleep(0.01)
    return time.monotonic() - t0


def kill(proc):
    """SIGKILL ``proc``; False when it had already finished."""
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def test_kill_9_at_random_moments_then_stepping_again_gives_the_uninterrupted_ledger(accounts):
    t0 = time.monotonic()
    assert main(["paper", "step", "--root", str(accounts), "--account", "ref", "--quiet"]) == 0
    reference = dump(accounts / "ref" / LEDGER_FILE)
    path = accounts / "crash" / LEDGER_FILE
    rng = random.Random(20240601)
    kills = mid_run = 0
    startup = 2.0  # seconds from spawn to the first commit, measured below
    while kills < KILLS and time.monotonic() - t0 < 80:
        before = last_pos(path)
        proc = spawn(accounts, "crash", pause=0.02)
        if kills % 2:  # a random moment: start-up, training, fold cache writes or bars
            time.sleep(rng.uniform(0.1, 1.15 * startup))
        else:  # a random moment just after bars start being committed
            startup = wait_for_commit(proc, path, before)
            time.sleep(rng.uniform(0.0, 0.12))
        if not kill(proc):
            assert proc.returncode == 0, proc.stderr.read().decode()
            break
        kills += 1
        mid_run += last_pos(path) != before
        assert_consistent(dump(path))
    assert kills >= 15, f"only {kills} kills before the account was done"
    assert main(["paper", "step", "--root", str(accounts), "--account", "crash", "--quiet"]) == 0
    survived = dump(path)
    for table in (*TRADING_TABLES, "account", "integrity"):
        assert survived[table] == reference[table], table
    assert mid_run >= 5
    print(f"survived {kills} kill -9 ({mid_run} after bars were being committed) "
          f"in {time.monotonic() - t0:.0f}s")


def test_kill_9_at_random_moments_of_a_five_symbol_rank_account_gives_the_uninterrupted_ledger(
        universe_accounts):
    root = universe_accounts
    t0 = time.monotonic()
    assert main(["paper", "step", "--root", str(root), "--account", "ref", "--quiet"]) == 0
    reference = dump(root / "ref" / LEDGER_FILE)
    assert len({s["symbol"] for s in reference["signals"]}) == 5
    path = root / "crash" / LEDGER_FILE
    rng = random.Random(20240602)
    kills = mid_run = 0
    startup = 2.0
    while kills < UNIVERSE_KILLS and time.monotonic() - t0 < 90:
        before = last_pos(path)
        proc = spawn(root, "crash", pause=0.02)
        if kills % 3 == 2:  # a random moment: start-up, the pooled walk-forward or bars
            time.sleep(rng.uniform(0.1, 1.15 * startup))
        else:  # a random moment just after bars start being committed
            startup = wait_for_commit(proc, path, before)
            time.sleep(rng.uniform(0.0, 0.15))
        if not kill(proc):
            assert proc.returncode == 0, proc.stderr.read().decode()
            break
        kills += 1
        mid_run += last_pos(path) != before
        assert_consistent(dump(path))
    assert kills >= 6 and mid_run >= 3, (kills, mid_run)
    assert main(["paper", "step", "--root", str(root), "--account", "crash", "--quiet"]) == 0
    survived = dump(path)
    for table in (*TRADING_TABLES, "account", "integrity"):
        assert survived[table] == reference[table], table
    print(f"5-symbol rank account survived {kills} kill -9 ({mid_run} after bars were being "
          f"committed) in {time.monotonic() - t0:.0f}s")


def test_a_second_step_on_a_busy_account_is_refused_until_the_first_is_gone(accounts, capsys):
    path = accounts / "crash" / LEDGER_FILE
    proc = spawn(accounts, "crash", pause=0.05)
    try:
        wait_for_commit(proc, path, -1)
        assert proc.poll() is None
        capsys.readouterr()
        args = ["paper", "step", "--root", str(accounts), "--account", "crash", "--quiet"]
        assert main([*args, "--wait", "0.3"]) == 2
        err = capsys.readouterr().err
        assert "account crash is busy" in err and len(err.strip().splitlines()) == 1
        os.kill(proc.pid, signal.SIGKILL)  # the kernel drops the dead holder's lock
        proc.wait()
        assert main([*args, "--wait", "5"]) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_consistent(dump(path))


def dump(path):
    return snapshot(path, integrity=True)
