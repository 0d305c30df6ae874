"""``lstmknn signal``: the decision for the next bar, per symbol."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from typing import Any

from lstmknn.engine.cli.common import (
    add_cache,
    add_config,
    add_data,
    config_from_args,
    date_arg,
    fold_cache,
    load_options,
)

FORMATS = ("json", "jsonl", "csv")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("signal", help="the decision for the next bar: forecasts, fusion, target",
                       description="The decision at the close of the latest bar (or --asof) for "
                                   "the next bar, one record per symbol: each model's forecast, "
                                   "regime, alpha, fused forecast, target weight, side and an "
                                   "indicative quantity: exactly the backtest's decision of that "
                                   "bar under the same config (any scope and sizing).")
    add_data(p, required=True)
    add_config(p)
    p.add_argument("--asof", metavar="DATE",
                   help="decide at the close of the last bar on or before this date/time "
                        "(default: the latest bar)")
    p.add_argument("--account-value", type=float, metavar="X",
                   help="account size for the indicative quantity (default execution.cash)")
    p.add_argument("--format", choices=FORMATS, default="json",
                   help="json (one object, or a list for several symbols), jsonl or csv")
    add_cache(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_signal)


def cmd_signal(args: argparse.Namespace) -> int:
    from lstmknn.engine.asof import signal_records
    from lstmknn.engine.backtest import load_data

    cfg = config_from_args(args)
    asof = date_arg(args.asof, "--asof", args)
    datas = load_data(args.data, load_options(args))
    records = signal_records(datas, cfg, asof, cache=fold_cache(args),
                             account_value=args.account_value, quiet=args.quiet)
    for r in records:
        if r["warning"]:
            print(f"lstmknn: warning: {r['symbol']}: {r['warning']}", file=sys.stderr)
    sys.stdout.write(format_records(records, args.format))
    return 0


def format_records(records: list[dict[str, Any]], fmt: str) -> str:
    """Records as pretty JSON (one record: an object), JSON lines, or CSV with a header."""
    if fmt == "json":
        return json.dumps(records[0] if len(records) == 1 else records, indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in records)
    buf = io.StringIO()
    fields: list[str] = []
    for r in records:
        fields += [k for k in r if k not in fields]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: "" if v is None else v for k, v in r.items()})
    return buf.getvalue()
