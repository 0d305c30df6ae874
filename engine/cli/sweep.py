"""``lstmknn sweep``: a grid of configurations x symbols, in parallel and resumable."""

from __future__ import annotations

import argparse

from lstmknn.engine.cli.common import (
    add_config,
    add_data,
    add_parallel,
    config_from_args,
    load_options,
)

RANKS = ("fused_mse", "sharpe")  # engine.sweep.ranking.RANKINGS (a test keeps them equal)


def cmd_sweep(args: argparse.Namespace) -> int:
    from lstmknn.engine.sweep import run_sweep
    from lstmknn.engine.sweep.grid import label

    cfg = config_from_args(args)
    res = run_sweep(args.data or ["sp500"], cfg, args.grid, args.out, jobs=args.jobs,
                    scheduler=args.scheduler, rank_by=args.rank, cache_dir=args.cache,
                    progress=not args.quiet, data_options=load_options(args))
    s, best = res.summary, res.summary["best"]
    t = s["tasks"]
    line = (f"wrote {res.out_dir}/ (results.csv summary.csv summary.json by_symbol.csv sweep.html): "
            f"{t['total']} tasks ({t['run']} run, {t['resumed']} resumed, {t['failed']} failed) "
            f"in {s['elapsed_seconds']:.1f}s on {s['execution']}")
    if best:
        def num(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.2f}"

        line += (f"; best #{best['config']} ({label(best['overrides'])}): mean per-symbol sharpe "
                 f"{num(best['sharpe'])}; its equal-weight portfolio: sharpe "
                 f"{num(best['portfolio_sharpe'])}, deflated sharpe "
                 f"{num(best['deflated_sharpe'])} over {best['n_trials']} trials")
    print(line)
    return 1 if t["failed"] else 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser(
        "sweep", help="run a grid of configurations x symbols in parallel (resumable)",
        description="Walk-forward + vectorized backtest of every symbol x grid configuration. "
                    "Exit status 1 when some tasks failed (they are listed in results.csv).")
    add_data(sp)
    add_config(sp)
    sp.add_argument("--grid", required=True, metavar="GRID.toml",
                    help='grid TOML: values per dotted key, e.g. "lstm.lookback" = [10, 20, 60]')
    sp.add_argument("--out", default="runs/sweep", metavar="DIR",
                    help="output folder (default runs/sweep); an earlier sweep there is resumed")
    add_parallel(sp, "run tasks")
    sp.add_argument("--rank", choices=RANKS, default="sharpe",
                    help="rank configurations by mean Sharpe or fused MSE (default sharpe)")
    sp.add_argument("--cache", metavar="DIR", help="fold model cache folder (default: none)")
    sp.add_argument("--quiet", action="store_true", help="no progress line")
    sp.set_defaults(func=cmd_sweep)
