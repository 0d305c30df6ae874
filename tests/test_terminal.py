"""The everyday commands typed in a real (pseudo-)terminal, where progress bars draw."""

from __future__ import annotations

import re
import sys

import pytest

from tests.helpers import run_in_terminal, write_config

LSTMKNN = [sys.executable, "-m", "lstmknn.engine.cli"]


@pytest.fixture
def setup(tmp_path, small_csv):
    return tmp_path, small_csv, write_config(tmp_path / "small.toml")


def check(rc: int, screen: str) -> None:
    assert rc == 0, screen
    assert "Traceback" not in screen and "Error" not in screen, screen


@pytest.mark.parametrize("size", [(24, 100), (0, 0)], ids=["24x100", "unsized"])
def test_backtest_and_report_work_in_a_terminal_and_draw_progress(setup, size):
    tmp, csv, cfg = setup
    out = tmp / "run"
    rc, screen = run_in_terminal([*LSTMKNN, "backtest", "--data", str(csv), "--config", str(cfg),
                                  "--out", str(out), "--no-cache"], size=size)
    check(rc, screen)
    assert "small folds" in screen  # the progress bar drew on the terminal
    first = screen[screen.index("small folds"):].split("\r")[0]
    assert re.search(r"small folds: +0%\|.*\| 0/\d+ ", first), first  # the total from frame one
    after = screen[screen.rindex("small folds"):]
    assert "walk-forward done; trading and writing the report ..." in after
    assert re.search(r"lstmknn: done \(\d+\.\ds\)", after)
    check(*run_in_terminal([*LSTMKNN, "report", str(out)]))


def test_signal_and_paper_trading_work_in_a_terminal(setup):
    tmp, csv, cfg = setup
    check(*run_in_terminal([*LSTMKNN, "signal", "--data", str(csv), "--config", str(cfg),
                            "--cache", str(tmp / "cache")]))
    root = ["--root", str(tmp / "accounts")]
    check(*run_in_terminal([*LSTMKNN, "paper", "init", "--account", "demo", "--data", str(csv),
                            "--config", str(cfg), *root]))
    check(*run_in_terminal([*LSTMKNN, "paper", "step", "--account", "demo", *root]))
    check(*run_in_terminal([*LSTMKNN, "paper", "status", "--account", "demo", *root]))


def test_sweep_works_in_a_terminal(setup):
    tmp, csv, cfg = setup
    grid = tmp / "grid.toml"
    grid.write_text('"knn.n_neighbors" = [5, 10]\n')
    check(*run_in_terminal([*LSTMKNN, "sweep", "--data", str(csv), "--config", str(cfg),
                            "--grid", str(grid), "--out", str(tmp / "sweep")]))
