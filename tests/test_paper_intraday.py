"""An hourly paper account end to end: bar timestamps keep their time of day everywhere."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lstmknn.engine.cli import main
from lstmknn.engine.paper.store import LEDGER_FILE, TRADING_TABLES, snapshot
from tests.helpers import write_config

HOURS = [f"{h:02d}:30" for h in range(9, 16)]  # 7 bars a day, 09:30 .. 15:30


def hourly_csv(frame: pd.DataFrame, path):
    """The bundled closes as hourly bars: 7 a day on consecutive business days."""
    days = pd.bdate_range("2021-01-04", periods=-(-len(frame) // len(HOURS)))
    stamps = [pd.Timestamp(f"{d:%Y-%m-%d} {h}") for d in days for h in HOURS][: len(frame)]
    out = frame.rename(columns=str.capitalize).set_axis(pd.DatetimeIndex(stamps, name="Datetime"))
    out.reset_index().to_csv(path, index=False)
    return path


@pytest.fixture
def paper(tmp_path, capsys):
    root = tmp_path / "accounts"
    cfg = write_config(tmp_path / "small.toml")

    def run(cmd, name, *args):
        capsys.readouterr()
        rc = main(["paper", cmd, "--account", name, "--root", str(root), *args])
        out, err = capsys.readouterr()
        assert rc == 0, err
        return out

    def init(csv, name):
        run("init", name, "--data", str(csv), "--config", str(cfg), "--cache",
            str(tmp_path / "cache"))
        return root / name / LEDGER_FILE

    run.init = init
    return run


def test_an_hourly_account_keeps_the_hour_in_every_timestamp_and_steps_like_one_run(
        paper, tmp_path, sp500):
    csv = hourly_csv(sp500.iloc[:420], tmp_path / "spx_1h.csv")
    assert "2021-01-04 09:30:00" in csv.read_text()[:200]
    hourly = paper.init(csv, "hourly")
    out = paper("step", "hourly", "--until", "2021-02-10 12:30")
    assert "..2021-02-10T12:30:00" in out
    paper("step", "hourly")
    led = snapshot(hourly)
    bars = [b["date"] for b in led["bars"]]
    assert len(bars) == 420 and bars[0] == "2021-01-04T09:30:00"
    assert {b[11:] for b in bars} == {f"{h}:00" for h in HOURS}
    assert all(e["date"][11:16] in HOURS for e in led["equity"]) and len(led["equity"]) > 200
    assert all(s["date"][11:16] in HOURS for s in led["signals"])
    assert led["fills"] and all(f["date"][11:16] in HOURS for f in led["fills"])
    st = json.loads(paper("status", "hourly", "--json"))
    assert st["last_bar"] == bars[-1] and st["last_signal"]["asof"] == bars[-1]
    lines = paper("signals", "hourly", "--jsonl", "--since", "2021-03-01 13:30").splitlines()
    assert json.loads(lines[0])["asof"] == "2021-03-01T13:30:00"
    once = paper.init(csv, "once")  # the same bars in one step
    paper("step", "once")
    one = snapshot(once)
    for table in TRADING_TABLES:
        assert led[table] == one[table], table
