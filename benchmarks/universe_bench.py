"""Universe benchmark: pooled walk-forward + cross-sectional backtest, wall time and peak memory.

    python benchmarks/universe_bench.py                 # every case, each in a fresh process
    python benchmarks/universe_bench.py --case sp500_members [--json]

Cases: ``sp500_members`` (pooled + rank targets + both engines), ``us20`` (pooled, monthly
folds), ``us20_per_symbol`` (serial and ``--jobs 2``), ``synthetic`` (500 x 10 years),
``planted`` (IC recovery on planted and null universes with a cheap forecaster). Each case
prints wall time, peak RSS (``resource.getrusage``) and the cross-sectional IC table.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = ["planted", "sp500_members", "us20", "us20_per_symbol", "synthetic"]
MODELS = ["lstm", "knn", "fused", "train_mean", "persistence"]
# sp500_members has 245 days: short windows; lookback 10 (features warm up in ~35 bars).
SP500_MEMBERS = {"walk_forward": {"train_window": 120, "step": 21},
                 "lstm": {"lookback": 10, "device": "auto", "epochs": 8, "threads": 2},
                 "model": {"scope": "pooled"},
                 # min_change must stay below the per-name weight (1/top_k) or nothing trades
                 "signal": {"sizing": "rank", "top_k": 50, "buffer": 25, "max_replace": 10,
                            "min_change": 0.005}}
US20 = {"walk_forward": {"train_window": 1000, "step": 21}, "model": {"scope": "pooled"}}
SYNTHETIC = {"walk_forward": {"train_window": 500, "step": 63}, "model": {"scope": "pooled"}}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _load(name: str):  # noqa: ANN202
    from data.sources import load_sources

    return load_sources([name])


def _table(pred, models=MODELS) -> dict:  # noqa: ANN001
    from reports.cross_section import ic_summary, quantile_returns

    return {"ic": ic_summary(pred, models), "quantiles": quantile_returns(pred, "fused", 5)}


def _pooled(datas, raw: dict) -> tuple[dict, object]:  # noqa: ANN001
    from engine.config import from_dict
    from engine.pooled import run_pooled_walk_forward

    cfg = from_dict(raw)
    t = time.perf_counter()
    res = run_pooled_walk_forward(datas, cfg)
    wall = time.perf_counter() - t
    out = {"walk_forward_s": wall, "folds": len(res.folds), "rows": len(res.predictions),
           "symbols": int(res.predictions["symbol"].nunique()), "excluded": len(res.excluded)}
    return out, (cfg, res)


def case_sp500_members() -> dict:
    import numpy as np

    from strategies.execution import execute
    from strategies.ranking import rank_targets

    t0 = time.perf_counter()
    datas = _load("sp500_members")
    load_s = time.perf_counter() - t0
    out, (cfg, res) = _pooled(datas, SP500_MEMBERS)
    out["load_s"] = load_s
    pred = res.predictions
    t = time.perf_counter()
    targets = rank_targets(pred, cfg.signal, cfg.cost_rate)
    out["rank_targets_s"] = time.perf_counter() - t
    traded = pred[["date", "symbol"]].merge(targets, on=["date", "symbol"], how="left")
    prices = {d.symbol: d.frame for d in datas if d.symbol in set(pred["symbol"])}
    finals = {}
    for engine in ("vectorized", "backtrader"):
        t = time.perf_counter()
        r = execute(prices, traded, cfg, engine=engine)
        out[f"{engine}_s"] = time.perf_counter() - t
        finals[engine] = r.final_value
    out["final_value"] = finals
    out["twin_rel_diff"] = abs(finals["vectorized"] - finals["backtrader"]) / finals["backtrader"]
    out["mean_names_held"] = float(targets[targets["target"] > 0].groupby("date").size().mean())
    out["total_s"] = time.perf_counter() - t0
    out["table"] = _table(pred)
    out["table_cs_rank"] = None
    raw = {**SP500_MEMBERS, "model": {"scope": "pooled", "label": "cs_rank"}}
    if "--no-cs" in sys.argv:
        return out
    o2, (_, res2) = _pooled(datas, raw)
    out["cs_rank_walk_forward_s"] = o2["walk_forward_s"]
    out["table_cs_rank"] = _table(res2.predictions)
    assert np.isfinite(out["twin_rel_diff"])
    return out


def case_us20() -> dict:
    t0 = time.perf_counter()
    datas = _load("us20")
    out, (_, res) = _pooled(datas, US20)
    out["total_s"] = time.perf_counter() - t0
    out["table"] = _table(res.predictions)
    return out


def case_us20_per_symbol() -> dict:
    import pandas as pd

    from engine.config import from_dict
    from engine.universe import walk_forward_symbols

    datas = _load("us20")
    cfg = from_dict({"walk_forward": US20["walk_forward"]})
    out = {}
    for jobs in (1, 2):
        t = time.perf_counter()
        results = walk_forward_symbols(datas, cfg, jobs=jobs)
        out[f"jobs{jobs}_s"] = time.perf_counter() - t
    pred = pd.concat([r.predictions.assign(symbol=d.symbol) for d, r in zip(datas, results, strict=True)])
    out["table"] = _table(pred)
    return out


def case_synthetic() -> dict:
    from data.synthetic import make_universe, to_price_data

    t0 = time.perf_counter()
    datas = to_price_data(make_universe(500, 2520, ic=0.03, seed=0))
    out = {"generate_s": time.perf_counter() - t0}
    o, (_, res) = _pooled(datas, SYNTHETIC)
    out.update(o)
    out["total_s"] = time.perf_counter() - t0
    out["table"] = _table(res.predictions, [*MODELS])
    return out


def case_planted() -> dict:
    import numpy as np

    from data.synthetic import make_universe, planted_ic
    from reports.cross_section import ic_by_date, ic_summary

    out = {}
    for name, ic in (("planted", 0.05), ("null", 0.0)):
        f = make_universe(500, 2520, ic=ic, seed=11).sort_values(["symbol", "date"])
        f["y_true"] = f.groupby("symbol")["close"].shift(-1) / f["close"] - 1.0
        f["forecast"] = f["signal"] + np.random.default_rng(1).standard_normal(len(f))
        f = f.dropna(subset=["y_true"])
        s = ic_summary(f, ["forecast"])["forecast"]
        se = float(ic_by_date(f, "forecast").std(ddof=1) / math.sqrt(s["n_dates"]))
        target = planted_ic(ic, 1.0)
        out[name] = {"planted_ic": target, "measured_ic": s["ic"], "se": se,
                     "z": (s["ic"] - target) / se, "ic_tstat": s["ic_tstat"]}
    return out


def run_case(name: str) -> dict:
    import torch

    torch.set_num_threads(2)
    t = time.perf_counter()
    out = globals()[f"case_{name}"]()
    out["wall_s"] = time.perf_counter() - t
    out["peak_rss_mib"] = peak_mib()
    return out


def _print(name: str, r: dict) -> None:
    print(f"== {name}: wall {r['wall_s']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB")
    for k, v in r.items():
        if k in ("table", "table_cs_rank", "wall_s", "peak_rss_mib") or v is None:
            continue
        print(f"   {k}: {v:.3g}" if isinstance(v, float) else f"   {k}: {v}")
    for key in ("table", "table_cs_rank"):
        if r.get(key):
            print(f"   {key}:  model        IC   rankIC    ICIR  t-stat  pos%  dates")
            for m, s in r[key]["ic"].items():
                print(f"     {m:12s} {s['ic']:+.4f} {s['rank_ic']:+.4f} {s['icir']:+.3f} "
                      f"{s['ic_tstat']:+6.2f} {100 * s['positive_share']:4.0f} {s['n_dates']:6d}")
            q = r[key]["quantiles"]
            print("     fused quintile mean (bp): "
                  + " ".join(f"{1e4 * v:+.2f}" for v in q["mean"].values())
                  + f"; spread {1e4 * q['spread']:+.2f} bp (t {q['spread_tstat']:+.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=CASES, action="append")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cases = args.case or CASES
    if len(cases) == 1:
        r = run_case(cases[0])
        print(json.dumps(r, default=float) if args.json else "", end="\n" if args.json else "")
        if not args.json:
            _print(cases[0], r)
        return
    for c in cases:  # a fresh process per case: peak memory is the case's own
        proc = subprocess.run([sys.executable, __file__, "--case", c, "--json"],
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            print(f"== {c}: failed\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(r) if args.json else "", end="\n" if args.json else "")
        if not args.json:
            _print(c, r)


if __name__ == "__main__":
    main()
