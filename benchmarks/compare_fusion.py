"""Forecast table of every model, fusion method and baseline on one dataset.

    python benchmarks/compare_fusion.py --data sp500 [--data msft] [--cache .lstmknn_cache]

Runs the walk-forward once per fusion method (the LSTM fits are shared through
the fold cache) plus the multi-window ensemble, and prints MSE (relative to the
zero forecast too), direction accuracy, IC and Diebold-Mariano p-values of the
fused forecast against zero, the LSTM and the KNN.
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from data.loader import load_prices
from engine.cache import FoldCache
from engine.config import load_config, with_overrides
from engine.walk_forward import run_walk_forward
from reports.forecast_metrics import forecast_table
from reports.significance import dm_table

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


def compare(data: str, cache: str | None, base: str | None = None) -> pd.DataFrame:
    prices = load_prices(data).frame
    rows = []
    baselines_done = False
    for name, over in METHODS.items():
        cfg = with_overrides(load_config(base), {"lstm.device": "cpu", **over})
        pred = run_walk_forward(prices, cfg, cache=FoldCache(cache) if cache else None).predictions
        pred = pred.dropna(subset=["y_true"])
        models = ["lstm", "knn", "fused"] + ([] if baselines_done else ["train_mean", "persistence"])
        table = forecast_table(pred, models)
        dm = dm_table(pred, target_model="fused", against=["zero", "lstm", "knn"])
        for model, r in table.iterrows():
            if model == "zero" and baselines_done:
                continue
            label = f"fused[{name}]" if model == "fused" else (
                f"{model}[ensemble]" if model in ("lstm", "knn") and name == "ensemble_regime" else model)
            if model in ("lstm", "knn") and name not in ("regime", "ensemble_regime"):
                continue
            row = {"data": data, "model": label, **r.to_dict()}
            if model == "fused":
                for other in ("zero", "lstm", "knn"):
                    row[f"dm_p_vs_{other}"] = dm.loc[other, "p_value"]
            rows.append(row)
        baselines_done = True
    out = pd.DataFrame(rows)
    zero = out.loc[out["model"] == "zero", "mse"].iloc[0]
    out.insert(3, "mse_vs_zero", out["mse"] / zero)
    return out


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
