"""``lstmknn backtest``: walk-forward train, trade and report."""

from __future__ import annotations

import argparse
import sys
import time

from lstmknn.engine.cli.common import (
    add_cache,
    add_config,
    add_data,
    add_parallel,
    cache_dir,
    config_from_args,
    load_options,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backtest", help="walk-forward train, trade and report",
                       description="Walk-forward retraining of the LSTM and KNN, fusion, trading "
                                   "in a backtrader broker, and a tearsheet. Writes a run folder.")
    add_data(p)
    add_config(p)
    p.add_argument("--out", default="runs/latest", metavar="DIR",
                   help="run folder (default runs/latest); an existing folder must be empty or "
                        "a previous backtest run, which is replaced as a whole")
    p.add_argument("--engine", choices=["backtrader", "vectorized"], default="backtrader",
                   help="execution engine (default backtrader)")
    add_cache(p)
    add_parallel(p, "walk-forward the symbols")
    p.add_argument("--quiet", action="store_true", help="no progress bar or forecast table")
    p.set_defaults(func=cmd_backtest)


def forecast_lines(summary: dict) -> str:
    """The forecast table printed after a run (undefined statistics as n/a), then the
    verdict in words (:func:`reports.verdict.forecast_verdict`, as on the tearsheet)."""
    from lstmknn.reports.verdict import forecast_verdict

    def num(v: float | None, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    rows = ["model             mse        mae  dir.acc      ic      n"]
    for m, v in summary["forecast"].items():
        rows.append(f"{m:<12} {num(v.get('mse'), '.3e'):>9}  {num(v.get('mae'), '.3e'):>9}  "
                    f"{num(v.get('direction_accuracy'), '.3f'):>7}  {num(v.get('ic'), '+.3f'):>6}  "
                    f"{v.get('n', 0):>5}")
    return "\n".join([*rows, "", *forecast_verdict(summary)["lines"]])


def cmd_backtest(args: argparse.Namespace) -> int:
    from lstmknn.engine.backtest import RUN_KIND, run_backtest
    from lstmknn.engine.runio import check_out_dir

    cfg = config_from_args(args)
    action = check_out_dir(args.out, RUN_KIND)
    started: list[float] = []

    def stage(what: str) -> None:
        started.append(time.perf_counter())
        print(f"lstmknn: walk-forward done; {what} ...", file=sys.stderr, flush=True)

    run = run_backtest(args.data or ["sp500"], cfg, args.out, quiet=args.quiet,
                       cache_dir=cache_dir(args), engine=args.engine, jobs=args.jobs,
                       scheduler=args.scheduler, data_options=load_options(args),
                       stage=None if args.quiet else stage)
    s = run.summary
    if not args.quiet:
        if started:
            print(f"lstmknn: done ({time.perf_counter() - started[0]:.1f}s)", file=sys.stderr)
        print(forecast_lines(s), file=sys.stderr)
    st, bm = s["strategy"], s["benchmark"]

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:+.1%}"

    def ratio(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    verb = "replaced the previous run in" if action == "replace" else "wrote"
    print(f"{verb} {args.out}/ (predictions.csv equity.csv trades.csv summary.json"
          f"{' tearsheet.html' if cfg.report.tearsheet else ''}) in {s['elapsed_seconds']:.1f}s; "
          f"{s['folds']} folds; strategy total return {pct(st.get('total_return'))} sharpe "
          f"{ratio(st.get('sharpe'))} vs buy-and-hold {pct(bm.get('total_return'))} sharpe "
          f"{ratio(bm.get('sharpe'))}")
    for span in s.get("symbols", []):
        if span.get("closed_out"):
            print(f"lstmknn: note: {span['symbol']}: data ends at {span['last_bar']}; its "
                  f"position was closed at that bar", file=sys.stderr)
    excluded = s.get("excluded_symbols") or {}
    if excluded:
        print(f"lstmknn: note: {len(excluded)} symbol(s) left out (no forecasts; listed in "
              "summary.json under excluded_symbols):", file=sys.stderr)
        for sym, why in excluded.items():
            print(f"lstmknn: note:   {sym}: {why}", file=sys.stderr)
    return 0
