"""Helpers shared by the tests: the small config, CSV and config writers, ledger dumps."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pandas as pd

SMALL = {
    "seed": 7,
    "walk_forward": {"train_window": 150, "step": 25},
    "lstm": {"lookback": 5, "hidden_size": 8, "head_size": 4, "epochs": 3, "warm_epochs": 1,
             "batch_size": 64, "device": "cpu"},
    "knn": {"n_neighbors": 10},
    "fusion": {"min_history": 40},
    "report": {"tearsheet": False},
}


TINY = {**copy.deepcopy(SMALL), "seed": 11}
TINY["lstm"]["epochs"] = 2


def walk_forward_tasks(csvs: list[Path], cfg: Any) -> list[Any]:
    """One walk-forward task per CSV (for the execution-layer tests)."""
    from lstmknn.data.loader import load_prices
    from lstmknn.engine.forecasts import walk_forward_task
    from lstmknn.engine.parallel import Task

    datas = [load_prices(p) for p in csvs]
    return [Task(d.symbol, walk_forward_task, (d.frame, cfg, None)) for d in datas]


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    out = frame.rename(columns=str.capitalize).rename_axis("Date").reset_index()
    out.to_csv(path, index=False, date_format="%Y-%m-%d")
    return path


def staggered_universe(n_symbols: int = 4, n_days: int = 200, *, seed: int = 3,
                       starts: tuple[int, ...] = (), ends: tuple[int, ...] = ()) -> pd.DataFrame:
    """A small synthetic universe (long frame ``date, symbol, OHLCV``): symbol ``i`` keeps its
    rows from position ``starts[i]`` to ``ends[i]`` (inclusive; default: every row)."""
    from lstmknn.data.synthetic import make_universe

    frame = make_universe(n_symbols, n_days, ic=0.1, seed=seed)
    pos = frame.groupby("symbol").cumcount()
    sym = frame["symbol"].map({s: i for i, s in enumerate(sorted(frame["symbol"].unique()))})
    first = sym.map(lambda i: starts[i] if i < len(starts) else 0)
    last = sym.map(lambda i: ends[i] if i < len(ends) else n_days - 1)
    keep = (pos >= first) & (pos <= last)
    return frame.loc[keep, ["date", "symbol", "open", "high", "low", "close", "volume"]]


def write_long_csv(frame: pd.DataFrame, path: Path) -> Path:
    """A long (one row per symbol and date) price file."""
    frame.to_csv(path, index=False, date_format="%Y-%m-%d")
    return path


def write_config(path: Path, extra: dict | None = None) -> Path:
    """Write the small config (plus ``extra`` sections merged in) as a TOML file."""
    raw = copy.deepcopy(SMALL)
    for section, values in (extra or {}).items():
        raw.setdefault(section, {}).update(values)
    lines = [f"seed = {raw['seed']}"]
    for section, values in raw.items():
        if section != "seed":
            lines += [f"[{section}]", *(f"{k} = {json.dumps(v)}" for k, v in values.items())]
    path.write_text("\n".join(lines) + "\n")
    return path




def run_in_terminal(args: list[str], cwd: Path | None = None, timeout: float = 300.0,
                    size: tuple[int, int] = (24, 100)) -> tuple[int, str]:
    """Run ``args`` with stdin, stdout and stderr on a pseudo-terminal, as a user's shell does.

    ``size`` is the terminal's (rows, columns); ``(0, 0)`` is what ``script ... /dev/null``
    gives when it is itself not run from a terminal. Returns the exit status and everything
    the program drew on the terminal.
    """
    import fcntl
    import os
    import select
    import struct
    import subprocess
    import termios
    import time

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                            close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                raise TimeoutError(f"{args} did not finish in {timeout} s")
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    data = b""
                if not data and proc.poll() is not None:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
    return proc.wait(), b"".join(chunks).decode(errors="replace")


def session_universe(symbols: tuple[str, ...] = ("AAPL", "MSFT"), rows: int = 130, *,
                     after: int = 6, last: str = "2024-01-02", seed: int = 4) -> pd.DataFrame:
    """A small synthetic universe under real tickers, on the fake broker's sessions
    (:mod:`tests.fake_alpaca`): ``rows`` bars up to ``last``, then ``after`` more sessions."""
    from datetime import date, timedelta

    from tests.fake_alpaca import sessions

    end = date.fromisoformat(last)
    days = sessions(end - timedelta(days=2 * rows + 30), end + timedelta(days=2 * after + 14))
    at = days.index(end)
    days = days[at - rows + 1: at + after + 1]
    frame = staggered_universe(len(symbols), len(days), seed=seed)
    stamps = sorted(frame["date"].unique())
    frame["date"] = frame["date"].map(dict(zip(stamps, pd.to_datetime(days), strict=True)))
    frame["symbol"] = frame["symbol"].map({f"S{i:04d}": s for i, s in enumerate(symbols)})
    return frame.reset_index(drop=True)


class Driver:
    """A process (``args``, run from the repository root) with its stdout and stderr lines
    collected as they come, for the ``kill -9`` tests."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        import queue
        import subprocess
        import threading

        root = Path(__file__).resolve().parents[1]
        self.proc = subprocess.Popen(args, cwd=root, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.text: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(name, stream), daemon=True)
                        for name, stream in (("out", self.proc.stdout),
                                             ("err", self.proc.stderr))]
        for t in self.readers:
            t.start()

    def _read(self, name: str, stream: Any) -> None:
        for line in stream:
            self.text.append(line)
            self.lines.put((name, line))
        self.lines.put((name, ""))

    def wait_for(self, stream: str, prefix: str, timeout: float = 120.0) -> bool:
        """True when a line starting with ``prefix`` came; False when the process ended first."""
        import queue
        import time

        end = time.monotonic() + timeout
        closed = set()
        while time.monotonic() < end:
            try:
                name, line = self.lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if not line:
                closed.add(name)
                if len(closed) == 2:
                    return False
            elif name == stream and line.startswith(prefix):
                return True
        raise AssertionError(f"no {prefix!r} within {timeout} s")

    def kill(self) -> bool:
        """kill -9 if still running; True when it was killed."""
        import os
        import signal

        if self.proc.poll() is not None:
            return False
        os.kill(self.proc.pid, signal.SIGKILL)
        self.finish()
        return self.proc.returncode == -signal.SIGKILL

    def finish(self, timeout: float = 120.0) -> int:
        rc = self.proc.wait(timeout=timeout)
        for t in self.readers:
            t.join(timeout=10)
        return rc
