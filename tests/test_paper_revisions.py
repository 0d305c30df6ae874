"""Real data feeds: revised history accepted from a date (logged, what was traded kept) and
sources that keep a rolling window (rows the account still needs must remain)."""

from __future__ import annotations

import json

import pytest

from lstmknn.data.loader import load_prices
from lstmknn.engine.asof import data_hash
from lstmknn.engine.cli import main
from lstmknn.engine.paper.store import LEDGER_FILE, snapshot
from tests.helpers import write_config, write_csv

TRADED = ("signals", "orders", "fills", "equity")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    d = tmp_path_factory.mktemp("revisions-shared")
    return {"cfg": write_config(d / "small.toml"), "cache": d / "cache"}


@pytest.fixture
def paper(tmp_path, shared, capsys):
    root = tmp_path / "accounts"

    def run(*args):
        capsys.readouterr()
        rc = main(["paper", *args, "--account", "acct", "--root", str(root)])
        out, err = capsys.readouterr()
        return rc, out, err

    def init(csv):
        assert run("init", "--data", str(csv), "--config", str(shared["cfg"]), "--cache",
                   str(shared["cache"]))[0] == 0
        return root / "acct" / LEDGER_FILE

    run.init = init
    return run


def revise(frame, day, factor=1.01):
    out = frame.copy()
    out.loc[day, ["open", "high", "low", "close"]] *= factor
    return out


def test_accepting_revised_history_logs_it_keeps_the_trades_and_later_decisions_use_it(
        paper, tmp_path, sp500):
    csv = write_csv(sp500.iloc[:300], tmp_path / "feed.csv")
    path = paper.init(csv)
    assert paper("step", "--quiet")[0] == 0
    before = snapshot(path)
    day = sp500.index[280]
    when = day.strftime("%Y-%m-%d")
    write_csv(revise(sp500.iloc[:320], day), csv)
    rc, _, err = paper("step")
    assert rc == 2 and f"the bar of {when} changed" in err
    assert f"--accept-revisions-from {when}" in err and snapshot(path) == before
    rc, out, err = paper("step", "--accept-revisions-from", when)
    assert rc == 0, err
    assert f"accepted revised history from {when}" in out and "1 rows changed" in out
    after = snapshot(path)
    for table in TRADED:  # what was traded at the time stays as it was
        assert after[table][: len(before[table]) - (table == "orders")] == \
            before[table][: len(before[table]) - (table == "orders")]
    assert len(after["equity"]) == len(before["equity"]) + 20
    new_close = float(load_prices(csv).frame["close"].iloc[280])
    assert after["bars"][280]["close"] == new_close != before["bars"][280]["close"]
    st = json.loads(paper("status", "--json")[1])
    [rev] = st["revisions"]
    assert rev["from_date"] == when and rev["through_date"] == before["account"]["last_bar"]
    assert rev["rows_changed"] == 1 and rev["rows_before"] == rev["rows_after"] == 20
    assert rev["old_hash"] != rev["new_hash"]
    first_new = json.loads(after["signals"][len(before["signals"])]["record"])
    assert first_new["data_hash"] == data_hash(load_prices(csv).frame, 300)  # revised data
    rc, out, _ = paper("step")
    assert rc == 0 and "up to date" in out  # the revised rows are the reference now


def test_revisions_before_the_accepted_date_are_still_refused_and_nothing_is_logged(
        paper, tmp_path, sp500):
    csv = write_csv(sp500.iloc[:300], tmp_path / "feed.csv")
    path = paper.init(csv)
    assert paper("step", "--quiet")[0] == 0
    before = snapshot(path)
    early, late = sp500.index[250], sp500.index[280]
    write_csv(revise(revise(sp500.iloc[:300], early), late), csv)
    rc, _, err = paper("step", "--accept-revisions-from", late.strftime("%Y-%m-%d"))
    assert rc == 2 and f"the bar of {early:%Y-%m-%d} changed" in err
    assert len(err.strip().splitlines()) == 1
    assert snapshot(path) == before and json.loads(paper("status", "--json")[1])["revisions"] == []


def test_a_bad_revision_date_is_a_one_line_error(paper, small_csv):
    paper.init(small_csv)
    rc, _, err = paper("step", "--accept-revisions-from", "banana")
    assert rc == 2 and "not a date" in err and len(err.strip().splitlines()) == 1


def test_a_rolling_source_that_drops_old_rows_keeps_trading(paper, tmp_path, sp500):
    csv = write_csv(sp500.iloc[:300], tmp_path / "feed.csv")
    path = paper.init(csv)
    assert paper("step", "--quiet")[0] == 0
    write_csv(sp500.iloc[30:340], csv)  # the vendor keeps the last 310 rows
    rc, out, err = paper("step", "--json")
    res = json.loads(out)
    assert rc == 0, err
    assert res["dropped"] == 30 and res["traded"] == res["signals"] == 40
    led = snapshot(path)
    assert led["account"]["last_bar"] == f"{sp500.index[339]:%Y-%m-%d}"
    assert [b["date"] for b in led["bars"]] == [f"{t:%Y-%m-%d}" for t in sp500.index[:340]]


def test_a_rolling_source_that_changed_a_row_it_still_holds_is_refused(paper, tmp_path, sp500):
    csv = write_csv(sp500.iloc[:300], tmp_path / "feed.csv")
    path = paper.init(csv)
    assert paper("step", "--quiet")[0] == 0
    before = snapshot(path)
    write_csv(revise(sp500.iloc[30:340], sp500.index[200]), csv)
    rc, _, err = paper("step")
    assert rc == 2 and f"the bar of {sp500.index[200]:%Y-%m-%d} changed" in err
    assert snapshot(path) == before


def test_a_rolling_source_too_short_for_the_next_decision_is_refused_saying_what_it_needs(
        paper, tmp_path, sp500):
    csv = write_csv(sp500.iloc[:300], tmp_path / "feed.csv")
    path = paper.init(csv)
    assert paper("step", "--quiet")[0] == 0
    before = snapshot(path)
    write_csv(sp500.iloc[200:340], csv)  # 100 rows before the next bar
    rc, _, err = paper("step")
    assert rc == 2 and "holds 100 rows before the next bar to decide" in err
    assert "the account needs" in err and "train_window 150" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert snapshot(path) == before
