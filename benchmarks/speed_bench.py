"""Speed benchmark (issue: per-symbol universes at pooled cost, bounded memory).

    python benchmarks/speed_bench.py                       # every case
    python benchmarks/speed_bench.py --case us20 --case memory

Cases
  us20        the us20 universe (20 symbols, 1990-2016) with the configuration that gave
              today's figures (benchmarks/universe_bench.py: train_window 1000, step 21, the
              default LSTM): pooled, per-symbol batched (``lstm.batched_symbols``) with
              ``--jobs 2`` and serially, and today's per-symbol models serially, in one run
              (pooled also with one torch thread: two OpenMP threads spin on a loaded machine);
              then the largest differences of the batched forecasts from today's and the
              forecast table (MSE vs zero, IC, cross-sectional IC) of both
  us20_toml   the same with ``configs/universe.toml`` (``model.scope = "per_symbol"`` for the
              per-symbol runs, the file as it is for the pooled one)
  memory      synthetic 500 symbols x 5, 10 and 20 years (``make_universe(500, 252 * years)``),
              pooled and per-symbol batched (``--jobs 1``): wall time and peak RSS, with a
              reduced configuration (yearly folds ``step = 252``, ``epochs = 2``); the full
              configuration of universe_bench's synthetic case (``step = 63``) at 5 years, and
              what that gives at 10 and 20 years if time grows with folds x symbols; today's
              pooled code (the commit this work started from) at 5 and 10 years

Every measurement runs in a fresh process (peak RSS is its own ``ru_maxrss``) and prints the
load averages before and after: the machine is shared, so compare ratios measured in the same
run. The CPU only (no GPU here).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# SPEED_BENCH_CODE: run a measurement on another checkout's code (the baseline commit)
sys.path.insert(0, os.environ.get("SPEED_BENCH_CODE", str(ROOT)))
BASELINE = "b4a6c3c"  # the commit this work started from ("today")

CASES = ["us20", "us20_toml", "memory"]
US20 = {"walk_forward": {"train_window": 1000, "step": 21}}
TOML = ROOT / "configs" / "universe.toml"
SYNTHETIC = {"walk_forward": {"train_window": 500, "step": 63}}
REDUCED = {"walk_forward": {"train_window": 500, "step": 252}, "lstm": {"epochs": 2}}
MODELS = ["lstm", "knn", "fused"]


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _config(base: dict | str, scope: str, batched: bool = False, threads: int | None = None):  # noqa: ANN202
    from lstmknn.engine.config import from_dict, load_config

    cfg = load_config(base) if isinstance(base, (str, Path)) else from_dict(base)
    over: dict = {"model": {"scope": scope}}
    if scope == "per_symbol":  # rank sizing etc. stay as they are; the walk-forward is the point
        over["lstm"] = {"batched_symbols": batched}
    if threads is not None:
        over.setdefault("lstm", {})["threads"] = threads
    return from_dict(over, base=cfg)


def _datas(spec: str):  # noqa: ANN202
    if spec.startswith("synthetic:"):
        from lstmknn.data.synthetic import make_universe, to_price_data

        return to_price_data(make_universe(500, 252 * int(spec.split(":")[1]), ic=0.03, seed=0))
    if spec.startswith("pickle:"):
        import pickle

        with open(spec.split(":", 1)[1], "rb") as fh:
            return pickle.load(fh)
    from lstmknn.data.sources import load_sources

    return load_sources([spec])


def measure(spec: dict) -> dict:
    """One measurement in this process: ``forecast()`` of a universe under a config."""
    import torch

    from lstmknn.engine.forecasts import forecast

    base = spec["base"] if spec["base"] != "toml" else TOML
    # pooled: 2 torch threads as universe_bench (or ``threads``); per symbol: one per process
    threads = spec.get("threads", 2) if spec["scope"] == "pooled" else None
    cfg = _config(base, spec["scope"], spec.get("batched", False), threads)
    torch.set_num_threads(2)
    before = load()
    t0 = time.perf_counter()
    datas = _datas(spec["data"])
    t1 = time.perf_counter()
    res = forecast(datas, cfg, jobs=spec.get("jobs", 1))
    t2 = time.perf_counter()
    if spec.get("save"):
        res.predictions.to_pickle(spec["save"])
    if spec.get("jobs", 1) > 1:  # workers count in RUSAGE_CHILDREN once they have exited
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    self_, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"forecast_s": t2 - t1, "data_s": t1 - t0, "rows": len(res.predictions),
            "cpu_s": self_.ru_utime + self_.ru_stime + kids.ru_utime + kids.ru_stime,
            "peak_rss_mib": max(self_.ru_maxrss, kids.ru_maxrss) / 1024.0,
            "load_before": before, "load_after": load()}


def _sub(spec: dict, code: str | None = None) -> dict:
    env = {**os.environ, **({"SPEED_BENCH_CODE": code} if code else {})}
    proc = subprocess.run([sys.executable, __file__, "--sub", json.dumps(spec)],
                          capture_output=True, text=True, check=False, cwd=ROOT, env=env)
    if proc.returncode:
        raise RuntimeError(f"{spec}: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _line(name: str, r: dict, base: float | None = None) -> str:
    ratio = f" = {r['forecast_s'] / base:.2f} x pooled" if base else ""
    return (f"  {name:24s} {r['forecast_s']:7.1f} s{ratio}  cpu {r['cpu_s']:6.1f} s  peak RSS "
            f"{r['peak_rss_mib']:5.0f} MiB  (load {r['load_before']} -> {r['load_after']})")


def _tables(today, batched) -> list[str]:  # noqa: ANN001
    import numpy as np

    from lstmknn.reports.cross_section import ic_summary
    from lstmknn.reports.forecast_metrics import forecast_table

    keys = ["symbol", "date"]
    a = today.sort_values(keys).reset_index(drop=True)
    b = batched.sort_values(keys).reset_index(drop=True)
    assert a[keys].equals(b[keys]), "batched and today's runs forecast different rows"
    out = ["  largest |batched - today| per column (forecast scale: std of today's column):"]
    for col in ["lstm", "knn", "fused", "lstm_conf", "knn_conf", "train_mean"]:
        d = np.abs(a[col].to_numpy() - b[col].to_numpy())
        out.append(f"    {col:10s} max {np.nanmax(d):.3g}  mean {np.nanmean(d):.3g}  "
                   f"(std {np.nanstd(a[col].to_numpy()):.3g}, rows differing {np.mean(d > 0):.1%}, "
                   f"corr {np.corrcoef(a[col], b[col])[0, 1]:.6f})")
    out.append("  forecast table     mse_vs_zero          IC (pooled rows)      cross-sectional IC")
    out.append("    model            today    batched     today    batched     today    batched")
    ft = {k: forecast_table(f, MODELS) for k, f in (("a", a), ("b", b))}
    cs = {k: ic_summary(f, MODELS) for k, f in (("a", a), ("b", b))}
    for m in MODELS:
        rel = {k: ft[k].loc[m, "mse"] / ft[k].loc["zero", "mse"] for k in ft}
        out.append(f"    {m:12s} {rel['a']:9.5f} {rel['b']:9.5f}   {ft['a'].loc[m, 'ic']:+8.4f} "
                   f"{ft['b'].loc[m, 'ic']:+8.4f}   {cs['a'][m]['ic']:+8.4f} {cs['b'][m]['ic']:+8.4f}")
    return out


def case_us20(base: str | dict = "US20", data: str = "us20") -> list[str]:
    base_cfg = US20 if base == "US20" else base
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        plan = [("pooled", {"scope": "pooled"}),
                ("pooled threads 1", {"scope": "pooled", "threads": 1}),
                ("batched --jobs 2", {"scope": "per_symbol", "batched": True, "jobs": 2}),
                ("batched serial", {"scope": "per_symbol", "batched": True,
                                    "save": f"{tmp}/batched.pkl"}),
                ("today serial", {"scope": "per_symbol", "save": f"{tmp}/today.pkl"})]
        lines = []
        for name, spec in plan:
            runs[name] = _sub({"base": base_cfg, "data": data, **spec})
            lines.append(_line(name, runs[name], runs["pooled"]["forecast_s"]))
            print(lines[-1], flush=True)
        import pandas as pd

        tables = _tables(pd.read_pickle(f"{tmp}/today.pkl"), pd.read_pickle(f"{tmp}/batched.pkl"))
        print(*tables, sep="\n", flush=True)
    return lines + tables


def case_us20_toml() -> list[str]:
    return case_us20("toml")


def _make(years: int, path: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--make", str(years), path],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def case_memory() -> list[str]:
    """Each universe is generated (``make_universe``) and pickled by a process of its own, then
    every measured process loads it: its peak is the walk-forward's, with its input data."""
    from lstmknn.engine.folds import make_folds

    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        base = f"{tmp}/baseline"
        os.mkdir(base)
        subprocess.run(f"git archive {BASELINE} | tar -x -C {base}", shell=True, check=True,
                       cwd=ROOT)
        for years in (5, 10, 20):
            path = f"{tmp}/u{years}.pkl"
            m = _make(years, path)
            lines.append(f"  {years:2d}y make_universe(500, {252 * years}): {m['make_s']:.0f} s, "
                         f"its own peak RSS {m['peak_rss_mib']:.0f} MiB (not in the figures below)")
            print(lines[-1], flush=True)
            for scope in ("pooled", "per_symbol"):
                r = _sub({"base": REDUCED, "data": f"pickle:{path}", "scope": scope,
                          "batched": scope == "per_symbol"})
                lines.append(_line(f"{years:2d}y {scope} reduced", r) + f"  rows {r['rows']}")
                print(lines[-1], flush=True)
            if years < 20:  # today's pooled code, same data and config (20 years: > 20 min)
                r = _sub({"base": REDUCED, "data": f"pickle:{path}", "scope": "pooled"}, base)
                lines.append(_line(f"{years:2d}y pooled today", r) + f"  rows {r['rows']}")
                print(lines[-1], flush=True)
            if years == 5:
                folds = {y: len(make_folds(252 * y, 40, 500, 63)) for y in (5, 10, 20)}
                for scope in ("pooled", "per_symbol"):
                    r = _sub({"base": SYNTHETIC, "data": f"pickle:{path}", "scope": scope,
                              "batched": scope == "per_symbol"})
                    lines.append(_line(f" 5y {scope} full", r) + f"  rows {r['rows']}")
                    lines.append(f"      full config extrapolated by folds ({folds[5]} -> "
                                 f"{folds[10]} -> {folds[20]}): 10y ~"
                                 f"{r['forecast_s'] * folds[10] / folds[5]:.0f} s, 20y ~"
                                 f"{r['forecast_s'] * folds[20] / folds[5]:.0f} s")
                    print(*lines[-2:], sep="\n", flush=True)
    return lines


def make(years: int, path: str) -> dict:
    """Generate the synthetic universe in this process and pickle it (its peak is its own)."""
    import pickle

    t = time.perf_counter()
    datas = _datas(f"synthetic:{years}")
    with open(path, "wb") as fh:
        pickle.dump(datas, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return {"make_s": time.perf_counter() - t,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=CASES, action="append")
    ap.add_argument("--sub", help=argparse.SUPPRESS)
    ap.add_argument("--make", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sub:
        print(json.dumps(measure(json.loads(args.sub)), default=float))
        return
    if args.make:
        print(json.dumps(make(int(args.make[0]), args.make[1])))
        return
    print(f"# python benchmarks/speed_bench.py, {os.cpu_count()} CPUs (shared), no GPU, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load {load()}", flush=True)
    for c in args.case or CASES:
        print(f"== {c}", flush=True)
        t = time.perf_counter()
        try:
            globals()[f"case_{c}"]()
        except RuntimeError as exc:
            print(f"  failed: {exc}", flush=True)
        print(f"  ({time.perf_counter() - t:.0f} s, load {load()})", flush=True)


if __name__ == "__main__":
    main()
