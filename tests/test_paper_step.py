"""``lstmknn paper step|status|signals|report``: bar-by-bar processing of a paper account."""

from __future__ import annotations

import json

import pytest

from lstmknn.engine.cli import main
from lstmknn.engine.paper.store import LEDGER_FILE, TRADING_TABLES, snapshot
from tests.helpers import write_config, write_csv

dump = snapshot


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    d = tmp_path_factory.mktemp("paper-shared")
    return {"cfg": write_config(d / "small.toml"), "cache": d / "cache"}


@pytest.fixture
def paper(tmp_path, shared, capsys):
    """Run ``lstmknn paper CMD --account NAME --root ROOT ...``; returns (rc, stdout, stderr)."""
    root = tmp_path / "accounts"

    def run(cmd, name="acct", *args):
        capsys.readouterr()
        rc = main(["paper", cmd, "--account", name, "--root", str(root), *args])
        out, err = capsys.readouterr()
        return rc, out, err

    def init(csv, name="acct", *args):
        rc, out, err = run("init", name, "--data", str(csv), "--config", str(shared["cfg"]),
                           "--cash", "10000", "--cache", str(shared["cache"]), *args)
        assert rc == 0, err
        return root / name / LEDGER_FILE

    run.init = init
    run.root = root
    return run



def test_a_step_processes_every_bar_and_a_second_step_changes_nothing(paper, small_csv, sp500):
    path = paper.init(small_csv)
    rc, out, _ = paper("step")
    assert rc == 0 and "processed 420 bars" in out
    first = dump(path)
    assert first["account"]["last_pos"] == 419 and len(first["bars"]) == 420
    assert len(first["signals"]) == len(first["equity"]) > 200
    assert first["equity"][0]["date"] == first["signals"][0]["date"]  # trading starts at the first signal
    assert "filled" in {o["status"] for o in first["orders"]}
    assert len(first["fills"]) > 10  # the cost-aware rule trades only when the forecast pays
    rc, out, _ = paper("step")
    assert rc == 0 and "up to date" in out
    assert dump(path) == first


def test_appending_rows_continues_exactly_as_one_uninterrupted_step(paper, tmp_path, sp500):
    csv = write_csv(sp500.iloc[:300], tmp_path / "grow.csv")
    grown = paper.init(csv, "grow")
    assert paper("step", "grow")[0] == 0
    write_csv(sp500.iloc[:360], csv)
    assert paper("step", "grow")[0] == 0
    write_csv(sp500.iloc[:420], csv)
    assert paper("step", "grow", "--until", "2000-08-15")[0] == 0
    assert dump(grown)["account"]["last_bar"] == "2000-08-15"
    assert paper("step", "grow")[0] == 0
    (tmp_path / "once").mkdir()  # same file name: the symbol is the file's stem
    once = paper.init(write_csv(sp500.iloc[:420], tmp_path / "once" / "grow.csv"), "once")
    assert paper("step", "once")[0] == 0
    a, b = dump(grown), dump(once)
    for t in TRADING_TABLES:
        assert a[t] == b[t], t
    assert a["account"] == b["account"]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda f: f.assign(close=f["close"].where(f.index != f.index[200], 1234.5)), "changed since"),
    (lambda f: f.drop(f.index[150]), "inserted or removed"),
    (lambda f: f.iloc[:250], "rows were removed"),
])
def test_changed_history_is_refused_and_the_ledger_is_left_as_it_was(paper, tmp_path, sp500,
                                                                    edit, message):
    csv = write_csv(sp500.iloc[:300], tmp_path / "hist.csv")
    path = paper.init(csv)
    assert paper("step")[0] == 0
    before = dump(path)
    write_csv(edit(sp500.iloc[:320]), csv)
    rc, _, err = paper("step")
    assert rc == 2 and message in err and "refusing to re-price history" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert dump(path) == before


def test_rows_after_the_last_processed_bar_may_change_before_they_are_processed(paper, tmp_path,
                                                                                sp500):
    csv = write_csv(sp500.iloc[:300], tmp_path / "later.csv")
    paper.init(csv)
    assert paper("step", "acct", "--until", "2000-02-01")[0] == 0
    edited = sp500.iloc[:300].copy()
    edited.loc[edited.index > "2000-02-01", "volume"] += 1.0
    write_csv(edited, csv)
    assert paper("step")[0] == 0


def test_too_little_data_waits_and_processes_nothing(paper, tmp_path, sp500):
    path = paper.init(write_csv(sp500.iloc[:120], tmp_path / "short.csv"))
    rc, out, _ = paper("step")
    assert rc == 0 and "waiting for more data" in out and "too little data" in out
    assert dump(path)["bars"] == []


def test_a_start_date_keeps_earlier_bars_as_history(paper, small_csv):
    path = paper.init(small_csv, "acct", "--start", "2000-03-01")
    rc, out, _ = paper("step", "acct", "--json")
    res = json.loads(out)
    assert rc == 0 and res["processed"] == 420 and res["traded"] == res["signals"]
    led = dump(path)
    assert led["equity"][0]["date"] == "2000-03-01" and led["signals"][0]["date"] == "2000-03-01"
    assert res["history"] == sum(1 for b in led["bars"] if not b["traded"])
    assert led["equity"][0]["value"] == 10_000 and led["equity"][0]["ret"] == 0.0


def test_quiet_step_prints_nothing(paper, small_csv):
    paper.init(small_csv)
    assert paper("step", "acct", "--quiet") == (0, "", "")


def test_status_shows_positions_cash_equity_last_signal_and_open_orders(paper, small_csv):
    path = paper.init(small_csv)
    paper("step")
    rc, out, _ = paper("status", "acct", "--json")
    st = json.loads(out)
    led = dump(path)
    last = led["bars"][-1]["date"]
    assert rc == 0 and st["last_bar"] == last == led["equity"][-1]["date"]
    assert st["cash"] == led["account"]["cash"] and st["equity"] == led["equity"][-1]["value"]
    assert st["last_signal"]["asof"] == last
    assert st["last_signal"]["target"] == led["signals"][-1]["target"]
    held = {p["symbol"]: p["shares"] for p in led["positions"] if p["shares"]}
    assert {p["symbol"]: p["shares"] for p in st["positions"]} == held
    pos_value = sum(p["market_value"] for p in st["positions"])
    assert st["cash"] + pos_value == pytest.approx(st["equity"], rel=1e-12)
    pending = [o for o in led["orders"] if o["status"] == "pending"]
    assert len(st["open_orders"]) == len(pending) and all(o["decided"] == last
                                                         for o in st["open_orders"])
    rc, text, _ = paper("status")
    assert rc == 0 and f"last bar {last}" in text and f"last signal {last}" in text


def test_exported_signals_are_the_signal_command_records(paper, small_csv, shared, capsys):
    paper.init(small_csv)
    paper("step")
    rc, out, _ = paper("signals", "acct", "--jsonl")
    records = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and len(records) > 200
    capsys.readouterr()
    assert main(["signal", "--data", str(small_csv), "--config", str(shared["cfg"]), "--cache",
                 str(shared["cache"]), "--quiet", "--asof", records[-5]["asof"]]) == 0
    live = json.loads(capsys.readouterr().out)
    live.pop("source")
    paper_hash = records[-5].pop("config_hash")  # the account's config has its own cash
    assert live.pop("config_hash") != paper_hash == json.loads(paper("status", "acct", "--json")[1])[
        "config_hash"]
    assert {k: live.get(k) for k in records[-5]} == records[-5]  # the signal adds order fields
    rc, text, _ = paper("signals", "acct", "--format", "csv", "--since", records[-3]["asof"])
    assert rc == 0 and len(text.splitlines()) == 4 and text.startswith("symbol,asof,target")


def test_report_writes_the_tearsheet_of_the_account_so_far(paper, small_csv, tmp_path):
    paper.init(small_csv)
    rc, _, err = paper("report", "acct", "--fast")
    assert rc == 2 and "nothing traded yet" in err
    paper("step")
    out = tmp_path / "t.html"
    rc, text, _ = paper("report", "acct", "--fast", "--out", str(out))
    page = out.read_text()
    assert rc == 0 and str(out) in text and "lstmknn paper account acct" in page
    assert "Models" in page and "Trades" in page


def test_status_of_a_fresh_account_shows_its_cash_and_nothing_else(paper, small_csv):
    paper.init(small_csv)
    rc, out, _ = paper("status", "acct", "--json")
    st = json.loads(out)
    assert rc == 0 and st["equity"] == st["cash"] == 10_000 and st["last_bar"] is None
    assert st["positions"] == [] and st["open_orders"] == [] and st["last_signal"] is None
    rc, text, _ = paper("status")
    assert rc == 0 and "last bar -" in text and "no positions" in text


@pytest.mark.parametrize("option", [["--until", "soon"], ["--wait", "x"]])
def test_bad_step_options_are_one_line_errors(paper, small_csv, option):
    paper.init(small_csv)
    if option[0] == "--wait":  # argparse rejects it before the command runs
        with pytest.raises(SystemExit):
            paper("step", "acct", *option)
        return
    rc, _, err = paper("step", "acct", *option)
    assert rc == 2 and "not a date" in err and "Traceback" not in err


def test_a_step_prints_the_order_it_queued_with_side_quantity_target_and_bar(paper, small_csv):
    path = paper.init(small_csv)
    rc, out, _ = paper("step", "acct", "--until", "2000-06-30")
    led = dump(path)
    last = led["account"]["last_bar"]
    target = led["signals"][-1]["target"]
    pending = [o for o in led["orders"] if o["status"] == "pending"]
    assert rc == 0 and f"target weight {target:+.3f}" in out
    for o in pending:
        side = "buy" if o["size"] > 0 else "sell"
        assert (f"queued {side} {abs(o['size']):.6g} {o['symbol']} (target weight {target:+.3f}), "
                f"decided at the close of {last}, fills at the open of the bar after {last}") in out
    if not pending:
        assert f"no order queued at the close of {last}" in out
    rc, out, _ = paper("step", "acct", "--json")
    res = json.loads(out)
    orders = [o for o in dump(path)["orders"] if o["status"] == "pending"]
    assert [(q["side"], q["quantity"], q["decided"]) for q in res["queued"]] == \
        [("buy" if o["size"] > 0 else "sell", abs(o["size"]), o["decided"]) for o in orders]
    assert res["target"] == dump(path)["signals"][-1]["target"]


@pytest.mark.parametrize("since", ["banana", "2000-13-45", ""])
def test_signals_since_must_be_a_date(paper, small_csv, since):
    paper.init(small_csv)
    rc, out, err = paper("signals", "acct", "--since", since)
    assert rc == 2 and out == "" and "--since" in err and "not a date" in err
    assert len(err.strip().splitlines()) == 1


def test_signals_since_compares_timestamps_not_text(paper, small_csv):
    paper.init(small_csv)
    paper("step", "acct", "--quiet")
    rc, out, _ = paper("signals", "acct", "--jsonl", "--since", "2000-8-1")  # text: after "2000-08"
    dates = [json.loads(line)["asof"] for line in out.splitlines()]
    assert rc == 0 and dates and dates[0] == "2000-08-01" and dates == sorted(dates)
