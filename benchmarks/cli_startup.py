"""How fast the command line answers: wall time of ``lstmknn --help`` against ``import torch``.

    python benchmarks/cli_startup.py [--runs 5]

Prints the median of ``--runs`` fresh processes for each command and the machine's load
average (a shared machine makes every figure slower). ``lstmknn`` is the console script
beside this Python when installed, else ``python -m lstmknn.engine.cli``; this source tree comes
first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lstmknn() -> list[str]:
    script = Path(sys.executable).with_name("lstmknn")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "lstmknn.engine.cli"]


def wall(cmd: list[str], runs: int) -> float:
    """Median wall time in seconds of ``runs`` fresh runs of ``cmd`` (output discarded)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="runs per command (default 5)")
    runs = p.parse_args().runs
    before = os.getloadavg()
    help_s = wall([*lstmknn(), "--help"], runs)
    torch_s = wall([sys.executable, "-c", "import torch"], runs)
    after = os.getloadavg()
    print(f"lstmknn --help:          {help_s:.3f} s (median of {runs})")
    print(f"python -c 'import torch': {torch_s:.3f} s (median of {runs})")
    print(f"load average (1, 5, 15 min): before {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}, "
          f"after {after[0]:.2f} {after[1]:.2f} {after[2]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
