"""``lstmknn report``: rebuild a run folder's tearsheet without retraining."""

from __future__ import annotations

import argparse
from pathlib import Path

from lstmknn.engine.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="rebuild tearsheet.html of a run folder without retraining",
                       description="Rebuild tearsheet.html from a run folder's saved files "
                                   "(predictions, equity, trades, positions, benchmark, summary).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by `lstmknn backtest --out`")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from lstmknn.engine.backtest import rebuild_report

    if not Path(args.run_dir).is_dir():
        raise UserError(f"{args.run_dir}: no such folder" if not Path(args.run_dir).exists()
                        else f"{args.run_dir}: not a folder")
    print(f"wrote {rebuild_report(args.run_dir)}")
    return 0
