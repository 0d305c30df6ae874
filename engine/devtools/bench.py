"""``lstmknn bench``: speed, memory and forecast quality of the default walk-forward.

Measured in one run, on the same machine: the full default ``lstmknn backtest``
(a subprocess: wall time and peak RSS), the default walk-forward in-process
(training + prediction of all folds), the plain from-scratch recipe on a few
folds (LSTM(50) -> Dense(25) -> Dense(1), 50 epochs, batch 32, no warm start),
and backtrader against the vectorized twin on the same signals.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lstmknn.data.loader import load_prices
from lstmknn.engine.config import Config, load_config, with_overrides
from lstmknn.engine.fusion import fuse
from lstmknn.engine.params import execution_params, strategy_for
from lstmknn.engine.walk_forward import fit_fold, folds_for, predict_fold, prepare, run_walk_forward
from lstmknn.strategies.execution import execute

RECIPE = {"lstm.hidden_size": 50, "lstm.head_size": 25, "lstm.epochs": 50, "lstm.batch_size": 32,
          "lstm.warm_start": False, "lstm.patience": 0, "lstm.dropout": 0.0,
          "lstm.weight_decay": 0.0, "lstm.lr": 0.001}


def _mse(a: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(y)
    return float(np.mean((a[ok] - y[ok]) ** 2))


def bench_full_command(data: str, config: str | None) -> dict:
    """Run ``lstmknn backtest`` as a fresh process: wall time, peak RSS, its own timings."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "lstmknn.engine.cli", "backtest", "--data", data, "--out", out,
               "--quiet", "--no-cache"]
        if config:
            cmd += ["--config", config]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        summary = json.loads((Path(out) / "summary.json").read_text())
    return {"wall_s": wall, "peak_rss_mb": peak_kb / 1024, "timings": summary["timings"],
            "elapsed_s": summary["elapsed_seconds"], "folds": summary["folds"]}


def bench_walk_forward(prices: pd.DataFrame, cfg: Config) -> tuple[dict, pd.DataFrame]:

    t0 = time.perf_counter()
    wf = run_walk_forward(prices, cfg)
    wall = time.perf_counter() - t0
    n = len(wf.folds)
    return {"wall_s": wall, "per_fold_s": wall / n, "folds": n}, wf.predictions


def bench_recipe(prices: pd.DataFrame, cfg: Config, default_pred: pd.DataFrame,
                 n_folds: int) -> dict:
    """The from-scratch recipe on ``n_folds`` evenly spaced folds, fused the same way."""

    rcfg = with_overrides(cfg, RECIPE)
    prep = prepare(prices, rcfg)
    folds = folds_for(prep, rcfg)
    picks = np.unique(np.linspace(0, len(folds) - 2, n_folds).round().astype(int))
    rows, t_fit = [], 0.0

    torch.set_num_threads(cfg.lstm.threads or torch.get_num_threads())  # same as the walk-forward
    for k in picks:
        t0 = time.perf_counter()
        states = fit_fold(prep, folds[k], rcfg)
        p = predict_fold(prep, folds[k], rcfg, states)
        t_fit += time.perf_counter() - t0
        test = np.arange(folds[k].test_start, folds[k].test_end)
        rows.append(pd.DataFrame({"date": prep.index[test], "fold": k, "y_true": prep.labels[test],
                                  "lstm": p["lstm"][0], "knn": p["knn"],
                                  "regime": np.where(prep.vol[test] > p["threshold"][0],
                                                     "volatile", "calm")}))
    rec = pd.concat(rows, ignore_index=True)
    n = len(rec)
    rec = fuse(rec, np.zeros(n, int), np.zeros(n, int), rcfg, ["lstm"])
    same = default_pred[default_pred["fold"].isin(picks)]
    y = rec["y_true"].to_numpy()
    return {
        "folds": [int(k) for k in picks],
        "wall_s": t_fit,
        "per_fold_s": t_fit / len(picks),
        "recipe_mse": {m: _mse(rec[m].to_numpy(), y) for m in ("lstm", "knn", "fused")},
        "default_mse": {m: _mse(same[m].to_numpy(), same["y_true"].to_numpy())
                        for m in ("lstm", "knn", "fused")},
        "zero_mse": _mse(np.zeros(n), y),
    }


def bench_execution(prices: pd.DataFrame, pred: pd.DataFrame, cfg: Config, symbol: str) -> dict:

    p = strategy_for(cfg, 252.0).targets(pred.assign(symbol=symbol))
    out = {}
    for engine in ("backtrader", "vectorized"):
        best = float("inf")
        for _ in range(3 if engine == "vectorized" else 1):
            t0 = time.perf_counter()
            res = execute({symbol: prices}, p, execution_params(cfg), engine=engine)
            best = min(best, time.perf_counter() - t0)
        out[engine] = {"wall_s": best, "final_value": res.final_value}
    out["speedup"] = out["backtrader"]["wall_s"] / out["vectorized"]["wall_s"]
    return out


def run_bench(data: str = "sp500", config: str | None = None, recipe_folds: int = 4,
              full_command: bool = True) -> dict:

    cfg = with_overrides(load_config(config), {"lstm.device": "cpu"}) if config is None else load_config(config)
    prices = load_prices(data)
    res: dict = {"data": data, "config": config or "defaults", "device": cfg.lstm.device}
    if full_command:
        res["full_command"] = bench_full_command(data, config)
    res["walk_forward"], pred = bench_walk_forward(prices.frame, cfg)
    res["recipe"] = bench_recipe(prices.frame, cfg, pred, recipe_folds)
    res["per_fold_speedup"] = res["recipe"]["per_fold_s"] / res["walk_forward"]["per_fold_s"]
    rf, df_ = res["recipe"]["recipe_mse"]["fused"], res["recipe"]["default_mse"]["fused"]
    res["fused_mse_ratio_default_vs_recipe"] = df_ / rf
    res["execution"] = bench_execution(prices.frame, pred, cfg, prices.symbol)
    return res


def format_table(r: dict) -> str:
    wf, rc = r["walk_forward"], r["recipe"]
    lines = [
        f"lstmknn bench on {r['data']} ({r['config']})",
        f"{'run':<34}{'folds':>6}{'wall s':>9}{'s/fold':>9}{'fused MSE':>12}",
        f"{'from-scratch recipe (few folds)':<34}{len(rc['folds']):>6}{rc['wall_s']:>9.2f}"
        f"{rc['per_fold_s']:>9.3f}{rc['recipe_mse']['fused']:>12.4e}",
        f"{'default, same folds':<34}{len(rc['folds']):>6}{'':>9}{'':>9}"
        f"{rc['default_mse']['fused']:>12.4e}",
        f"{'default walk-forward (all folds)':<34}{wf['folds']:>6}{wf['wall_s']:>9.2f}"
        f"{wf['per_fold_s']:>9.3f}",
        f"per-fold speed-up vs recipe: {r['per_fold_speedup']:.0f}x; fused MSE default/recipe on the "
        f"same folds: {r['fused_mse_ratio_default_vs_recipe']:.4f} (zero forecast {rc['zero_mse']:.4e})",
    ]
    if "full_command" in r:
        fc = r["full_command"]
        lines.append(f"full `lstmknn backtest` (fresh process, no cache): {fc['wall_s']:.1f} s wall, "
                     f"peak RSS {fc['peak_rss_mb']:.0f} MB; walk-forward {fc['timings']['walk_forward_seconds']:.1f} s, "
                     f"report {fc['timings'].get('report_seconds', float('nan')):.1f} s")
    ex = r["execution"]
    lines.append(f"execution: backtrader {ex['backtrader']['wall_s']:.3f} s, vectorized twin "
                 f"{ex['vectorized']['wall_s'] * 1000:.1f} ms ({ex['speedup']:.0f}x); final values "
                 f"{ex['backtrader']['final_value']:.2f} / {ex['vectorized']['final_value']:.2f}")
    return "\n".join(lines)
