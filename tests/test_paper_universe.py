"""Universe paper accounts: many symbols, one ledger, shared capital, the backtest's equity."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lstmknn.engine.backtest import load_data, run_backtest
from lstmknn.engine.cache import FoldCache
from lstmknn.engine.cli import main
from lstmknn.engine.config import load_config
from lstmknn.engine.decisions import decide
from lstmknn.engine.paper.accounts import open_account
from lstmknn.engine.paper.report import ledger_frames
from lstmknn.engine.paper.store import LEDGER_FILE, snapshot
from lstmknn.engine.params import execution_params
from lstmknn.strategies.execution import execute
from tests.helpers import staggered_universe, write_config, write_long_csv

VALUE_RTOL = 1e-9
FAST = {"walk_forward": {"train_window": 80, "step": 20}, "lstm": {"mc_passes": 3},
        "execution": {"cash": 10_000}}
THRESHOLD = FAST
POOLED_RANK = {**FAST, "model": {"scope": "pooled"},
               "signal": {"sizing": "rank", "top_k": 2, "bottom_k": 1}}
# S0000 trades throughout, S0001..S0003 list later, S0002 stops 19 bars before the end;
# S0001 misses bar 140 and S0000 bar 160 (no order is sent for a bar a symbol lacks).
STARTS, ENDS, GAPS = (0, 15, 30, 45), (199, 199, 180, 199), (("S0001", 140), ("S0000", 160))


@pytest.fixture(scope="module")
def universe(tmp_path_factory):
    d = tmp_path_factory.mktemp("universe")
    frame = staggered_universe(starts=STARTS, ends=ENDS)
    stamps = sorted(frame["date"].unique())
    for sym, at in GAPS:
        frame = frame[(frame["symbol"] != sym) | (frame["date"] != stamps[at])]
    return {"dir": d, "frame": frame, "csv": write_long_csv(frame, d / "uni.csv"),
            "dates": sorted(frame["date"].unique())}


@pytest.fixture
def paper(tmp_path, capsys):
    root = tmp_path / "accounts"

    def run(cmd, name, *args):
        capsys.readouterr()
        rc = main(["paper", cmd, "--account", name, "--root", str(root), *args])
        out, err = capsys.readouterr()
        return rc, out, err

    run.root = root
    return run


def cfg_file(universe, name, extra):
    return write_config(universe["dir"] / f"{name}.toml", extra)


def init(paper, universe, name, cfg, *data):
    rc, out, err = paper("init", name, "--data", *(data or [str(universe["csv"])]), "--config",
                         str(cfg), "--cache", str(universe["dir"] / f"cache-{cfg.stem}"))
    assert rc == 0, err
    return out


def compare(paper_frames, result):
    """Max relative difference of equity, fill sizes and prices; every fill row must match."""
    eq = paper_frames["equity"]
    assert list(eq["date"]) == list(result.equity["date"])
    rel = float(np.max(np.abs(eq["value"].to_numpy() / result.equity["value"].to_numpy() - 1)))
    trades = result.trades.reset_index(drop=True)
    pd.testing.assert_frame_equal(paper_frames["trades"], trades, rtol=VALUE_RTOL,
                                  check_dtype=False)
    assert rel < VALUE_RTOL, rel
    return rel


@pytest.mark.parametrize("name, extra", [("threshold", THRESHOLD), ("pooled_rank", POOLED_RANK)])
def test_a_universe_account_stepped_bar_by_bar_reproduces_the_backtest(paper, universe, name,
                                                                        extra):
    cfg = cfg_file(universe, name, extra)
    init(paper, universe, "uni", cfg)
    dates = [f"{d:%Y-%m-%d}" for d in universe["dates"]]
    # Trading starts at bar 117 (S0000's warm-up + train_window), S0003 decides from bar 162,
    # S0002 stops at bar 180: one-bar steps from the first decisions on, then longer ones, none
    # ending on S0002's last two bars (the exchange closes a stopping symbol at its last open;
    # an account applies the same close-out when a step's data show the stop, and a step that
    # ends on the bar before learns of it only afterwards).
    for until in [dates[100], *dates[116:128], dates[150], dates[170], None]:
        rc, _, err = paper("step", "uni", "--quiet", *(["--until", until] if until else []))
        assert rc == 0, err
    _, ledger = open_account(paper.root, "uni")
    try:
        frames = ledger_frames(ledger)
    finally:
        ledger.close()
    config = load_config(cfg)
    run = run_backtest([str(universe["csv"])], config, engine="vectorized",
                       cache_dir=universe["dir"] / f"cache-{cfg.stem}")
    assert run.predictions["symbol"].nunique() == 4 and len(frames["trades"]) > 20
    vec = compare(frames, run.result)
    prices = {d.symbol: d.frame for d in load_data([str(universe["csv"])])}
    bt = compare(frames, execute(prices, run.predictions, execution_params(config),
                                 engine="backtrader"))
    sig = frames["signals"].set_index(["date", "symbol"]).sort_index()
    pred = run.predictions.set_index(["date", "symbol"]).sort_index().loc[sig.index]
    np.testing.assert_array_equal(sig["target"], pred["target"])
    held = frames["positions"]
    assert (held != 0).sum().gt(0).sum() >= 3  # the book held most symbols at some point
    orders = snapshot(paper.root / "uni" / LEDGER_FILE)["orders"]
    expired = [(o["symbol"], o["decided"]) for o in orders if o["status"] == "expired"]
    if name == "threshold":  # decided at the close before S0001's missing bar, and at
        # S0002's last bar once it was sold out (its data stop): no bar to fill at, expired
        assert expired == [("S0001", dates[139]), ("S0002", dates[180])]
    print(f"universe parity {name}: max rel equity diff vs vectorized {vec:.1e}, vs backtrader "
          f"{bt:.1e}; {len(frames['equity'])} bars, {len(frames['trades'])} fill reports, "
          f"{len(expired)} expired orders")


def test_status_and_report_show_the_book_per_symbol_and_in_total(paper, universe, tmp_path):
    init(paper, universe, "uni", cfg_file(universe, "pooled_rank", POOLED_RANK))
    dates = [f"{d:%Y-%m-%d}" for d in universe["dates"]]
    assert paper("step", "uni", "--quiet", "--until", dates[165])[0] == 0
    rc, out, _ = paper("status", "uni", "--json")
    st = json.loads(out)
    led = snapshot(paper.root / "uni" / LEDGER_FILE)
    assert rc == 0 and st["symbols"] == ["S0000", "S0001", "S0002", "S0003"]
    assert [b["symbol"] for b in st["book"]] == st["symbols"]
    held = {p["symbol"]: p["shares"] for p in led["positions"] if p["shares"]}
    assert {b["symbol"]: b["shares"] for b in st["book"] if b["shares"]} == held and held
    total = st["cash"] + sum(b["market_value"] for b in st["book"])
    assert total == pytest.approx(st["equity"], rel=1e-12)
    assert st["equity"] == led["equity"][-1]["value"]
    last = {s["symbol"]: s for s in led["signals"] if s["date"] == dates[165]}
    assert {b["symbol"]: b["target"] for b in st["book"]} == {s: last[s]["target"] for s in last}
    rc, text, _ = paper("status", "uni")
    assert rc == 0 and "4 symbols" in text and "gross" in text
    assert all(any(line.strip().startswith(s) for line in text.splitlines()) for s in held)
    out_html = tmp_path / "uni.html"
    rc, _, err = paper("report", "uni", "--fast", "--out", str(out_html))
    page = out_html.read_text()
    assert rc == 0, err
    assert "lstmknn paper account uni (4 symbols)" in page and "Equal-weight buy" in page


def edit(universe, tmp_path, change):
    """The universe file with ``change`` applied to its long frame, at a new path."""
    return write_long_csv(change(universe["frame"].copy()), tmp_path / "uni.csv")


@pytest.mark.parametrize("change, message", [
    (lambda f: f[f["symbol"] != "S0001"], "no longer holds S0001"),
    (lambda f: pd.concat([f, f[f["symbol"] == "S0000"].assign(symbol="NEW")]),
     "now holds NEW, which the account does not trade"),
    (lambda f: f.assign(symbol=f["symbol"].replace({"S0003": "S0009"})),
     "no longer holds S0003 and now holds S0009"),
])
def test_a_source_that_lost_gained_or_renamed_a_symbol_is_refused_even_accepting_revisions(
        paper, universe, tmp_path, change, message):
    csv = edit(universe, tmp_path, lambda f: f)
    init(paper, universe, "uni", cfg_file(universe, "threshold", THRESHOLD), str(csv))
    dates = [f"{d:%Y-%m-%d}" for d in universe["dates"]]
    assert paper("step", "uni", "--quiet", "--until", dates[120])[0] == 0
    before = snapshot(paper.root / "uni" / LEDGER_FILE)
    edit(universe, tmp_path, change)
    for extra in ([], ["--accept-revisions-from", dates[0]]):
        rc, _, err = paper("step", "uni", *extra)
        assert rc == 2 and message in err and "under another's name" in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert snapshot(paper.root / "uni" / LEDGER_FILE) == before


def test_a_single_symbol_file_whose_symbol_changed_is_not_traded_under_the_old_name(
        paper, universe, tmp_path):
    one = universe["frame"][universe["frame"]["symbol"] == "S0000"]
    csv = write_long_csv(one, tmp_path / "one.csv")
    init(paper, universe, "one", cfg_file(universe, "threshold", THRESHOLD), str(csv))
    assert paper("step", "one", "--quiet", "--until", f"{universe['dates'][120]:%Y-%m-%d}")[0] == 0
    write_long_csv(one.assign(symbol="BBB"), csv)  # same file, another symbol's prices
    rc, _, err = paper("step", "one", "--accept-revisions-from", "2000-01-03")
    assert rc == 2 and "no longer holds S0000 and now holds BBB" in err


def test_name_equals_path_sources_give_an_account_that_steps(paper, universe, tmp_path,
                                                             monkeypatch):
    frame = universe["frame"]
    paths = []
    for sym, name in (("S0000", "AAA"), ("S0001", "BBB")):
        part = frame[frame["symbol"] == sym].drop(columns="symbol")
        paths.append(f"{name}={write_long_csv(part, tmp_path / f'{sym}.csv').name}")
    monkeypatch.chdir(tmp_path)  # relative paths, resolved at init
    out = init(paper, universe, "named", cfg_file(universe, "threshold", THRESHOLD), *paths)
    assert "2 symbols (AAA, BBB)" in out
    monkeypatch.chdir(universe["dir"])  # steps run from anywhere
    rc, out, err = paper("step", "named", "--until", f"{universe['dates'][140]:%Y-%m-%d}")
    assert rc == 0 and "traded" in out, err
    st = json.loads(paper("status", "named", "--json")[1])
    assert st["symbols"] == ["AAA", "BBB"] and st["sources"][0] == f"AAA={tmp_path / 'S0000.csv'}"
    assert {s["symbol"] for s in snapshot(paper.root / "named" / LEDGER_FILE)["signals"]} == \
        {"AAA", "BBB"}
    rc, _, err = paper("init", "solo", "--data", f"CCC={tmp_path / 'S0000.csv'}", "--config",
                       str(cfg_file(universe, "threshold", THRESHOLD)))
    assert rc == 0, err
    assert json.loads(paper("status", "solo", "--json")[1])["symbols"] == ["CCC"]


@pytest.mark.parametrize("extra, message", [
    ({"model": {"scope": "pooled"}}, "`model.scope` = \"pooled\" needs two or more symbols"),
    ({"signal": {"sizing": "rank", "top_k": 1}}, "`signal.sizing` = \"rank\""),
    ({"signal": {"sizing": "rank", "top_k": 4, "bottom_k": 1}}, "must be <= the number"),
])
def test_pooled_or_rank_configs_the_universe_cannot_fill_are_refused_at_init(
        paper, universe, tmp_path, extra, message):
    one = write_long_csv(universe["frame"][universe["frame"]["symbol"] == "S0000"],
                         tmp_path / "one.csv")
    data = [str(one)] if "model" in extra or extra["signal"]["top_k"] == 1 else \
        [str(universe["csv"])]
    rc, _, err = paper("init", "bad", "--data", *data, "--config",
                       str(write_config(tmp_path / "bad.toml", extra)))
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not (paper.root / "bad" / LEDGER_FILE).exists()


def test_a_revised_row_of_one_symbol_is_refused_naming_it_and_accepted_from_a_date(
        paper, universe, tmp_path):
    csv = edit(universe, tmp_path, lambda f: f)
    init(paper, universe, "uni", cfg_file(universe, "pooled_rank", POOLED_RANK), str(csv))
    dates = [f"{d:%Y-%m-%d}" for d in universe["dates"]]
    assert paper("step", "uni", "--quiet", "--until", dates[140])[0] == 0
    path = paper.root / "uni" / LEDGER_FILE
    before = snapshot(path)

    def revise(f):
        at = (f["symbol"] == "S0001") & (f["date"] == universe["dates"][135])
        f.loc[at, ["open", "high", "low", "close"]] *= 1.01
        return f

    edit(universe, tmp_path, revise)
    rc, _, err = paper("step", "uni")
    assert rc == 2 and f"S0001 ({csv}): the bar of {dates[135]} changed" in err
    assert snapshot(path) == before
    rc, out, err = paper("step", "uni", "--accept-revisions-from", dates[130], "--until",
                         dates[150])
    assert rc == 0 and "1 rows changed" in out, err
    after = snapshot(path)
    for table in ("signals", "fills", "equity"):  # what was traded at the time stays
        assert after[table][: len(before[table])] == before[table]
    assert len(after["equity"]) == len(before["equity"]) + 10
    [rev] = json.loads(paper("status", "uni", "--json")[1])["revisions"]
    assert rev["rows_changed"] == 1  # of 4 symbols x 11 bars, less S0001's missing bar 140
    assert rev["rows_before"] == rev["rows_after"] == 4 * 11 - 1
    assert paper("step", "uni", "--quiet")[0] == 0


def test_a_symbol_that_stops_while_stepping_bar_by_bar_is_held_at_its_last_close(
        paper, universe):
    init(paper, universe, "uni", cfg_file(universe, "threshold", THRESHOLD))
    dates = [f"{d:%Y-%m-%d}" for d in universe["dates"]]
    assert paper("step", "uni", "--quiet", "--until", dates[178])[0] == 0
    for until in dates[179:184]:
        assert paper("step", "uni", "--quiet", "--until", until)[0] == 0
    led = snapshot(paper.root / "uni" / LEDGER_FILE)
    last = {b["symbol"]: b for b in led["bars"]}
    assert last["S0002"]["date"] == dates[180] and last["S0000"]["date"] == dates[183]
    assert all(o["status"] == "expired" for o in led["orders"]
               if o["symbol"] == "S0002" and o["decided"] == dates[180])
    st = json.loads(paper("status", "uni", "--json")[1])
    book = {b["symbol"]: b for b in st["book"]}
    assert book["S0002"]["stale"] and not book["S0000"]["stale"]
    assert book["S0002"]["close"] == last["S0002"]["close"]
    shares = json.loads(led["equity"][-1]["positions"]).get("S0002", 0.0)
    assert book["S0002"]["shares"] == shares
    assert shares == json.loads(led["equity"][-3]["positions"]).get("S0002", 0.0)
    assert shares  # it was held when it stopped: it cannot be sold without a bar
    assert f"(no bar since {dates[180]})" in paper("status", "uni")[1]


def test_the_reading_options_given_at_init_are_used_by_every_step(paper, universe, tmp_path):
    frame = universe["frame"].assign(**{"adj close": lambda f: f["close"] * 0.5})
    csv = tmp_path / "adjusted.csv"
    frame.to_csv(csv, index=False, sep=";", date_format="%Y-%m-%d")
    rc, _, err = paper("init", "adj", "--data", str(csv), "--sep", ";", "--price-column",
                       "adj close", "--config", str(cfg_file(universe, "threshold", THRESHOLD)),
                       "--cache", str(universe["dir"] / "cache-threshold"))
    assert rc == 0, err
    dates = [f"{d:%Y-%m-%d}" for d in universe["dates"]]
    assert paper("step", "adj", "--quiet", "--until", dates[120])[0] == 0
    assert paper("step", "adj", "--quiet", "--until", dates[121])[0] == 0  # verifies the rows
    bars = snapshot(paper.root / "adj" / LEDGER_FILE)["bars"]
    want = frame.set_index(["date", "symbol"])["adj close"]
    assert bars and all(b["close"] == want[pd.Timestamp(b["date"]), b["symbol"]] for b in bars)


def test_after_an_accepted_revision_the_rank_book_continues_from_what_the_account_holds(
        paper, universe, tmp_path):
    csv = edit(universe, tmp_path, lambda f: f)
    cfg = cfg_file(universe, "pooled_rank", POOLED_RANK)
    init(paper, universe, "uni", cfg, str(csv))
    stamps = universe["dates"]
    dates = [f"{d:%Y-%m-%d}" for d in stamps]
    assert paper("step", "uni", "--quiet", "--until", dates[140])[0] == 0

    def revise(f):
        at = (f["symbol"] == "S0001") & f["date"].between(stamps[120], stamps[139])
        f.loc[at, ["open", "high", "low", "close"]] *= 1.3
        return f

    edit(universe, tmp_path, revise)
    assert paper("step", "uni", "--quiet", "--accept-revisions-from", dates[120], "--until",
                 dates[145])[0] == 0
    signals = pd.DataFrame(snapshot(paper.root / "uni" / LEDGER_FILE)["signals"])
    signals["date"] = pd.to_datetime(signals["date"])
    recorded = signals[signals["date"] <= stamps[140]]
    decided = decide(load_data([str(csv)]), load_config(cfg), asof=stamps[145],
                     cache=FoldCache(universe["dir"] / f"cache-{cfg.stem}"))
    replay = decided.predictions.set_index(["date", "symbol"])["target"]
    old = recorded.set_index(["date", "symbol"])["target"]
    assert not np.array_equal(replay.loc[old.index].to_numpy(), old.to_numpy())  # it diverged
    book = recorded.sort_values("date").groupby("symbol")["target"].last().to_dict()
    new = decided.predictions[decided.predictions["date"] > stamps[140]]
    want = decided.strategy.targets(new.drop(columns="target"), held=book)
    got = signals[signals["date"] > stamps[140]].set_index(["date", "symbol"])["target"]
    np.testing.assert_array_equal(got.sort_index(), want.set_index(["date", "symbol"])["target"]
                                  .sort_index())


def test_a_rolling_window_on_one_symbol_keeps_trading_until_it_is_too_short_for_it(
        paper, universe, tmp_path):
    csv = edit(universe, tmp_path, lambda f: f)
    init(paper, universe, "uni", cfg_file(universe, "threshold", THRESHOLD), str(csv))
    stamps = universe["dates"]
    dates = [f"{d:%Y-%m-%d}" for d in stamps]
    assert paper("step", "uni", "--quiet", "--until", dates[140])[0] == 0
    before = snapshot(paper.root / "uni" / LEDGER_FILE)

    def roll(n):
        return lambda f: f[(f["symbol"] != "S0000") | (f["date"] >= stamps[n])]

    edit(universe, tmp_path, roll(100))  # S0000 keeps 40 rows before the next bar
    rc, _, err = paper("step", "uni", "--until", dates[150])
    assert rc == 2 and f"S0000 ({csv}): holds 41 rows before the next bar to decide" in err
    assert len(err.strip().splitlines()) == 1 and snapshot(paper.root / "uni" / LEDGER_FILE) == before
    edit(universe, tmp_path, roll(10))
    rc, out, err = paper("step", "uni", "--json", "--until", dates[150])
    res = json.loads(out)
    assert rc == 0 and res["dropped"] == 10 and res["traded"] == 10, err
    assert {s for s in res["targets"]} == {"S0000", "S0001", "S0002"}
