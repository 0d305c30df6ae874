"""One execution layer for independent tasks: in process, local processes or a Dask cluster.

A task is a pure function called as ``fn(*args, **kwargs)`` under a unique key.
Every mode runs the same calls through :class:`joblib.Parallel`:

* serial (``jobs=1``): in this process, or on whatever backend the caller
  activated with ``joblib.parallel_config(...)`` around the Python API;
* ``jobs=N``: N local worker processes (loky);
* ``scheduler=ADDR`` (or ``$DASK_SCHEDULER_ADDRESS`` when ``jobs`` is 1): an
  existing Dask cluster through joblib's ``dask`` backend (``distributed`` is
  imported only then); ``scheduler="local"``
  starts a ``LocalCluster`` on 127.0.0.1 for the call and closes it afterwards.

Large top-level arguments (frames, arrays) are scattered to every Dask worker
once; loky memory-maps arrays over 1 MB itself. Workers set their own torch
threads (cores // workers locally, 1 on Dask; a non-zero ``lstm.threads`` wins)
and run nested joblib calls sequentially, so N workers do not oversubscribe. A task's exception is caught in
the worker and returned as a failed :class:`Outcome`, so one failure never stops
the others. Seeds come from task inputs, never from the worker, so every mode
gives the same answer.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import joblib
import numpy as np
import pandas as pd

from lstmknn.engine.errors import UserError
from lstmknn.engine.progress import progress_bar

ENV_SCHEDULER = "DASK_SCHEDULER_ADDRESS"
LOCAL = "local"
Mode = Literal["serial", "processes", "dask", "joblib"]


@dataclass(frozen=True)
class Task:
    """One independent unit of work: ``fn(*args, **kwargs)``, named by ``key``."""

    key: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """The result of one task, or its error (``"Type: message"``) and exception."""

    key: str
    value: Any = None
    error: str | None = None
    exception: BaseException | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Plan:
    """Where tasks run: ``mode``, worker count and (for Dask) the scheduler address."""

    mode: Mode
    workers: int
    address: str | None = None

    @property
    def serial(self) -> bool:
        return self.mode == "serial"

    def describe(self) -> str:
        if self.mode == "dask":
            where = "a local Dask cluster" if self.address == LOCAL else f"Dask at {self.address}"
            return f"{where} ({self.workers} workers)" if self.address == LOCAL else where
        if self.mode == "processes":
            return f"{self.workers} local processes"
        if self.mode == "joblib":
            return "the active joblib backend"
        return "1 process (serial)"


def resolve_jobs(jobs: int) -> int:
    """Worker count for ``--jobs`` as joblib reads ``n_jobs``: N > 0 is N, -1 all cores,
    -2 all but one, ... (``cpu_count + 1 + jobs``); 0, or fewer than one worker, is an error."""
    if isinstance(jobs, bool) or not isinstance(jobs, int):
        raise UserError(f"--jobs must be an integer (got {jobs!r})")
    if jobs == 0:
        raise UserError("--jobs must not be 0: use 1 for serial, N for N processes, "
                        "-1 for all cores")
    if jobs > 0:
        return jobs
    cores = joblib.cpu_count()
    n = cores + 1 + jobs
    if n < 1:
        raise UserError(f"--jobs {jobs} leaves no worker on {cores} cores "
                        f"(use -1 to -{cores}, or a positive count)")
    return n


def plan(jobs: int = 1, scheduler: str | None = None) -> Plan:
    """Resolve ``jobs``/``scheduler``: scheduler > jobs > $DASK_SCHEDULER_ADDRESS > joblib config.

    ``jobs`` follows joblib's ``n_jobs`` (see :func:`resolve_jobs`).
    """
    n = resolve_jobs(jobs)
    address = scheduler or (os.environ.get(ENV_SCHEDULER) if jobs == 1 else None)
    if address:
        address = address.strip()
        if address != LOCAL and jobs != 1:
            raise UserError("--jobs sizes local processes or `--scheduler local`; the size of "
                            f"the cluster at {address} is set by its workers")
        return Plan("dask", n if jobs != 1 else (os.cpu_count() or 1), address)
    if n > 1:
        return Plan("processes", n)
    backend, n_jobs = joblib.parallel.get_active_backend()
    active = backend.default_n_jobs if n_jobs is None else n_jobs
    if type(backend).__name__ == "SequentialBackend" or active == 1:
        return Plan("serial", 1)
    return Plan("joblib", max(1, joblib.effective_n_jobs(active)))


def _threads_per_worker(p: Plan) -> int | None:
    """Torch threads a worker should use so N workers do not oversubscribe the cores."""
    if p.mode == "serial":
        return None
    if p.mode == "processes":
        return max(1, (os.cpu_count() or 1) // p.workers)
    return 1


def _call(key: str, threads: int | None, fn: Callable[..., Any], /, *args: Any,
          **kwargs: Any) -> Outcome:
    """Run one task in a worker; its exception becomes a failed :class:`Outcome`."""
    t0 = time.perf_counter()
    old = None
    if threads:
        import torch

        old = torch.get_num_threads()
        torch.set_num_threads(threads)
    try:
        with joblib.parallel_config(backend="sequential"):  # no nested fan-out inside a task
            value = fn(*args, **kwargs)
        return Outcome(key, value=value, elapsed=time.perf_counter() - t0)
    except Exception as exc:  # recorded; the other tasks go on
        return Outcome(key, error=f"{type(exc).__name__}: {exc}", exception=_portable(exc),
                       elapsed=time.perf_counter() - t0)
    finally:
        if old is not None:
            import torch

            torch.set_num_threads(old)


def _portable(exc: Exception) -> BaseException:
    """``exc`` if it survives pickling back to the parent, else a RuntimeError copy."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _large_args(tasks: Sequence[Task]) -> list[Any]:
    """Distinct (by identity) frames and arrays among the tasks' top-level arguments."""
    seen: dict[int, Any] = {}
    for t in tasks:
        for a in (*t.args, *t.kwargs.values()):
            if isinstance(a, (pd.DataFrame, pd.Series, np.ndarray)):
                seen.setdefault(id(a), a)
    return list(seen.values())


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise UserError("--scheduler needs Dask, an optional extra: pip install 'lstmknn[dask]' "
                        "(in a source checkout, as the README installs: pip install -e '.[dask]')"
                        ) from None
    return distributed


def _require_tls() -> None:
    """Dask's temporary TLS credentials need the ``cryptography`` package."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise UserError("--scheduler local secures its cluster with TLS, which needs the "
                        "`cryptography` package: pip install 'lstmknn[dask]' (in a source "
                        "checkout, as the README installs: pip install -e '.[dask]')") from None


@contextmanager
def quiet_dask_logs(level: int = logging.ERROR) -> Iterator[None]:
    """Dask's own loggers (``distributed.*``) show only ``level`` and above for the block.

    Closing our local cluster makes each nanny warn "Worker process still alive after 4.0
    seconds, killing", which says nothing to a user of ``--scheduler local``, ``--quiet``
    or not; errors still show."""
    names = ["distributed", *(n for n in logging.root.manager.loggerDict
                              if n.startswith("distributed."))]
    saved = {n: logging.getLogger(n).level for n in names}
    for n, old in saved.items():
        if n == "distributed" or logging.NOTSET < old < level:
            logging.getLogger(n).setLevel(level)
    try:
        yield
    finally:
        for n, old in saved.items():
            logging.getLogger(n).setLevel(old)


@contextmanager
def local_cluster(workers: int = 2) -> Iterator[Any]:
    """A TLS-secured ``LocalCluster`` on 127.0.0.1: ``workers`` processes of 1 thread, no dashboard.

    ``security=True`` makes Dask create temporary self-signed credentials held
    by this process only, so no other process on the machine can connect to
    the scheduler or workers (and run code there); a client must pass
    ``security=cluster.security``. Its workers keep glibc's default (adaptive)
    malloc thresholds: Dask's default ``MALLOC_TRIM_THRESHOLD_`` makes torch
    training about 2x slower. The variables the nanny exports into this process
    (``OMP_NUM_THREADS=1``, ...) are undone, and Dask's loggers show errors only
    (:func:`quiet_dask_logs`).
    """
    distributed = _import_distributed()
    _require_tls()
    import dask

    saved = dict(os.environ)
    with quiet_dask_logs():
        try:
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                cluster = distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                    security=True, dashboard_address=None,  # bare HTTP endpoint: a free loopback port
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        finally:
            _restore_environ(saved)
        try:
            yield cluster
        finally:
            cluster.close()


def _restore_environ(saved: dict[str, str]) -> None:
    for k in set(os.environ) - set(saved):
        del os.environ[k]
    for k, v in saved.items():
        if os.environ.get(k) != v:
            os.environ[k] = v


@contextmanager
def dask_client(address: str, workers: int = 2) -> Iterator[Any]:
    """A ``distributed.Client`` for ``address`` (``"local"``: a :func:`local_cluster` for the block).

    The local cluster's client uses the cluster's own TLS credentials; a client
    of another address uses Dask's configured security (``distributed.comm.tls.*``).
    """
    distributed = _import_distributed()
    with ExitStack() as stack:
        security = None
        if address == LOCAL:
            cluster = stack.enter_context(local_cluster(workers))
            address, security = cluster.scheduler_address, cluster.security
        try:
            client = distributed.Client(address, timeout="20s", set_as_default=False,
                                        security=security)
        except (OSError, TimeoutError, ValueError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"cannot reach the Dask scheduler at {address}: {msg}") from None
        stack.callback(client.close)
        yield client


def _remote_dask_backend() -> type:
    """joblib's ``dask`` backend, except that it always submits to the cluster.

    joblib runs a call in the client process when the cluster has a single
    thread (effective ``n_jobs`` of 1); a one-worker (e.g. one-GPU) cluster
    must still do the work.
    """
    from joblib._dask import DaskDistributedBackend

    class RemoteDaskBackend(DaskDistributedBackend):
        def effective_n_jobs(self, n_jobs: int) -> int:
            return max(2, super().effective_n_jobs(n_jobs))

    return RemoteDaskBackend


@contextmanager
def _backend(p: Plan, shared: list[Any]) -> Iterator[joblib.Parallel]:
    """A configured ``joblib.Parallel`` for plan ``p`` (cluster set up and torn down)."""
    common = {"batch_size": 1, "return_as": "generator_unordered"}
    if p.mode == "processes":
        yield joblib.Parallel(n_jobs=p.workers, backend="loky", **common)
    elif p.mode == "dask":
        with dask_client(p.address or LOCAL, p.workers) as client, joblib.parallel_config(
                backend=_remote_dask_backend()(client=client, scatter=shared or None)):
            yield joblib.Parallel(**common)
    else:  # serial, or whatever backend the caller configured with joblib.parallel_config
        try:
            parallel = joblib.Parallel(**common)
        except ValueError as exc:  # a configured backend without generator support
            if "return_as" not in str(exc):
                raise
            parallel = joblib.Parallel(batch_size=1)
        yield parallel


def run_tasks(tasks: Sequence[Task], *, jobs: int = 1, scheduler: str | None = None,
              on_done: Callable[[Outcome], None] | None = None, progress: bool = False,
              label: str = "tasks") -> list[Outcome]:
    """Run ``tasks`` where :func:`plan` says; outcomes in task order.

    ``on_done`` is called in this process as each task finishes (in completion
    order), e.g. to persist it at once. Failed tasks are outcomes, not exceptions.
    """
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError("task keys must be unique")
    if not tasks:
        return []
    p = plan(jobs, scheduler)
    threads = _threads_per_worker(p)
    done: dict[str, Outcome] = {}
    with progress_bar(progress, desc=label, unit="task") as bar, \
            _backend(p, _large_args(tasks) if p.mode == "dask" else []) as parallel:
        calls = (joblib.delayed(_call)(t.key, threads, t.fn, *t.args, **t.kwargs) for t in tasks)
        if bar is not None:
            bar(0, len(tasks))
        for outcome in parallel(calls):
            done[outcome.key] = outcome
            if bar is not None:
                bar(len(done), len(tasks))
            if on_done is not None:
                on_done(outcome)
    return [done[k] for k in keys]
