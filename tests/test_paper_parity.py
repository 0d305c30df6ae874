"""Replaying history through ``paper step`` bar by bar gives the backtest's fills and equity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lstmknn.data.loader import load_prices
from lstmknn.engine.backtest import run_backtest
from lstmknn.engine.cli import main
from lstmknn.engine.config import load_config
from lstmknn.engine.paper.accounts import open_account
from lstmknn.engine.paper.report import ledger_frames
from lstmknn.engine.params import execution_params
from lstmknn.strategies.execution import execute
from tests.helpers import write_config, write_csv

VALUE_RTOL = 1e-9  # relative equity / fill tolerance against either engine
COSTLY = {"execution": {"commission": 0.001, "commission_fixed": 1.0, "slippage": 0.001},
          "signal": {"sizing": "proportional", "scale": 0.004, "min_change": 0.05}}




@pytest.fixture(scope="module")
def csv(tmp_path_factory, sp500):
    return write_csv(sp500.iloc[:420], tmp_path_factory.mktemp("parity") / "spx.csv")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One fold cache for the module: every case trains the same models."""
    return tmp_path_factory.mktemp("parity-cache")


def replay(root, csv, cfg_path, cache, steps, start=None):
    """Init an account and step it once per ``--until`` date (None: to the end)."""
    args = ["--root", str(root), "--account", "replay"]
    init = ["paper", "init", *args, "--data", str(csv), "--config", str(cfg_path), "--cache",
            str(cache)]
    assert main(init + (["--start", start] if start else [])) == 0
    for until in steps:
        assert main(["paper", "step", *args, "--quiet",
                     *(["--until", until] if until else [])]) == 0
    folder, ledger = open_account(root, "replay")
    try:
        return ledger_frames(ledger)
    finally:
        ledger.close()


def compare(paper, result):
    """Max relative equity, fill size and fill price difference; asserts every fill row matches."""
    eq = paper["equity"]
    assert list(eq["date"]) == list(result.equity["date"])
    rel = float(np.max(np.abs(eq["value"].to_numpy() / result.equity["value"].to_numpy() - 1)))
    trades = result.trades.reset_index(drop=True)
    pd.testing.assert_frame_equal(paper["trades"], trades, rtol=VALUE_RTOL, check_dtype=False)
    filled = trades["price"].notna().to_numpy()
    ours = paper["trades"]
    # sizes relative to the largest order: dust rebalances (1e-5 shares) carry float residue
    size = np.max(np.abs(ours["size"].to_numpy() - trades["size"].to_numpy()), initial=0.0) / \
        max(float(trades["size"].abs().max()), 1.0)
    price = np.max(np.abs(ours["price"].to_numpy()[filled] / trades["price"].to_numpy()[filled]
                          - 1), initial=0.0)
    assert rel < VALUE_RTOL and size < VALUE_RTOL and price < VALUE_RTOL, (rel, size, price)
    return max(rel, size, price)


@pytest.mark.parametrize("extra", [None, COSTLY], ids=["threshold", "proportional-costly"])
def test_bar_by_bar_paper_matches_vectorized_and_backtrader_backtests(tmp_path, csv, cache, extra):
    cfg_path = write_config(tmp_path / "cfg.toml", extra)
    cfg = load_config(cfg_path)
    dates = pd.read_csv(csv)["Date"]
    steps = [dates.iloc[260], *dates.iloc[261:275], dates.iloc[330], None]  # 14 one-bar steps
    paper = replay(tmp_path / "acc", csv, cfg_path, cache, steps)
    run = run_backtest([str(csv)], cfg, engine="vectorized", cache_dir=cache)
    assert len(paper["trades"]) > 20 and (paper["trades"]["status"] == "filled").sum() > 20
    vec = compare(paper, run.result)
    prices = {"spx": load_prices(csv).frame}
    bt = compare(paper, execute(prices, run.predictions, execution_params(cfg), engine="backtrader"))
    sig = paper["signals"].set_index("date")
    pred = run.predictions.set_index("date").loc[sig.index]
    np.testing.assert_array_equal(sig["target"], pred["target"])
    np.testing.assert_allclose(sig["fused"], pred["fused"], rtol=1e-12)
    print(f"parity {extra and 'costly' or 'threshold'}: max rel equity diff vs vectorized {vec:.1e}, "
          f"vs backtrader {bt:.1e}; {len(paper['trades'])} fill reports")


def test_an_account_started_later_matches_the_backtest_of_that_span(tmp_path, csv, cache):
    cfg_path = write_config(tmp_path / "cfg.toml")
    cfg = load_config(cfg_path)
    paper = replay(tmp_path / "acc", csv, cfg_path, cache, [None], start="2000-04-03")
    run = run_backtest([str(csv)], cfg, engine="vectorized", cache_dir=cache)
    span = run.predictions[run.predictions["date"] >= "2000-04-03"]
    prices = {"spx": load_prices(csv).frame}
    compare(paper, execute(prices, span, execution_params(cfg), engine="vectorized"))
