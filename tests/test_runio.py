"""Run folders: refused when they hold a user's files, switched as a whole, repaired after a kill."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmknn.engine.errors import UserError
from lstmknn.engine.runio import (
    MARKER,
    check_out_dir,
    clean_json,
    date_format,
    dumps,
    is_run_folder,
    recover,
    staged_run,
)

FILES = ["a.csv", "b.csv", "summary.json"]


def write_run(target: Path, tag: str) -> None:
    with staged_run(target, "backtest") as stage:
        for name in FILES:
            (stage / name).write_text(tag)


def contents(target: Path) -> set[str]:
    return {(target / n).read_text() for n in FILES if (target / n).exists()}


def test_a_folder_with_a_users_files_is_refused_and_left_alone(tmp_path):
    (tmp_path / "summary.json").write_text("my notes")
    with pytest.raises(UserError, match="not empty and is not an lstmknn backtest run"):
        check_out_dir(tmp_path, "backtest")
    with pytest.raises(UserError):
        write_run(tmp_path, "new")
    assert (tmp_path / "summary.json").read_text() == "my notes"


def test_a_previous_run_is_replaced_as_a_whole(tmp_path):
    target = tmp_path / "run"
    write_run(target, "old")
    (target / "tearsheet.html").write_text("old page")  # a file the new run does not write
    assert check_out_dir(target, "backtest") == "replace"
    write_run(target, "new")
    assert contents(target) == {"new"}
    assert not (target / "tearsheet.html").exists()
    assert is_run_folder(target, "backtest")
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_a_run_of_another_kind_is_not_replaced(tmp_path):
    target = tmp_path / "run"
    write_run(target, "old")
    with pytest.raises(UserError, match="another kind"):
        check_out_dir(target, "sweep")


def test_a_failed_run_leaves_the_previous_run_untouched(tmp_path):
    target = tmp_path / "run"
    write_run(target, "old")
    with pytest.raises(RuntimeError), staged_run(target, "backtest") as stage:
        (stage / "a.csv").write_text("new")
        raise RuntimeError("training failed")
    assert contents(target) == {"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


KILLER = textwrap.dedent("""
    import os, shutil, signal, sys
    from pathlib import Path
    import lstmknn.engine.runio as runio

    target, kill_at, exchange_ok = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
    calls = [0]

    def step(fn):
        def wrapped(*args, **kwargs):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)
        return wrapped

    real_exchange = runio.exchange
    runio.exchange = step(real_exchange if exchange_ok else (lambda a, b: False))
    runio.os.rename = step(os.rename)
    runio.shutil.rmtree = step(shutil.rmtree)
    runio.mark = step(runio.mark)
    with runio.staged_run(target, "backtest") as stage:
        for name in ("a.csv", "b.csv", "summary.json"):
            (stage / name).write_text("new")
    print("steps", calls[0])
""")


@pytest.mark.parametrize("exchange_ok", [True, False], ids=["renameat2", "two-renames"])
def test_a_kill_at_every_step_of_the_switch_leaves_the_old_or_the_new_run_never_a_mix(
        tmp_path, exchange_ok):
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    flag = "1" if exchange_ok else "0"
    write_run(tmp_path / "probe", "old")
    full = subprocess.run([sys.executable, str(script), str(tmp_path / "probe"), "0", flag],
                          capture_output=True, text=True, env=env, check=True)
    steps = int(full.stdout.split()[-1])
    assert steps >= 3
    for k in range(1, steps + 1):
        root = tmp_path / f"k{k}"
        root.mkdir()
        target = root / "run"
        write_run(target, "old")
        proc = subprocess.run([sys.executable, str(script), str(target), str(k), flag],
                              capture_output=True, text=True, env=env)
        assert proc.returncode == -9, proc.stderr
        recover(target)  # what the next run does first
        assert target.is_dir(), f"run folder lost when killed at step {k}"
        assert contents(target) in ({"old"}, {"new"}), f"mixed run when killed at step {k}"
        assert len(contents(target)) == 1 and all((target / n).exists() for n in FILES)
        assert sorted(p.name for p in root.iterdir()) == ["run"], f"leftovers after step {k}"
        write_run(target, "again")  # and the next run works
        assert contents(target) == {"again"}


def test_json_written_by_the_engine_is_strict():
    text = dumps({"a": float("inf"), "b": np.float64("nan"), "c": np.int64(3),
                  "d": [np.float32(1.5), pd.Timestamp("2020-01-02 10:00")]})
    parsed = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert parsed == {"a": None, "b": None, "c": 3, "d": [1.5, "2020-01-02T10:00:00"]}
    assert clean_json({"x": math.nan}) == {"x": None}


def test_daily_timestamps_are_written_as_dates_and_intraday_ones_keep_their_time():
    daily = pd.date_range("2020-01-01", periods=3, freq="D")
    hourly = pd.date_range("2020-01-01 09:00", periods=3, freq="h")
    assert date_format(pd.Series(daily)) == "%Y-%m-%d"
    assert date_format(pd.Series(hourly)) is None
    frame = pd.DataFrame({"date": hourly, "x": 1.0})
    back = pd.read_csv(pd.io.common.StringIO(frame.to_csv(index=False,
                                                          date_format=date_format(frame["date"]))),
                       parse_dates=["date"])
    pd.testing.assert_series_equal(back["date"], frame["date"], check_dtype=False)


def test_the_marker_names_the_kind_of_run(tmp_path):
    write_run(tmp_path / "r", "x")
    assert json.loads((tmp_path / "r" / MARKER).read_text())["kind"] == "backtest"


@pytest.mark.parametrize(("mask", "folder", "file"), [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600),
                                                      (0o002, 0o775, 0o664)])
def test_run_folders_and_their_files_follow_the_umask_like_any_tool(tmp_path, mask, folder, file):
    from lstmknn.engine.runio import write_atomic

    old = os.umask(mask)
    try:
        with staged_run(tmp_path / "run", "backtest") as stage:
            write_atomic(stage / "summary.json", "{}")
            (stage / "predictions.csv").write_text("date\n")
    finally:
        os.umask(old)
    run = tmp_path / "run"
    assert run.stat().st_mode & 0o777 == folder
    for name in ("summary.json", "predictions.csv", MARKER):
        assert (run / name).stat().st_mode & 0o777 == file, name
