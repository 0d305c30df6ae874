"""``lstmknn bench``: developer benchmark of speed, memory and quality (see engine.devtools)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="benchmark speed, memory and quality against the "
                                     "from-scratch recipe (developer tool)",
                       description="Times, in one run: the full default backtest in a fresh "
                                   "process, the walk-forward, the plain from-scratch LSTM recipe "
                                   "on a few folds, and backtrader against the vectorized twin.")
    b.add_argument("--data", default="sp500", help="bundled name or CSV path (default sp500)")
    b.add_argument("--config", metavar="FILE.toml", help="TOML config (default: the defaults, on CPU)")
    b.add_argument("--recipe-folds", type=int, default=4,
                   help="evenly spaced folds trained with the slow recipe (default 4)")
    b.add_argument("--skip-full", action="store_true",
                   help="skip the full `lstmknn backtest` run in a fresh process")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from lstmknn.engine.devtools.bench import (  # developer tooling, loaded on use
        format_table,
        run_bench,
    )

    r = run_bench(args.data, args.config, args.recipe_folds, not args.skip_full)
    print(json.dumps(r, indent=2) if args.json else format_table(r))
    return 0
