"""``lstmknn signal``: the backtest's row for the as-of bar, with its provenance."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from lstmknn.engine.asof import data_hash, row_block
from lstmknn.engine.cli import main
from lstmknn.engine.config import load_config
from tests.helpers import write_config, write_csv

FIELDS = ["lstm", "knn", "lstm_conf", "knn_conf", "alpha", "fused", "target", "vol",
          "train_mean", "persistence"]




@pytest.fixture(scope="module")
def setup(tmp_path_factory, sp500):
    """A ~400-row CSV, the small config, a shared fold cache and the backtest's outputs."""
    d = tmp_path_factory.mktemp("signal")
    csv = write_csv(sp500.iloc[:400], d / "spx.csv")
    cfg = write_config(d / "small.toml")
    cache, out = d / "cache", d / "run"
    assert main(["backtest", "--data", str(csv), "--config", str(cfg), "--out", str(out),
                 "--engine", "vectorized", "--cache", str(cache), "--quiet"]) == 0
    preds = pd.read_csv(out / "predictions.csv")
    folds = pd.read_csv(out / "folds.csv")
    return {"csv": csv, "cfg": cfg, "cache": cache, "preds": preds, "folds": folds}


def signal(setup, capsys, *extra):
    capsys.readouterr()
    rc = main(["signal", "--data", str(setup["csv"]), "--config", str(setup["cfg"]),
               "--cache", str(setup["cache"]), "--quiet", *extra])
    out = capsys.readouterr().out
    assert rc == 0
    return out


def test_the_signal_equals_the_backtest_predictions_row_for_that_date(setup, capsys):
    preds, folds = setup["preds"], setup["folds"].set_index("fold")
    starts = set(folds["test_start"])
    dates = [preds["date"].iloc[-1], preds["date"].iloc[0], preds["date"].iloc[100]]
    dates.append(next(d for d in preds["date"].iloc[30:] if d in starts))  # a retraining bar
    for date in dates:
        rec = json.loads(signal(setup, capsys, "--asof", date))
        row = preds.set_index("date").loc[date]
        assert rec["asof"] == date and rec["symbol"] == "spx"
        for f in FIELDS:
            want = row[f]
            assert (rec[f] is None and np.isnan(want)) or rec[f] == want, (date, f)
        assert rec["regime"] == row["regime"] and rec["fold"] == row["fold"]
        assert rec["fusion_used"] == row["fusion_used"]
        fold = folds.loc[row["fold"]]
        assert (rec["train_start"], rec["train_end"]) == (fold["train_start"], fold["train_end"])
        assert rec["train_size"] == fold["train_size"]


def test_the_default_is_the_latest_bar_with_config_and_data_hashes(setup, capsys):
    rec = json.loads(signal(setup, capsys))
    prices = pd.read_csv(setup["csv"], parse_dates=["Date"]).set_index("Date")
    assert rec["asof"] == setup["preds"]["date"].iloc[-1] and rec["data_rows"] == len(prices)
    assert rec["config_hash"] == load_config(setup["cfg"]).hash()
    frame = prices.rename(columns=str.lower)
    assert rec["data_hash"] == hashlib.sha256(row_block(frame).tobytes()).hexdigest()
    assert rec["data_hash"] == data_hash(frame, len(frame) - 1)


def test_the_data_hash_covers_rows_up_to_asof_only(sp500):
    frame = sp500.iloc[:50].copy()
    h = data_hash(frame, 30)
    later = frame.copy()
    later.iloc[40, 0] *= 2
    assert data_hash(later, 30) == h
    earlier = frame.copy()
    earlier.iloc[3, 4] += 1
    assert data_hash(earlier, 30) != h


def test_csv_and_jsonl_carry_the_same_record_as_json(setup, capsys):
    rec = json.loads(signal(setup, capsys, "--format", "json"))
    assert json.loads(signal(setup, capsys, "--format", "jsonl")) == rec
    lines = signal(setup, capsys, "--format", "csv").splitlines()
    assert len(lines) == 2
    row = dict(zip(lines[0].split(","), lines[1].split(","), strict=True))
    assert float(row["fused"]) == rec["fused"] and row["asof"] == rec["asof"]
    assert float(row["lstm_conf"]) == rec["lstm_conf"]


@pytest.mark.parametrize(("asof", "message"), [
    ("1999-02-01", "too little data"),
    ("1990-01-01", "before the first bar"),
    ("yesterday-ish", "not a date"),
])
def test_an_unusable_asof_is_a_one_line_error(setup, capsys, asof, message):
    rc = main(["signal", "--data", str(setup["csv"]), "--config", str(setup["cfg"]),
               "--cache", str(setup["cache"]), "--quiet", "--asof", asof])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_several_symbols_give_one_row_each_with_weight_side_quantity_and_staleness(
        setup, sp500, tmp_path, capsys):
    short = write_csv(sp500.iloc[:380], tmp_path / "short.csv")  # ends 20 bars earlier
    capsys.readouterr()
    rc = main(["signal", "--data", str(setup["csv"]), str(short), "--config", str(setup["cfg"]),
               "--cache", str(setup["cache"]), "--quiet", "--account-value", "50000"])
    captured = capsys.readouterr()
    assert rc == 0
    recs = json.loads(captured.out)
    assert [r["symbol"] for r in recs] == ["spx", "short"]
    live, stale = recs
    for key in ("decided_at", "for_bar", "target", "weight", "side", "quantity", "last_close"):
        assert key in live, key
    assert live["for_bar"] == "next open" and not live["stale"] and live["warning"] is None
    assert live["weight"] == live["target"]  # the only symbol with current data
    assert live["quantity"] == pytest.approx(live["weight"] * 50000 / live["last_close"])
    assert live["side"] == {1: "long", -1: "short", 0: "flat"}[int(np.sign(live["weight"]))]
    # the backtest closes out a symbol whose data ends early: it holds nothing of it
    assert stale["stale"] and "data ends at" in stale["warning"] and stale["weight"] == 0.0
    assert "short: data ends at" in captured.err


def test_an_asof_date_after_the_data_ends_warns_instead_of_passing_off_old_data(setup, capsys):
    capsys.readouterr()
    rc = main(["signal", "--data", str(setup["csv"]), "--config", str(setup["cfg"]),
               "--cache", str(setup["cache"]), "--quiet", "--asof", "2030-01-01"])
    captured = capsys.readouterr()
    rec = json.loads(captured.out)
    assert rc == 0 and rec["stale"] and "before the as-of date 2030-01-01" in rec["warning"]
    assert "warning" in captured.err
