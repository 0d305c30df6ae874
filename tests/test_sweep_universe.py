"""Sweeps follow the configuration's scope and sizing: pooled and rank configurations are swept
on the whole universe (as the backtest trades them), and configurations that decide exactly
alike are detected and counted as one trial."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from lstmknn.data.synthetic import make_universe, to_price_data
from lstmknn.engine.backtest import run_backtest
from lstmknn.engine.config import from_dict
from lstmknn.engine.sweep import run_sweep
from lstmknn.engine.sweep.task import UNIVERSE
from tests.helpers import TINY


@pytest.fixture(scope="module")
def universe():
    return to_price_data(make_universe(4, 260, ic=0.1, seed=5, staggered=True))


def base(**sections: dict):
    raw = copy.deepcopy(TINY)
    raw["walk_forward"] = {"train_window": 80, "step": 40}
    raw["signal"] = {"top_k": 2, "min_change": 0.02}
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return from_dict(raw)


def test_a_pooled_rank_sweep_trades_the_universe_as_the_backtest_does(universe, tmp_path):
    cfg = base(model={"scope": "pooled"}, signal={"sizing": "rank"})
    result = run_sweep(universe, cfg, {"signal.top_k": [1, 2]}, tmp_path / "sweep",
                       cache_dir=tmp_path / "cache")
    assert list(result.results["symbol"]) == [UNIVERSE, UNIVERSE]
    assert (result.results["status"] == "ok").all()
    for top_k in (1, 2):
        row = result.results[result.results["signal.top_k"] == top_k].iloc[0]
        run = run_backtest(universe, from_dict({"signal": {"top_k": top_k}}, base=cfg),
                           engine="vectorized", cache_dir=tmp_path / "cache")
        assert row["total_return"] == pytest.approx(run.summary["strategy"]["total_return"],
                                                    rel=1e-12)
        assert row["sharpe"] == pytest.approx(run.summary["strategy"]["sharpe"], rel=1e-12)


def test_a_grid_over_the_scope_sweeps_per_symbol_and_pooled_side_by_side(universe, tmp_path):
    cfg = base(signal={"sizing": "threshold"})
    result = run_sweep(universe, cfg, {"model.scope": ["per_symbol", "pooled"]},
                       tmp_path / "sweep", cache_dir=tmp_path / "cache")
    per = result.results[result.results["model.scope"] == "per_symbol"]
    pooled = result.results[result.results["model.scope"] == "pooled"]
    assert sorted(per["symbol"]) == sorted(d.symbol for d in universe)
    assert list(pooled["symbol"]) == [UNIVERSE]


def test_thresholds_below_the_cost_rate_are_one_trial_and_flagged_on_the_page(universe, tmp_path):
    cfg = base(model={"scope": "pooled"})  # cost rate 0.001, cost-aware
    grid = {"signal.threshold": [0.0, 0.0005, 0.003]}
    result = run_sweep(universe, cfg, grid, tmp_path / "sweep", cache_dir=tmp_path / "cache")
    summary = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert summary["duplicates"] == {"2": 1}
    assert summary["n_distinct"] == 2 and summary["best"]["n_trials"] == 2
    ranked = result.ranked.set_index("config")
    assert ranked.loc[2, "duplicate_of"] == 1 and np.isnan(ranked.loc[3, "duplicate_of"])
    page = (tmp_path / "sweep" / "sweep.html").read_text()
    assert "#2 = #1" in page and "one trial" in page
