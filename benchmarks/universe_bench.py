"""Universe benchmark (issue 14): wall time, peak memory and the cross-sectional forecast table.

    python benchmarks/universe_bench.py                       # every case, each in a fresh process
    python benchmarks/universe_bench.py --case us20 --case planted
    python benchmarks/universe_bench.py --case sp500_command --json

Cases
  sp500_command     the whole ``lstmknn backtest --data sp500_members`` command with
                    ``configs/sp500_members.toml`` (pooled, rank sizing), no cache
  sp500_members     pooled walk-forward, raw and ``cs_rank`` labels (regime and stacking
                    fusion of the same forecasts), rank targets traded by both engines
  sp500_per_symbol  the same universe per symbol (``--jobs 2``), for the forecast table
  us20              pooled (monthly folds) vs per-symbol serial and ``--jobs 2``, same run
  us20_cs_rank      pooled us20 with ``cs_rank`` labels
  synthetic         500 symbols x 10 years, pooled: wall time and peak memory, models' IC
                    against the planted 0.03; ``synthetic_null`` the same with none planted
  planted           IC recovery: planted signal vs measured mean IC (standard error), null IC

Every measurement runs in its own process: wall time (``time.perf_counter``), CPU time and
peak RSS (``resource.getrusage``). The machine may be shared: each case prints ``uptime``'s
load averages before and after; compare ratios measured in the same run, not absolute times
across runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = ["planted", "sp500_command", "sp500_members", "us20", "us20_cs_rank", "synthetic",
         "synthetic_null", "sp500_per_symbol"]
MODELS = ["lstm", "knn", "fused", "stacking", "train_mean", "persistence"]
SP500_TOML = ROOT / "configs" / "sp500_members.toml"
# The sp500_members config of the command (see the TOML for why each value).
SP500 = {"walk_forward": {"train_window": 120, "step": 21}, "lstm": {"lookback": 10, "threads": 2},
         "model": {"scope": "pooled"}, "signal": {"sizing": "rank"}}
US20 = {"walk_forward": {"train_window": 1000, "step": 21}, "lstm": {"threads": 2},
        "model": {"scope": "pooled"}}
SYNTHETIC = {"walk_forward": {"train_window": 500, "step": 63}, "lstm": {"threads": 2},
             "model": {"scope": "pooled"}}


def load() -> str:
    return "load " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def usage(who: int = resource.RUSAGE_SELF) -> dict:
    r = resource.getrusage(who)
    return {"cpu_s": r.ru_utime + r.ru_stime, "peak_rss_mib": r.ru_maxrss / 1024.0}


def _load(name: str):  # noqa: ANN202
    from lstmknn.data.sources import load_sources

    return load_sources([name])


def _cfg(raw: dict, **model: str):  # noqa: ANN202
    from lstmknn.engine.config import from_dict

    return from_dict({**raw, "model": {**raw["model"], **model}})


def _table(pred, stacking=None) -> dict:  # noqa: ANN001
    from lstmknn.reports.cross_section import ic_summary, quantile_returns

    frame = pred.copy()
    models = [m for m in MODELS if m in frame.columns]
    if stacking is not None:
        frame["stacking"] = stacking.predictions["fused"].to_numpy()
        models.insert(models.index("fused") + 1, "stacking")
    return {"ic": ic_summary(frame, models), "quantiles": quantile_returns(frame, "fused", 5)}


def _pooled(datas, cfg, stacking: bool = True) -> tuple[dict, object]:  # noqa: ANN001
    from lstmknn.engine.pooled import run_pooled_walk_forward

    t = time.perf_counter()
    res = run_pooled_walk_forward(datas, cfg, fusions=["stacking"] if stacking else [])
    out = {"walk_forward_s": time.perf_counter() - t, "folds": len(res.folds),
           "rows": len(res.predictions), "symbols": int(res.predictions["symbol"].nunique()),
           "excluded": len(res.excluded),
           "table": _table(res.predictions, res.alternatives.get("stacking"))}
    return out, res


def case_sp500_command() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(Path(sys.executable).with_name("lstmknn")), "backtest", "--data", "sp500_members",
               "--config", str(SP500_TOML), "--no-cache", "--quiet", "--out", f"{tmp}/run"]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
        wall = time.perf_counter() - t
        if proc.returncode:
            raise RuntimeError(proc.stderr[-2000:])
        summary = json.loads(Path(f"{tmp}/run/summary.json").read_text())
    child = usage(resource.RUSAGE_CHILDREN)
    out = {"command_s": wall, "command_cpu_s": child["cpu_s"],
           "command_peak_rss_mib": child["peak_rss_mib"], "stdout": proc.stdout.strip()[:300]}
    cs = summary.get("cross_section")
    if isinstance(cs, dict):
        out["summary_cross_section"] = {m: {k: v.get(k) for k in ("ic", "rank_ic", "icir")}
                                        for m, v in cs.items() if isinstance(v, dict) and "ic" in v}
    return out


def case_sp500_members() -> dict:
    from lstmknn.engine.params import execution_params, strategy_for
    from lstmknn.strategies.execution import execute

    datas = _load("sp500_members")
    cfg = _cfg(SP500)
    out, res = _pooled(datas, cfg)
    pred = res.predictions
    traded = strategy_for(cfg).targets(pred)[["date", "symbol", "target"]]
    prices = {d.symbol: d.frame for d in datas if d.symbol in set(pred["symbol"])}
    finals = {}
    for engine in ("vectorized", "backtrader"):
        t = time.perf_counter()
        finals[engine] = execute(prices, traded, execution_params(cfg), engine=engine).final_value
        out[f"{engine}_s"] = time.perf_counter() - t
    out["twin_rel_diff"] = abs(finals["vectorized"] - finals["backtrader"]) / finals["backtrader"]
    o2, _ = _pooled(datas, _cfg(SP500, label="cs_rank"))
    out["cs_rank_walk_forward_s"] = o2["walk_forward_s"]
    out["table_cs_rank"] = o2["table"]
    return out


def case_sp500_per_symbol() -> dict:
    from lstmknn.engine.forecasts import forecast

    datas = _load("sp500_members")
    cfg = _cfg({**SP500, "lstm": {"lookback": 10}, "model": {}})
    t = time.perf_counter()
    pred = forecast(datas, cfg, jobs=2).predictions
    return {"jobs2_s": time.perf_counter() - t, "table": _table(pred)}


def _sub(name: str) -> dict:
    """Run one measurement in a fresh process (its own peak RSS); its JSON result."""
    proc = subprocess.run([sys.executable, __file__, "--sub", name], capture_output=True,
                          text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{name}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sub_us20_pooled() -> dict:
    out, _ = _pooled(_load("us20"), _cfg(US20))
    return out


def sub_us20_cs_rank() -> dict:
    out, _ = _pooled(_load("us20"), _cfg(US20, label="cs_rank"))
    return out


def _per_symbol(jobs: int) -> dict:
    from lstmknn.engine.forecasts import forecast

    datas = _load("us20")
    t = time.perf_counter()
    # per symbol: the default lstm.threads = 1 (the config's threads override each worker's)
    raw = {"walk_forward": US20["walk_forward"], "model": {}}
    pred = forecast(datas, _cfg(raw), jobs=jobs).predictions
    return {"walk_forward_s": time.perf_counter() - t, "table": _table(pred)}


def sub_us20_serial() -> dict:
    return _per_symbol(1)


def sub_us20_jobs2() -> dict:
    return _per_symbol(2)


def case_us20() -> dict:
    runs = {name: _sub(f"us20_{name}") for name in ("pooled", "serial", "jobs2")}
    base = runs["serial"]["walk_forward_s"]
    out = {}
    for name, r in runs.items():
        out[f"{name}_s"] = r["walk_forward_s"]
        out[f"{name}_vs_serial"] = r["walk_forward_s"] / base
        out[f"{name}_cpu_s"] = r["cpu_s"]
        out[f"{name}_peak_rss_mib"] = r["peak_rss_mib"]
    out["folds"] = runs["pooled"]["folds"]
    out["table"] = runs["pooled"]["table"]
    out["table_per_symbol"] = runs["serial"]["table"]
    return out


def case_us20_cs_rank() -> dict:
    return sub_us20_cs_rank()


def case_synthetic(ic: float = 0.03) -> dict:
    """Pooled models on 500 symbols x 10 years with a planted IC (visible in ``close_loc``)."""
    from lstmknn.data.synthetic import make_universe, to_price_data

    t0 = time.perf_counter()
    datas = to_price_data(make_universe(500, 2520, ic=ic, seed=0))
    out = {"generate_s": time.perf_counter() - t0}
    o, _ = _pooled(datas, _cfg(SYNTHETIC), stacking=False)
    out.update(o)
    return out


def case_synthetic_null() -> dict:
    """The same with no planted signal: every model's IC should be indistinguishable from 0."""
    return case_synthetic(ic=0.0)


def case_planted() -> dict:
    """A forecaster with a known IC (planted signal + noise) on planted and null universes."""
    import numpy as np

    from lstmknn.data.synthetic import make_universe, planted_ic
    from lstmknn.reports.cross_section import ic_by_date, ic_summary

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


def run(name: str) -> dict:
    """Run a case (``_case_<name>``) or a sub-measurement (``<name>``) in this process."""
    import torch

    torch.set_num_threads(2)
    fn = globals()[f"case_{name[6:]}" if name.startswith("_case_") else f"sub_{name}"]
    before = load()
    t = time.perf_counter()
    out = fn()
    out["wall_s"] = time.perf_counter() - t
    out.update(usage())
    out["load_before"], out["load_after"] = before, load()
    return out


def _print(name: str, r: dict) -> None:
    print(f"== {name}: wall {r['wall_s']:.1f} s, cpu {r['cpu_s']:.1f} s, peak RSS "
          f"{r['peak_rss_mib']:.0f} MiB ({r['load_before']} -> {r['load_after']}, {os.cpu_count()} cpus)")
    tables = [k for k in r if k.startswith("table")]
    for k, v in r.items():
        if k in tables or k in ("wall_s", "cpu_s", "peak_rss_mib", "load_before", "load_after"):
            continue
        print(f"   {k}: {v:.3g}" if isinstance(v, float) else f"   {k}: {v}")
    for key in tables:
        if not r.get(key):
            continue
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
    ap.add_argument("--sub", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.sub:
        print(json.dumps(run(args.sub), default=float))
        return
    for c in args.case or CASES:  # a fresh process per case: peak memory is the case's own
        proc = subprocess.run([sys.executable, __file__, "--sub", "_case_" + c], capture_output=True,
                              text=True, check=False)
        if proc.returncode:
            print(f"== {c}: failed\n{proc.stderr[-2000:]}", flush=True)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        if args.json:
            print(json.dumps({c: r}), flush=True)
        else:
            _print(c, r)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
