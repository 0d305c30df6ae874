"""``lstmknn audit`` from the command line: exit 0 clean, 1 with the leaks, 2 for user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import write_config

ROOT = Path(__file__).resolve().parents[1]


def audit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lstmknn.engine.cli", "audit", "--quiet", *args],
                          capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={"PYTHONPATH": f"{ROOT}:{cwd}", "PATH": "/usr/bin:/bin"})


def test_a_leaky_user_feature_exits_1_with_the_leak_in_json_and_a_clean_one_exits_0(
        tmp_path, small_csv):
    (tmp_path / "myfeats.py").write_text(
        "import numpy as np\n"
        "def peek(prices):\n"
        "    return np.log(prices['close']).diff().shift(-1).rename('peek')\n"
        "def mom(prices):\n"
        "    return np.log(prices['close']).diff(3).rename('mom')\n")
    leaky = write_config(tmp_path / "leaky.toml", {"features": {"custom": ["myfeats:peek"]}})
    clean = write_config(tmp_path / "clean.toml", {"features": {"custom": ["myfeats:mom"]}})
    r = audit("--data", str(small_csv), "--config", str(leaky), "--cuts", "2", "--json",
              cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["clean"] is False
    first = {(leak["column"], leak["stage"]) for leak in out["leaks"]}
    assert ("peek", "feature") in first
    assert all({"column", "stage", "first_bar", "kind"} <= set(leak) for leak in out["leaks"])
    r = audit("--data", str(small_csv), "--config", str(clean), "--cuts", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "clean" in r.stdout


def test_user_errors_exit_2_in_one_line(tmp_path, small_csv):
    bad = write_config(tmp_path / "bad.toml", {"features": {"custom": ["nosuchmodule:f"]}})
    r = audit("--data", str(small_csv), "--config", str(bad), cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = audit("--data", str(small_csv), "--cuts", "0", cwd=tmp_path)
    assert r.returncode == 2 and "--cuts" in r.stderr
