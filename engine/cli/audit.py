"""``lstmknn audit``: proof that a configuration cannot see the future."""

from __future__ import annotations

import argparse
import json

from lstmknn.engine.cli.common import (
    add_cache,
    add_config,
    add_data,
    config_from_args,
    fold_cache,
    load_options,
)
from lstmknn.engine.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit", help="prove that nothing decided at a bar changes when later data changes",
        description="For cut dates spread over the run, rebuild every feature column, each "
                    "model's forecast, the regime, alpha, the fused forecast and the target on "
                    "the data truncated at the cut and on the data perturbed after it, and "
                    "compare with the full run; then check that features do not depend on where "
                    "the data starts. Exit 0 when clean, 1 when a leak is found, 2 for user errors.")
    add_data(p)
    add_config(p)
    p.add_argument("--cuts", type=int, default=8,
                   help="cut dates spread over the run, plus the last bar (default 8)")
    p.add_argument("--thorough", action="store_true",
                   help="retrain every fold for every cut instead of reusing the fold cache")
    p.add_argument("--json", action="store_true",
                   help='print JSON: {"clean": bool, "leaks": [{"column", "stage", '
                        '"first_bar", "kind"}, ...], ...}')
    add_cache(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    from lstmknn.engine.audit import format_table, run_audit
    from lstmknn.engine.backtest import load_data
    from lstmknn.engine.progress import progress_bar
    from lstmknn.engine.runio import clean_json

    cfg = config_from_args(args)
    if args.cuts < 1:
        raise UserError(f"--cuts must be >= 1 (got {args.cuts})")
    datas = load_data(args.data or ["sp500"], load_options(args))
    with progress_bar(not args.quiet and not args.json, desc="audit", unit="run") as progress:
        report = run_audit(datas, cfg, cuts=args.cuts, thorough=args.thorough,
                           cache=fold_cache(args), progress=progress)
    if args.json:
        print(json.dumps(clean_json(report.to_json()), indent=2))
    else:
        print(format_table(report))
    return 0 if report.clean else 1
