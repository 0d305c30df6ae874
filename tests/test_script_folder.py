"""A user's script works from a folder with its own ``data/``, ``strategies/`` and ``reports/``
packages, with lstmknn installed editable or not: ours live under the ``lstmknn`` namespace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = '''
import data, strategies, reports
import lstmknn
run = lstmknn.backtest("msft", seed=3, walk_forward={"train_window": 120, "step": 2000},
                       lstm={"epochs": 1, "hidden_size": 4, "head_size": 2, "lookback": 5,
                             "mc_passes": 2, "device": "cpu"},
                       knn={"n_neighbors": 5}, report={"tearsheet": False}, cache=False,
                       engine="vectorized")
assert data.MINE and strategies.MINE and reports.MINE, "the user's own packages"
assert "lstmknn" in lstmknn.backtest.__module__
print("ok", run.stats["# Trades"] >= 0, lstmknn.__version__)
'''


def user_folder(tmp_path: Path) -> Path:
    for name in ("data", "strategies", "reports"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("MINE = True\n")
    (tmp_path / "script.py").write_text(SCRIPT)
    return tmp_path


def run_script(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "script.py"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_script_beside_its_own_data_package_runs_with_the_editable_install(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = run_script(user_folder(tmp_path), env)
    assert done.returncode == 0 and done.stdout.startswith("ok True"), done.stderr[-2000:]


@pytest.mark.slow
def test_a_script_beside_its_own_data_package_runs_with_a_regular_install(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    assert (target / "lstmknn" / "engine" / "api.py").is_file()  # a copy, not a link
    assert not (target / "lstmknn" / "engine").is_symlink()
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
           "PYTHONPATH": str(target)}
    folder = tmp_path / "user"
    folder.mkdir()
    done = run_script(user_folder(folder), env)
    assert done.returncode == 0 and done.stdout.startswith("ok True"), done.stderr[-2000:]
    assert str(target) in subprocess.run(
        [sys.executable, "-c", "import lstmknn.engine.api as a; print(a.__file__)"], env=env,
        cwd=folder, capture_output=True, text=True).stdout
