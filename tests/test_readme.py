"""The README's examples work: command lines parse, Python blocks run, the feature example loads."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from lstmknn.engine.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def command_lines() -> list[str]:
    return [line.strip() for block in blocks("bash") for line in block.splitlines()
            if line.strip().startswith("lstmknn ")]


def test_the_readme_has_examples_to_check():
    assert len(command_lines()) >= 8 and len(blocks("python")) >= 2


@pytest.mark.parametrize("line", command_lines())
def test_every_command_line_in_the_readme_parses(line):
    try:
        build_parser().parse_args(shlex.split(line)[1:])
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"README command does not parse ({exc.code}): {line}")


def test_the_two_quick_start_commands_are_the_ones_ci_runs():
    quick = blocks("bash")[:2]
    assert "pip install torch==2.13.0" in quick[0] and "lstmknn backtest" in quick[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert quick[1].strip() in ci
    assert "install -q -e . && " in ci and "script -qec" in ci  # README-exact venv, in a terminal


def test_the_report_viewing_command_opens_the_run_the_quick_start_writes():
    page = re.search(r"check_report_in_browser\.py\s+(\S+)/tearsheet\.html", README)
    out = re.search(r"lstmknn backtest --out (\S+)", blocks("bash")[0])
    assert page and out and page.group(1) == out.group(1)


def api_section() -> str:
    return README[README.index("## Python API"):README.index("## Layout")]


def test_the_python_api_examples_run(monkeypatch, capsys):
    examples = [b for b in blocks("python") if "import lstmknn" in b]
    assert len(examples) >= 2 and "lstmknn.backtest(" in examples[0]
    monkeypatch.chdir(ROOT)
    for code in examples:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "Sharpe Ratio" in out and "Buy & Hold Return [%]" in out


def test_the_api_section_lists_exactly_the_public_names():
    import lstmknn

    first_cells = [line.split("|")[1] for line in api_section().splitlines()
                   if line.startswith("| `")]
    names = set(re.findall(r"`([A-Za-z_]\w*)[(`]", "\n".join(first_cells)))
    assert names == set(lstmknn.__all__), names ^ set(lstmknn.__all__)


def test_the_user_feature_example_loads_and_computes(tmp_path, monkeypatch, sp500):
    feats = next(b for b in blocks("python") if "def momentum_3" in b)
    toml = next(b for b in blocks("toml") if "custom = [\"feats:momentum_3\"]" in b)
    (tmp_path / "feats.py").write_text(feats)
    (tmp_path / "f.toml").write_text(toml)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    from lstmknn.engine.config import load_config
    from lstmknn.engine.feature_set import feature_frame

    cfg = load_config(tmp_path / "f.toml")
    frame = feature_frame(sp500.iloc[:300], cfg.features)
    assert list(frame.columns) == ["ret_1", "ret_5", "vol_20", "mom_3"]
    sys.modules.pop("feats", None)
