"""Sweeps: grid validation, outputs, resuming after an interruption, failed tasks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

import lstmknn.engine.sweep as sweep
from lstmknn.engine.cli import main
from lstmknn.engine.config import ConfigError, from_dict, with_overrides
from lstmknn.engine.sweep import expand_grid, load_grid, run_sweep
from tests.helpers import TINY, write_csv

GRID = {"lstm.lookback": [5, 10], "regime.alpha_calm": [0.6, 0.8]}


@pytest.fixture
def base():
    return with_overrides(from_dict(TINY), {"walk_forward.step": 50})


@pytest.fixture
def csv(sp500, tmp_path: Path) -> Path:
    return write_csv(sp500.iloc[:420], tmp_path / "spx.csv")


def task_mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "tasks").glob("*.json")}


def test_grid_files_accept_quoted_dotted_keys_and_tables(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('"lstm.lookback" = [10, 20]\nseed = [1, 2]\n[regime]\nalpha_calm = [0.6]\n')
    assert load_grid(path) == {"lstm.lookback": [10, 20], "seed": [1, 2],
                               "regime.alpha_calm": [0.6]}


@pytest.mark.parametrize(("grid", "named"), [
    ({"lstm.lookbak": [5]}, "lstm.lookbak"),
    ({"regime.alpha_calm": [0.6, 1.5]}, "regime.alpha_calm"),
    ({"lstm.hidden_size": 8}, "lstm.hidden_size"),
    ({"lstm.lookback": [5, 5]}, "lstm.lookback"),
    ({"lstm.lookback": [5, 150], "knn.n_neighbors": [10]}, "lstm.lookback"),
    ({"nosection.key": [1]}, "nosection"),
])
def test_grid_errors_name_the_bad_key(base, grid, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        expand_grid(base, grid)


def test_a_combination_breaking_a_cross_key_rule_is_refused_before_anything_runs(base):
    grid = {"walk_forward.train_window": [150, 60], "knn.n_neighbors": [10, 80]}
    with pytest.raises(ConfigError, match="combination walk_forward.train_window=60, knn.n_neighbors=80"):
        expand_grid(base, grid)


def test_bad_grid_on_the_command_line_exits_2_with_one_line_naming_the_key(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text('"lstm.lookback" = [10]\n"regime.alpha_clam" = [0.6]\n')
    out = tmp_path / "out"
    assert main(["sweep", "--grid", str(grid), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "regime.alpha_clam" in err
    assert not out.exists()


def test_sweep_writes_results_ranking_and_a_self_contained_page(base, csv, tmp_path):
    res = run_sweep([str(csv)], base, GRID, tmp_path / "out")
    out = res.out_dir
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 4 and set(results["status"]) == {"ok"}
    for col in ("lstm.lookback", "regime.alpha_calm", "lstm_mse", "knn_ic", "fused_direction_accuracy",
                "zero_mse", "total_return", "sharpe", "max_drawdown", "elapsed", "status", "error"):
        assert col in results.columns
    ranked = pd.read_csv(out / "summary.csv")
    assert list(ranked["rank"]) == [1, 2, 3, 4]
    assert ranked["sharpe"].is_monotonic_decreasing
    summary = json.loads((out / "summary.json").read_text())
    best = summary["best"]
    assert best["config"] == ranked["config"].iloc[0] and best["n_trials"] == 4
    assert 0.0 <= best["deflated_sharpe"] <= 1.0
    page = (out / "sweep.html").read_text()
    assert page.count("data:image/png;base64,") >= 2
    assert "http://" not in page and "https://" not in page
    head = page[page.index("<p>"):page.index("</p>")]
    assert not re.search(r"\d\.\d{6,}", head), head  # numbers are rounded for reading
    assert "portfolio: Sharpe" in head
    by_mse = run_sweep([str(csv)], base, GRID, tmp_path / "out", rank_by="fused_mse")
    assert by_mse.summary["tasks"]["resumed"] == 4
    assert by_mse.ranked["fused_mse_rel_zero"].is_monotonic_increasing


def test_an_interrupted_sweep_resumes_without_redoing_finished_tasks(base, csv, tmp_path,
                                                                      monkeypatch):
    out = tmp_path / "out"
    save = sweep.TaskStore.save
    saved = []

    def crash_after_two(self, record):
        save(self, record)
        saved.append(record["key"])
        if len(saved) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(sweep.TaskStore, "save", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        run_sweep([str(csv)], base, GRID, out)
    monkeypatch.setattr(sweep.TaskStore, "save", save)
    before = task_mtimes(out)
    assert len(before) == 2 and not (out / "results.csv").exists()

    calls = []
    evaluate = sweep.evaluate_task
    monkeypatch.setattr(sweep, "evaluate_task", lambda *a, **k: calls.append(a[2]) or evaluate(*a, **k))
    res = run_sweep([str(csv)], base, GRID, out)
    assert res.summary["tasks"] == {"total": 4, "run": 2, "resumed": 2, "failed": 0}
    assert len(calls) == 2
    after = task_mtimes(out)
    assert {k: after[k] for k in before} == before

    (out / "tasks" / sorted(after)[0]).unlink()
    again = run_sweep([str(csv)], base, GRID, out)
    assert again.summary["tasks"]["run"] == 1 and len(calls) == 3
    pd.testing.assert_frame_equal(again.results.drop(columns="elapsed"),
                                  res.results.drop(columns="elapsed"))


def test_a_failing_task_is_recorded_while_the_others_complete(base, csv, sp500, tmp_path, capsys):
    short = write_csv(sp500.iloc[:120], tmp_path / "short.csv")
    grid = tmp_path / "grid.toml"
    grid.write_text('"regime.alpha_calm" = [0.6, 0.8]\n')
    conf = tmp_path / "base.toml"
    conf.write_text(_toml(base.to_dict()))
    out = tmp_path / "out"
    code = main(["sweep", "--data", str(csv), str(short), "--config", str(conf), "--grid",
                 str(grid), "--out", str(out), "--quiet"])
    assert code == 1
    assert "4 tasks (4 run, 0 resumed, 2 failed)" in capsys.readouterr().out
    results = pd.read_csv(out / "results.csv")
    failed = results[results["symbol"] == "short"]
    assert set(failed["status"]) == {"error"}
    assert failed["error"].str.contains("too little data").all()
    assert set(results.loc[results["symbol"] == "spx", "status"]) == {"ok"}
    by_symbol = pd.read_csv(out / "by_symbol.csv").set_index("symbol")
    assert by_symbol.loc["short", "n_failed"] == 2 and by_symbol.loc["spx", "n_ok"] == 2
    assert "too little data" in (out / "sweep.html").read_text()


def _toml(d: dict) -> str:
    lines = [f"seed = {d['seed']}"]
    for section, values in d.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def test_task_keys_of_symbols_that_differ_only_in_unsafe_characters_differ(sp500):
    from types import SimpleNamespace

    from lstmknn.data.prices import PriceData
    from lstmknn.engine.sweep.store import task_key

    variant = SimpleNamespace(config_id="c0ffee")
    keys = {task_key(s, variant, [PriceData(s, sp500.iloc[:5], "f.csv", "ab" * 32)])
            for s in ("^GSPC", "_GSPC", "=GSPC")}
    assert len(keys) == 3 and task_key("SPY", variant, [PriceData("SPY", sp500, "f", "ab" * 32)]) \
        == "SPY-c0ffee-abababab"
