"""Tasks run on a Dask cluster reached by address: scheduler and worker in their own processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import joblib
import pandas as pd
import pytest

from lstmknn.data.loader import load_prices
from lstmknn.engine.config import from_dict, with_overrides
from lstmknn.engine.errors import UserError
from lstmknn.engine.parallel import Task, local_cluster, plan, run_tasks
from lstmknn.engine.sweep import run_sweep
from tests.helpers import TINY, walk_forward_tasks, write_csv

distributed = pytest.importorskip("distributed")
DASK = Path(sys.executable).with_name("dask")
# the recommended worker setting: keep glibc's adaptive malloc thresholds (torch trains ~2x faster)
WORKER_ENV = {"DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": '{"MALLOC_TRIM_THRESHOLD_": None}'}


def _stop(proc: subprocess.Popen) -> None:
    """Terminate a process this test started (and its own group), waiting for it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def cluster_address(tmp_path: Path) -> Iterator[str]:
    """A scheduler and one single-threaded worker started as separate processes."""
    if not DASK.exists():
        pytest.skip("the dask command line is not installed")
    sched_file = tmp_path / "scheduler.json"
    logs = (tmp_path / "scheduler.log").open("w"), (tmp_path / "worker.log").open("w")
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(sched_file)],
            stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            assert procs[0].poll() is None, "dask scheduler exited early"
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(subprocess.Popen(
            [str(DASK), "worker", "--scheduler-file", str(sched_file), "--nthreads", "1",
             "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1"],
            env={**os.environ, **WORKER_ENV},
            stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True))
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(1, timeout=90)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for log in logs:
            log.close()


def test_tasks_on_a_cluster_reached_by_address_match_the_serial_run(cluster_address, tmp_path,
                                                                     monkeypatch):
    csvs = [write_csv(load_prices(n).frame.iloc[:450], tmp_path / f"{n}.csv")
            for n in ("sp500", "msft")]
    tasks = walk_forward_tasks(csvs, from_dict(TINY))
    serial = run_tasks(tasks)
    remote = run_tasks(tasks, scheduler=cluster_address)
    for s, r in zip(serial, remote, strict=True):
        assert r.ok, r.error
        pd.testing.assert_frame_equal(r.value.predictions, s.value.predictions, check_exact=True)

    # the work happens on the single one-thread worker, not in this process
    pid = run_tasks([Task("pid", os.getpid)], scheduler=cluster_address)[0].value
    with distributed.Client(cluster_address) as client:
        assert list(client.run(os.getpid).values()) == [pid] != [os.getpid()]

    # a script's own client and joblib.parallel_config(backend="dask"), no other change
    with distributed.Client(cluster_address), joblib.parallel_config(backend="dask"):
        assert plan().mode == "joblib"
        configured = run_tasks(tasks)
    for s, c in zip(serial, configured, strict=True):
        pd.testing.assert_frame_equal(c.value.predictions, s.value.predictions, check_exact=True)

    # the same cluster through $DASK_SCHEDULER_ADDRESS, for a sweep
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster_address)
    assert plan().mode == "dask"
    grid = {"regime.alpha_calm": [0.6, 0.8]}
    base = with_overrides(from_dict(TINY), {"walk_forward.step": 50})
    on_dask = run_sweep([str(csvs[0])], base, grid, tmp_path / "dask")
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
    local = run_sweep([str(csvs[0])], base, grid, tmp_path / "serial")
    assert on_dask.summary["execution"].startswith("Dask at tcp://127.0.0.1")
    cols = [c for c in local.results.columns if c != "elapsed"]
    pd.testing.assert_frame_equal(on_dask.results[cols], local.results[cols], check_exact=True)


def test_the_local_cluster_serves_only_clients_holding_its_temporary_tls_credentials():
    pytest.importorskip("cryptography")
    with local_cluster(workers=2) as cluster:  # 2 workers x 1 thread on 127.0.0.1
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        workers = cluster.scheduler_info["workers"]
        assert len(workers) == 2 and all(w["nthreads"] == 1 for w in workers.values())
        assert all(addr.startswith("tls://127.0.0.1:") for addr in workers)
        # another process's client: its own self-signed credentials, or none at all over TCP
        with pytest.raises((OSError, TimeoutError), match="TLS certificate does not match"):
            distributed.Client(address, security=distributed.Security.temporary(), timeout="5s",
                               set_as_default=False)
        with pytest.raises((OSError, TimeoutError)):
            distributed.Client(address.replace("tls://", "tcp://"), timeout="5s",
                               set_as_default=False)
        with pytest.raises((OSError, TimeoutError, TypeError)):  # tls:// without credentials
            distributed.Client(address, timeout="5s", set_as_default=False)
        with distributed.Client(address, security=cluster.security, timeout="20s",
                                set_as_default=False) as client:
            assert client.submit(pow, 6, 2).result(timeout=30) == 36
    assert cluster.status.name == "closed"


def test_the_local_cluster_without_cryptography_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(UserError, match=r"needs the `cryptography` package: pip install 'lstmknn\[dask\]'"):
        run_tasks([Task("k", os.getpid)], scheduler="local")


def test_the_local_cluster_shows_dask_errors_only_while_it_runs_and_closes(monkeypatch):
    pytest.importorskip("cryptography")
    import logging

    seen = []

    class Cluster:
        def __init__(self, **kwargs):
            seen.append(logging.getLogger("distributed.nanny").isEnabledFor(logging.WARNING))

        def close(self):  # where the nanny warns "Worker process still alive after 4.0 seconds"
            seen.append(logging.getLogger("distributed.nanny").isEnabledFor(logging.WARNING))
            seen.append(logging.getLogger("distributed.nanny").isEnabledFor(logging.ERROR))

    monkeypatch.setattr(distributed, "LocalCluster", Cluster)
    before = logging.getLogger("distributed").level
    with local_cluster(workers=2):
        pass
    assert seen == [False, False, True]
    assert logging.getLogger("distributed").level == before
