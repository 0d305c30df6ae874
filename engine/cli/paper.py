"""``lstmknn paper init|step|status|report|signals``: a local paper trading account."""

from __future__ import annotations

import argparse
import json
import sys

ROOT_HELP = "accounts folder (default ./paper_accounts or $LSTMKNN_PAPER_ROOT)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("paper", help="paper trading account in a local SQLite ledger")
    cmds = p.add_subparsers(dest="paper_command", required=True)

    def command(name: str, text: str, func) -> argparse.ArgumentParser:
        c = cmds.add_parser(name, help=text)
        c.add_argument("--account", required=True, help="account name")
        c.add_argument("--root", help=ROOT_HELP)
        c.set_defaults(func=func)
        return c

    c = command("init", "create an account", cmd_init)
    c.add_argument("--data", required=True, help="bundled name (sp500, msft) or CSV path to trade")
    c.add_argument("--config", help="TOML config file (default: built-in defaults)")
    c.add_argument("--cash", type=float, help="starting cash (overrides execution.cash)")
    c.add_argument("--start", help="first bar that may trade (default: the first forecast)")
    c.add_argument("--cache", help="fold model cache folder (default: cache/ in the account)")

    c = command("step", "process every new bar of the data source", cmd_step)
    c.add_argument("--until", help="process bars up to this date only")
    c.add_argument("--wait", type=float, default=0.0,
                   help="seconds to wait for a busy account (default 0: fail at once)")
    c.add_argument("--json", action="store_true", help="print the step result as JSON")
    c.add_argument("--quiet", action="store_true", help="no progress and no summary line")

    c = command("status", "positions, cash, equity, last signal, open orders", cmd_status)
    c.add_argument("--json", action="store_true", help="JSON output")

    c = command("report", "write the tearsheet of the account so far", cmd_report)
    c.add_argument("--out", help="HTML path (default: report/tearsheet.html in the account)")
    c.add_argument("--fast", action="store_true", help="models section only, no quantstats")

    c = command("signals", "export the recorded signals", cmd_signals)
    c.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    c.add_argument("--jsonl", action="store_const", const="jsonl", dest="format",
                   help="same as --format jsonl")
    c.add_argument("--since", help="only signals on or after this date")


def cmd_init(args: argparse.Namespace) -> int:
    from engine.paper.runner import init_account

    acct = init_account(args.root, args.account, args.data, args.config, args.cash, args.start,
                        args.cache)
    print(f"created paper account {acct['name']}: {acct['symbol']} from {acct['data_source']}, "
          f"cash {acct['cash']:,.2f}, config {acct['config_hash']}")
    return 0


def cmd_step(args: argparse.Namespace) -> int:
    from engine.paper.runner import result_dict, step_account, step_summary

    res = step_account(args.root, args.account, until=args.until, wait=args.wait,
                       progress=not args.quiet)
    if args.json:
        print(json.dumps(result_dict(res)))
    elif not args.quiet:
        print(step_summary(res))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from engine.paper.runner import account_status, status_text

    st = account_status(args.root, args.account)
    print(json.dumps(st, indent=2) if args.json else status_text(st))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from engine.paper.runner import write_report

    print(f"wrote {write_report(args.root, args.account, args.out, fast=args.fast)}")
    return 0


def cmd_signals(args: argparse.Namespace) -> int:
    from engine.cli.signal import format_records
    from engine.paper.runner import export_signals

    records = export_signals(args.root, args.account, args.since)
    if records:
        sys.stdout.write(format_records(records, args.format))
    return 0
