"""Hourly data end to end: every file keeps the time of day, and reads back bar for bar."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from tests.helpers import write_config


@pytest.fixture
def hourly_csv(sp500, tmp_path):
    hours = pd.date_range("2021-01-04 09:30", periods=6000, freq="h")
    hours = hours[(hours.day_of_week < 5) & (hours.hour >= 9) & (hours.hour <= 15)][:420]
    frame = sp500.iloc[:420].copy()
    frame.index = pd.DatetimeIndex(hours, name="date")
    path = tmp_path / "hourly.csv"
    frame.rename(columns=str.capitalize).rename_axis("Date").reset_index().to_csv(path, index=False)
    return path, frame


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lstmknn.engine.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_hourly_run_keeps_every_timestamp_through_every_file_and_command(hourly_csv, tmp_path):
    path, frame = hourly_csv
    cfg = write_config(tmp_path / "c.toml", {"report": {"tearsheet": True}})
    out = tmp_path / "run"
    r = cli("backtest", "--data", str(path), "--config", str(cfg), "--out", str(out), "--quiet",
            "--cache", str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    bars = set(frame.index)
    for name, col in (("predictions.csv", "date"), ("equity.csv", "date"), ("trades.csv", "date"),
                      ("positions.csv", "date"), ("benchmark.csv", "date"),
                      ("folds.csv", "test_start")):
        stamps = pd.to_datetime(pd.read_csv(out / name)[col])
        assert set(stamps) <= bars, name
        if name != "trades.csv":
            assert stamps.is_unique, f"{name}: bars collapsed onto the same timestamp"
        assert (stamps.dt.hour != 0).any(), name
    pred = pd.read_csv(out / "predictions.csv", parse_dates=["date"])
    assert len(pred) == pred["date"].nunique()
    # the report is rebuilt from the files alone
    (out / "tearsheet.html").unlink()
    assert cli("report", str(out)).returncode == 0
    # the signal at a given hour is that hour's predictions row
    row = pred.iloc[len(pred) // 2]
    asof = row["date"].isoformat()
    r = cli("signal", "--data", str(path), "--config", str(cfg), "--asof", asof, "--quiet",
            "--cache", str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert pd.Timestamp(rec["asof"]) == row["date"]
    for key in ("lstm", "knn", "fused", "alpha", "target"):
        assert rec[key] == row[key], key
