"""The execution layer gives the same answer serially, in local processes and on Dask."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import joblib
import pandas as pd
import pytest

from lstmknn.data.loader import load_prices
from lstmknn.engine.backtest import run_backtest
from lstmknn.engine.cli import main
from lstmknn.engine.config import Config, from_dict
from lstmknn.engine.errors import UserError
from lstmknn.engine.parallel import Plan, Task, _large_args, plan, resolve_jobs, run_tasks
from tests.helpers import TINY, walk_forward_tasks, write_csv


@pytest.fixture
def tiny_cfg() -> Config:
    return from_dict(TINY)


@pytest.fixture
def two_csvs(tmp_path: Path) -> list[Path]:
    """~450-row slices of the bundled sp500 and msft histories written as CSV files."""
    return [write_csv(load_prices(name).frame.iloc[:450], tmp_path / f"{name}_slice.csv")
            for name in ("sp500", "msft")]


def predictions(outcomes) -> dict[str, pd.DataFrame]:
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return {o.key: o.value.predictions for o in outcomes}


def fails_on_three(k: int) -> int:
    if k == 3:
        raise ValueError("three is not allowed")
    return k * k


def thread_name(_: int) -> str:
    return threading.current_thread().name


def test_seeded_predictions_are_identical_serially_in_processes_and_on_a_dask_cluster(
        tiny_cfg, two_csvs):
    pytest.importorskip("distributed")
    tasks = walk_forward_tasks(two_csvs, tiny_cfg)
    serial = predictions(run_tasks(tasks))
    processes = predictions(run_tasks(tasks, jobs=2))
    environ = dict(os.environ)
    dask = predictions(run_tasks(tasks, jobs=2, scheduler="local"))  # TLS-secured, 2 workers
    assert dict(os.environ) == environ  # the nanny's OMP_NUM_THREADS etc. do not leak
    assert list(serial) == ["sp500_slice", "msft_slice"]
    for key, frame in serial.items():
        assert len(frame) > 100
        pd.testing.assert_frame_equal(processes[key], frame, check_exact=True)
        pd.testing.assert_frame_equal(dask[key], frame, check_exact=True)


def test_backtest_with_two_jobs_matches_the_serial_backtest(tiny_cfg, two_csvs):
    sources = [str(p) for p in two_csvs]
    serial = run_backtest(sources, tiny_cfg, engine="vectorized")
    parallel = run_backtest(sources, tiny_cfg, engine="vectorized", jobs=2)
    pd.testing.assert_frame_equal(parallel.predictions, serial.predictions, check_exact=True)
    assert parallel.summary["strategy"] == serial.summary["strategy"]


def test_a_failing_task_is_an_outcome_and_the_others_complete():
    outcomes = run_tasks([Task(f"k{k}", fails_on_three, (k,)) for k in range(5)], jobs=2)
    assert [o.key for o in outcomes] == ["k0", "k1", "k2", "k3", "k4"]
    assert [o.value for o in outcomes if o.ok] == [0, 1, 4, 16]
    failed = outcomes[3]
    assert failed.error == "ValueError: three is not allowed"
    assert isinstance(failed.exception, ValueError)


def test_finished_tasks_are_reported_as_they_complete():
    seen = []
    run_tasks([Task(f"k{k}", fails_on_three, (k,)) for k in range(4)], on_done=seen.append)
    assert sorted(o.key for o in seen) == ["k0", "k1", "k2", "k3"]


def test_an_active_joblib_backend_is_honoured():
    tasks = [Task(f"k{k}", thread_name, (k,)) for k in range(4)]
    assert {o.value for o in run_tasks(tasks)} == {threading.current_thread().name}
    with joblib.parallel_config(backend="threading", n_jobs=2):
        assert plan().mode == "joblib"
        names = {o.value for o in run_tasks(tasks)}
    assert threading.current_thread().name not in names


def test_scheduler_address_comes_from_the_environment_unless_jobs_are_given(monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:8786")
    assert plan().mode == "dask" and plan().address == "tcp://127.0.0.1:8786"
    assert plan(jobs=3).mode == "processes"
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
    assert plan().serial
    assert plan(jobs=2, scheduler="local").workers == 2


def test_bad_jobs_and_scheduler_combinations_are_user_errors():
    with pytest.raises(UserError, match="--jobs must not be 0: use 1 for serial"):
        plan(jobs=0)
    with pytest.raises(UserError, match="set by its workers"):
        plan(jobs=2, scheduler="tcp://10.0.0.1:8786")
    with pytest.raises(UserError, match="set by its workers"):
        plan(jobs=-1, scheduler="tcp://10.0.0.1:8786")


def test_negative_jobs_count_from_all_cores_as_in_joblib():
    cores = joblib.cpu_count()
    with joblib.parallel_config(backend="loky"):
        assert resolve_jobs(-1) == cores == joblib.effective_n_jobs(-1)
        assert resolve_jobs(-cores) == 1 == joblib.effective_n_jobs(-cores)
    assert resolve_jobs(3) == 3
    assert plan(jobs=-1) == (Plan("processes", cores) if cores > 1 else Plan("serial", 1))
    assert plan(jobs=-1, scheduler="local") == Plan("dask", cores, "local")
    with pytest.raises(UserError, match=rf"--jobs {-cores - 1} leaves no worker on {cores} cores"):
        plan(jobs=-cores - 1)


def test_scheduler_without_dask_installed_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(UserError, match=r"pip install 'lstmknn\[dask\]'"):
        run_tasks([Task("k", fails_on_three, (1,))], scheduler="local")
    grid = tmp_path / "grid.toml"
    grid.write_text('"regime.alpha_calm" = [0.6]\n')
    code = main(["sweep", "--grid", str(grid), "--scheduler", "local", "--out",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "dask" in err


def test_frames_shared_by_many_tasks_are_scattered_once():
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    other = frame.copy()
    tasks = [Task("a", len, (frame,)), Task("b", len, (frame,)), Task("c", len, (), {"x": other})]
    shared = _large_args(tasks)
    assert len(shared) == 2 and shared[0] is frame and shared[1] is other


PROGRESS_SCRIPT = ("from engine.parallel import Task, run_tasks; "
                   "run_tasks([Task(str(i), abs, (-i,)) for i in range(3)], progress=True, "
                   "label='demo')")


def test_task_progress_is_drawn_on_a_terminal_and_nothing_is_written_otherwise():
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column tty
    try:
        proc = subprocess.run([sys.executable, "-c", PROGRESS_SCRIPT], stderr=slave,
                              stdout=subprocess.DEVNULL, timeout=120, check=True)
        os.close(slave)
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed: all of it was read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(master)
    assert proc.returncode == 0 and b"demo" in drawn and b"3/3" in drawn
    piped = subprocess.run([sys.executable, "-c", PROGRESS_SCRIPT], capture_output=True,
                           timeout=120, check=True)
    assert piped.stderr == b""
