"""The command line: outputs, report rebuild, and one-line errors for bad input."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from lstmknn.engine.cli import main
from tests.helpers import write_config


@pytest.fixture
def cfg_file(tmp_path):
    return write_config(tmp_path / "small.toml")


def test_backtest_writes_all_outputs_with_the_contract_columns(tmp_path, small_csv, cfg_file, capsys):
    cfg = write_config(tmp_path / "with_report.toml")
    cfg.write_text(cfg.read_text().replace("tearsheet = false", "tearsheet = true"))
    out = tmp_path / "run"
    rc = main(["backtest", "--data", str(small_csv), "--config", str(cfg), "--out", str(out),
               "--quiet", "--no-cache"])
    assert rc == 0
    for name in ("predictions.csv", "equity.csv", "trades.csv", "summary.json", "tearsheet.html"):
        assert (out / name).stat().st_size > 0, name
    pred = pd.read_csv(out / "predictions.csv")
    assert {"date", "fold", "y_true", "lstm", "knn", "regime", "alpha", "fused", "target"} <= set(pred)
    assert list(pd.read_csv(out / "equity.csv").columns) == ["date", "value", "return"]
    assert {"date", "side", "size", "price", "commission"} <= set(pd.read_csv(out / "trades.csv"))
    summary = json.loads((out / "summary.json").read_text())
    for model in ("lstm", "knn", "fused", "zero"):
        assert {"mse", "mae", "direction_accuracy", "n"} <= set(summary["forecast"][model])
    for block in ("strategy", "benchmark"):
        assert {"total_return", "cagr", "sharpe", "max_drawdown", "volatility"} <= set(summary[block])
    assert summary["data"]["rows"] == 420 and len(summary["data"]["sha256"]) == 64
    assert summary["config"]["seed"] == 7 and summary["elapsed_seconds"] > 0
    assert "torch" in summary["versions"]
    assert not list(out.glob(".partial-*"))
    # the report can be rebuilt from the saved files alone
    (out / "tearsheet.html").unlink()
    assert main(["report", str(out)]) == 0
    assert "<img" in (out / "tearsheet.html").read_text()


def test_seed_flag_overrides_the_config(tmp_path, small_csv, cfg_file):
    a, b = tmp_path / "a", tmp_path / "b"
    for out, seed in ((a, "1"), (b, "2")):
        main(["backtest", "--data", str(small_csv), "--config", str(cfg_file), "--out", str(out),
              "--seed", seed, "--quiet", "--no-cache"])
    pa, pb = pd.read_csv(a / "predictions.csv"), pd.read_csv(b / "predictions.csv")
    assert not pa["lstm"].equals(pb["lstm"])


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "lstmknn.engine.cli", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Date,Open,High,Low,Volume\n2020-01-01,1,1,1,1\n", "missing column(s) close"),
        ("Date,Open,High,Low,Close,Volume\n2020-01-01,1,1,1,1,1\n2020-01-01,1,1,1,1,1\n", "duplicate date"),
        ("Date,Open,High,Low,Close,Volume\n2020-01-01,1,1,1,1,1\n2020-01-02,1,1,1,nan,1\n", "not a finite number"),
    ],
)
def test_broken_csv_gives_one_line_error_and_nonzero_exit(tmp_path, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    out = tmp_path / "out"
    r = run_cli("backtest", "--data", str(bad), "--out", str(out), "--quiet")
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_config_typo_and_too_little_data_are_one_line_errors(tmp_path, small_csv):
    typo = tmp_path / "typo.toml"
    typo.write_text("[lstm]\nhiden_size = 3\n")
    r = run_cli("backtest", "--data", str(small_csv), "--config", str(typo), "--quiet")
    assert r.returncode == 2 and "unknown key `lstm.hiden_size`" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("backtest", "--data", str(small_csv), "--quiet", "--no-cache")
    assert r.returncode == 2 and "too little data: 420 rows" in r.stderr
    assert "Traceback" not in r.stderr


def test_report_on_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path):
    r = run_cli("report", str(tmp_path))
    assert r.returncode == 2 and "not a complete run folder" in r.stderr


def test_out_folder_holding_a_users_files_is_refused_before_any_work(tmp_path, small_csv):
    home = tmp_path / "home"
    home.mkdir()
    (home / "summary.json").write_text("my own notes")
    (home / "predictions.csv").write_text("mine")
    r = run_cli("backtest", "--data", str(small_csv), "--out", str(home), "--quiet")
    assert r.returncode == 2 and "not an lstmknn backtest run" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert (home / "summary.json").read_text() == "my own notes"
    assert sorted(p.name for p in home.iterdir()) == ["predictions.csv", "summary.json"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_rerun_replaces_the_previous_run_says_so_and_leaves_no_stale_tearsheet(
        tmp_path, small_csv, capsys):
    with_page = write_config(tmp_path / "page.toml", {"report": {"tearsheet": True}})
    no_page = write_config(tmp_path / "nopage.toml")
    out = tmp_path / "run"
    assert main(["backtest", "--data", str(small_csv), "--config", str(with_page), "--out", str(out),
                 "--quiet"]) == 0
    assert (out / "tearsheet.html").exists()
    capsys.readouterr()
    assert main(["backtest", "--data", str(small_csv), "--config", str(no_page), "--out", str(out),
                 "--quiet"]) == 0
    assert "replaced the previous run in" in capsys.readouterr().out
    assert not (out / "tearsheet.html").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nopage.toml", "page.toml", "run",
                                                          "small.csv"]


def test_version_flag_prints_the_package_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("lstmknn ")


def test_help_is_plain_text_and_every_option_explains_itself():
    import argparse

    from lstmknn.engine.cli import build_parser

    parser = build_parser()
    assert ":mod:" not in parser.format_help() and "``" not in parser.format_help()
    missing = []

    def walk(p: argparse.ArgumentParser, name: str) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")
            elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)) \
                    and not action.help:
                missing.append(f"{name} {action.dest}")

    walk(parser, "lstmknn")
    assert missing == []


@pytest.mark.parametrize("command", [
    ["backtest"], ["signal", "--data", "sp500"], ["sweep", "--grid", "g.toml"],
    ["paper", "init", "--account", "a", "--data", "sp500"],
])
def test_seed_zero_on_the_command_line_is_honoured_by_every_command(command):
    from lstmknn.engine.cli import build_parser
    from lstmknn.engine.cli.common import config_from_args

    args = build_parser().parse_args([*command, "--seed", "0"])
    assert config_from_args(args).seed == 0


def test_a_reader_that_stops_early_is_not_an_error(tmp_path, small_csv, cfg_file):
    out = tmp_path / "run"
    assert main(["backtest", "--data", str(small_csv), "--config", str(cfg_file), "--out", str(out),
                 "--quiet"]) == 0
    r = subprocess.run(f"{sys.executable} -m engine.cli report {out} | head -c 0", shell=True,
                       capture_output=True, text=True, timeout=120)
    assert "Broken pipe" not in r.stderr and "Traceback" not in r.stderr


def test_cuda_requested_on_a_machine_without_it_is_a_one_line_error(tmp_path, small_csv, cfg_file):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    r = run_cli("backtest", "--data", str(small_csv), "--config", str(cfg_file), "--device", "cuda",
                "--out", str(out))
    assert r.returncode == 2 and "cuda" in r.stderr.lower()
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()


HEAVY = ("torch", "sklearn", "matplotlib", "backtrader", "quantstats", "pandas", "distributed")


def test_building_the_parser_loads_no_heavy_dependency():
    code = ("import sys, engine.cli as c; c.build_parser(); "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_help_and_version_answer_without_importing_torch():
    code = ("import sys\nfrom engine.cli import main\nfor a in (['--help'], ['backtest', '--help'], "
            "['paper', 'step', '--help'], ['--version']):\n"
            "    try:\n        main(a)\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules, 'sklearn' in sys.modules, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stderr.strip().splitlines()[-1] == "False False"


def test_the_sweeps_rank_choices_are_the_rankings_it_knows():
    from lstmknn.engine.cli.sweep import RANKS
    from lstmknn.engine.sweep.ranking import RANKINGS

    assert sorted(RANKS) == sorted(RANKINGS)


@pytest.mark.parametrize("wait", ["nan", "inf", "-1", "1e300"])
def test_paper_step_refuses_a_wait_that_is_not_a_sane_number_of_seconds(tmp_path, wait, capsys):
    rc = main(["paper", "step", "--account", "demo", "--root", str(tmp_path), "--wait", wait])
    err = capsys.readouterr().err
    assert rc == 2 and "--wait must be a number of seconds from 0 to" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("option", ["--until", "--accept-revisions-from"])
def test_paper_dates_that_could_be_day_or_month_first_are_refused(tmp_path, option, capsys):
    rc = main(["paper", "step", "--account", "demo", "--root", str(tmp_path), option, "03/02/2017"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{option} '03/02/2017': could be day-first or month-first" in err


def test_asof_follows_dayfirst_and_date_format_like_the_data():
    from lstmknn.engine.cli import build_parser
    from lstmknn.engine.cli.common import date_arg

    def asof(*flags: str) -> pd.Timestamp:
        args = build_parser().parse_args(["signal", "--data", "sp500", *flags])
        return date_arg(args.asof, "--asof", args)

    assert asof("--asof", "03/02/2017", "--dayfirst") == pd.Timestamp("2017-02-03")
    assert asof("--asof", "03/02/2017", "--no-dayfirst") == pd.Timestamp("2017-03-02")
    assert asof("--asof", "03.02.2017", "--date-format", "%d.%m.%Y") == pd.Timestamp("2017-02-03")
    assert asof("--asof", "2017-02-03", "--date-format", "%d.%m.%Y") == pd.Timestamp("2017-02-03")
    assert asof() is None


def test_signal_with_an_ambiguous_asof_is_one_line(capsys):
    rc = main(["signal", "--data", "sp500", "--asof", "03/02/2017"])
    err = capsys.readouterr().err
    assert rc == 2 and "could be day-first or month-first" in err
    assert len(err.strip().splitlines()) == 1


def test_report_on_a_missing_folder_says_there_is_no_such_folder(tmp_path):
    r = run_cli("report", str(tmp_path / "nope"))
    assert r.returncode == 2 and "no such folder" in r.stderr


def test_a_symbol_with_too_little_history_is_left_out_and_named_in_summary_and_stderr(
        tmp_path, sp500, cfg_file, capsys):
    from tests.helpers import write_csv

    long = write_csv(sp500.iloc[:420], tmp_path / "long.csv")
    short = write_csv(sp500.iloc[300:400], tmp_path / "short.csv")  # 100 rows < train_window
    out = tmp_path / "run"
    assert main(["backtest", "--data", str(long), str(short), "--config", str(cfg_file),
                 "--out", str(out), "--engine", "vectorized", "--no-cache"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["excluded_symbols"]) == ["short"]
    assert "too little data" in summary["excluded_symbols"]["short"]
    assert [s["symbol"] for s in summary["symbols"]] == ["long"]
    err = capsys.readouterr().err
    assert "1 symbol(s) left out" in err and "short: too little data" in err
    assert "walk-forward done; trading and writing the report ..." in err
