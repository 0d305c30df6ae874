"""Forecast table of every model, fusion method and baseline on one dataset.

    python benchmarks/compare_fusion.py --data sp500 [--data msft] [--cache .lstmknn_cache]

Runs the walk-forward once per fusion method (the LSTM fits are shared through
the fold cache) plus the multi-window ensemble, and prints MSE (relative to the
zero forecast too), direction accuracy, IC and Diebold-Mariano p-values of the
fused forecast against zero, the LSTM and the KNN. Every figure is measured on
the same rows: the bars that every run forecasts (the ensemble's 60-bar lookback
starts later than a 10-bar one), so ``mse_vs_zero`` compares like with like.
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from lstmknn.data.loader import load_prices
from lstmknn.engine.cache import FoldCache
from lstmknn.engine.config import load_config, with_overrides
from lstmknn.engine.walk_forward import run_walk_forward
from lstmknn.reports.forecast_metrics import forecast_table, relative_mse
from lstmknn.reports.significance import dm_table

METHODS = {
    "fixed": {"fusion.method": "fixed"},
    "regime": {"fusion.method": "regime"},
    "regime_learned": {"fusion.method": "regime_learned"},
    "stacking": {"fusion.method": "stacking", "fusion.ridge_alpha": 100.0},
    "ensemble_regime": {"fusion.method": "regime", "lstm.lookback": [10, 60],
                        "knn.n_neighbors": [10, 25, 50, 100]},
    "ensemble_stacking": {"fusion.method": "stacking", "fusion.ridge_alpha": 100.0,
                          "lstm.lookback": [10, 60], "knn.n_neighbors": [10, 25, 50, 100]},
}


SHOWN_BASES = {"regime": "", "ensemble_regime": "[ensemble]"}  # runs whose lstm/knn are listed


def common_frame(runs: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, list[str]]:
    """One row per bar present in every run, columns ``fused[name]``, ``lstm[name]``,
    ``knn[name]`` per run plus the baselines of the first run and ``y_true``.

    The walk-forwards of different lookbacks start on different bars; keeping only
    the bars all of them forecast puts every figure of the table on the same rows.
    """
    frame: pd.DataFrame | None = None
    labels: list[str] = []
    for i, (name, pred) in enumerate(runs.items()):
        keys = [k for k in ("symbol", "date") if k in pred.columns]
        cols = {m: f"{m}[{name}]" for m in ("fused", "lstm", "knn")}
        if i == 0:
            cols.update({"train_mean": "train_mean", "persistence": "persistence",
                         "y_true": "y_true"})
        part = pred[keys + list(cols)].rename(columns=cols)
        labels += [c for c in cols.values() if c != "y_true"]
        if frame is None:
            frame = part
        else:
            frame = frame.merge(part, on=keys, how="inner", validate="one_to_one")
    assert frame is not None
    frame = frame.dropna(subset=labels + ["y_true"]).reset_index(drop=True)
    return frame, labels


def compare(data: str, cache: str | None, base: str | None = None) -> pd.DataFrame:
    """The forecast table of one dataset, every figure on the bars all runs forecast."""
    prices = load_prices(data).frame
    runs = {}
    for name, over in METHODS.items():
        cfg = with_overrides(load_config(base), {"lstm.device": "cpu", **over})
        pred = run_walk_forward(prices, cfg, cache=FoldCache(cache) if cache else None).predictions
        runs[name] = pred.dropna(subset=["y_true"])
    frame, labels = common_frame(runs)
    table = forecast_table(frame, labels)
    table.insert(1, "mse_vs_zero", relative_mse(frame, labels)["mse_vs_zero"])
    rows = []
    for label, r in table.iterrows():
        model, _, run = str(label).partition("[")
        run = run.rstrip("]")
        if model in ("lstm", "knn"):
            if run not in SHOWN_BASES:
                continue
            shown = f"{model}{SHOWN_BASES[run]}"
        else:
            shown = str(label)
        row = {"data": data, "model": shown, **r.to_dict()}
        if model == "fused":
            dm = dm_table(frame, target_model=str(label),
                          against=["zero", f"lstm[{run}]", f"knn[{run}]"])
            for other in ("zero", "lstm", "knn"):
                row[f"dm_p_vs_{other}"] = dm.loc[other if other == "zero" else f"{other}[{run}]",
                                                 "p_value"]
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append")
    ap.add_argument("--config")
    ap.add_argument("--cache", default=".lstmknn_cache")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    frames = [compare(d, a.cache, a.config) for d in (a.data or ["sp500"])]
    table = pd.concat(frames, ignore_index=True)
    if a.json:
        print(json.dumps(table.to_dict(orient="records"), indent=1, default=str))
    else:
        with pd.option_context("display.width", 200, "display.max_columns", 20,
                               "display.float_format", "{:.4g}".format):
            print(table.to_string(index=False))


if __name__ == "__main__":
    main()
