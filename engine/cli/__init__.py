"""The ``lstmknn`` command line, a thin layer over :mod:`engine.pipeline`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from engine.errors import USER_ERRORS

DEFAULT_CACHE = ".lstmknn_cache"


def _config(args: argparse.Namespace):
    from engine.config import load_config, with_overrides

    cfg = load_config(args.config)
    overrides = {}
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    if getattr(args, "device", None):
        overrides["lstm.device"] = args.device
    return with_overrides(cfg, overrides) if overrides else cfg


def _cache_dir(args: argparse.Namespace) -> str | None:
    if getattr(args, "no_cache", False):
        return None
    return args.cache or os.environ.get("LSTMKNN_CACHE") or DEFAULT_CACHE


def cmd_backtest(args: argparse.Namespace) -> int:
    from engine.pipeline import run_backtest

    cfg = _config(args)
    run = run_backtest(args.data or ["sp500"], cfg, args.out, quiet=args.quiet,
                       cache_dir=_cache_dir(args), engine=args.engine, jobs=args.jobs,
                       scheduler=args.scheduler)
    s = run.summary
    if not args.quiet:
        print(forecast_lines(s), file=sys.stderr)
    st, bm = s["strategy"], s["benchmark"]
    print(f"wrote {args.out}/ (predictions.csv equity.csv trades.csv summary.json tearsheet.html) "
          f"in {s['elapsed_seconds']:.1f}s; {s['folds']} folds; strategy total return "
          f"{st['total_return']:+.1%} sharpe {st['sharpe']:.2f} vs buy-and-hold "
          f"{bm['total_return']:+.1%} sharpe {bm['sharpe']:.2f}")
    return 0


def forecast_lines(summary: dict) -> str:
    rows = ["model            mse        mae   dir.acc      ic      n"]
    for m, v in summary["forecast"].items():
        ic = v.get("ic")
        rows.append(f"{m:<12} {v['mse']:.3e}  {v['mae']:.3e}   {v['direction_accuracy']:.3f}  "
                    f"{(ic if ic is not None else float('nan')):+.3f}  {v['n']:>5}")
    return "\n".join(rows)


def cmd_report(args: argparse.Namespace) -> int:
    from engine.pipeline import rebuild_report

    path = rebuild_report(args.run_dir)
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lstmknn", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = p.add_subparsers(dest="command", required=True)

    bt = sub.add_parser("backtest", help="walk-forward train, trade and report")
    bt.add_argument("--data", action="append",
                    help="bundled name (sp500, msft), CSV path or folder of CSVs; repeat for a portfolio")
    bt.add_argument("--config", help="TOML config file")
    bt.add_argument("--out", default="runs/latest", help="output folder (default runs/latest)")
    bt.add_argument("--seed", type=int, help="root random seed (overrides the config)")
    bt.add_argument("--device", choices=["cpu", "cuda", "auto"], help="overrides lstm.device")
    bt.add_argument("--engine", choices=["backtrader", "vectorized"], default="backtrader",
                    help="execution engine (default backtrader)")
    bt.add_argument("--cache", help=f"fold model cache folder (default {DEFAULT_CACHE} or $LSTMKNN_CACHE)")
    bt.add_argument("--no-cache", action="store_true", help="do not read or write the fold cache")
    bt.add_argument("--quiet", action="store_true", help="no progress bar or forecast table")
    bt.add_argument("--jobs", type=int, default=1,
                    help="walk-forward the symbols in N local processes (default 1)")
    bt.add_argument("--scheduler", help="Dask scheduler address, or 'local' for a LocalCluster "
                                        "(default $DASK_SCHEDULER_ADDRESS when set)")
    bt.set_defaults(func=cmd_backtest)

    rp = sub.add_parser("report", help="rebuild tearsheet.html of a run folder without retraining")
    rp.add_argument("run_dir")
    rp.set_defaults(func=cmd_report)
    for extra in _extra_commands():
        extra(sub)
    return p


def _extra_commands():
    """Sub-commands registered by other engine modules (bench, signal, paper, sweep)."""
    out = []
    for mod in ("engine.bench", "engine.signal_cli", "engine.paper.cli", "engine.sweep"):
        try:
            module = __import__(mod, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name and mod.startswith(exc.name):
                continue
            raise
        out.append(module.register)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"lstmknn: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unwritable output folder, full disk, ...
        print(f"lstmknn: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lstmknn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
