"""``lstmknn paper init|step|status|report|signals``: a paper trading account, local or trading
through Alpaca's paper API (``--broker alpaca``)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from lstmknn.engine.cli.common import (
    add_cache,
    add_config,
    add_data,
    config_from_args,
    date_arg,
    load_options,
)
from lstmknn.engine.cli.signal import format_records
from lstmknn.engine.errors import UserError

BROKERS = ("local", "alpaca")  # engine.paper.broker_account.BROKERS (not imported: --help stays light)
BROKER_HELP = ("where orders go: local (simulated fills at the next open, the default) or alpaca "
               "(Alpaca's paper API; keys from APCA_API_KEY_ID and APCA_API_SECRET_KEY, read now "
               "and at each step, never stored; the account's cash is Alpaca's)")
ADOPT_HELP = ("for an account trading through a broker whose positions differ from the ledger's "
              "book (a trade outside lstmknn, a position held before init): book the broker's "
              "positions and cash as an adjustment (logged in broker.sqlite) and trade on")
ROOT_HELP = ("accounts folder (default ./paper_accounts or $LSTMKNN_PAPER_ROOT; a symbolic link "
             "is used only when named here or in the variable)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("paper", help="paper trading account in a local SQLite ledger",
                       description="A paper trading account: a SQLite ledger stepped bar by bar "
                                   "with the backtest's semantics.")
    cmds = p.add_subparsers(dest="paper_command", required=True, metavar="COMMAND")

    def command(name: str, text: str, func) -> argparse.ArgumentParser:  # noqa: ANN001
        c = cmds.add_parser(name, help=text, description=text)
        c.add_argument("--account", required=True, metavar="NAME",
                       help="account name: 1-64 letters, digits, '_', '.', '-'")
        c.add_argument("--root", metavar="DIR", help=ROOT_HELP)
        c.set_defaults(func=func)
        return c

    c = command("init", "create an account trading one symbol or a universe", cmd_init)
    add_data(c, required=True)
    add_config(c)
    c.add_argument("--cash", type=float,
                   help="starting cash (overrides execution.cash; local accounts only)")
    c.add_argument("--broker", choices=BROKERS, default="local", help=BROKER_HELP)
    c.add_argument("--start", metavar="DATE",
                   help="first bar that may trade (default: the first forecast)")
    add_cache(c, default="cache/ in the account folder")

    c = command("step", "process every new bar of the account's sources", cmd_step)
    c.add_argument("--until", metavar="DATE", help="process bars up to this date/time only")
    c.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="seconds to wait for a busy account (default 0: fail at once)")
    c.add_argument("--accept-revisions-from", metavar="DATE",
                   help="accept the data source's revised history from DATE on (changed, "
                        "inserted or removed rows up to the last processed bar): logged in the "
                        "ledger's revisions; what was traded stays, later decisions use the "
                        "revised data")
    c.add_argument("--adopt-broker-positions", action="store_true", help=ADOPT_HELP)
    c.add_argument("--json", action="store_true", help="print the step result as JSON")
    c.add_argument("--quiet", action="store_true", help="no progress and no summary line")

    c = command("status", "the book per symbol and in total: positions, cash, equity, "
                          "signals, open orders; a broker account's last reconciliation and "
                          "implementation shortfall", cmd_status)
    c.add_argument("--json", action="store_true", help="JSON output")

    c = command("report", "write the tearsheet of the account so far", cmd_report)
    c.add_argument("--out", metavar="FILE.html",
                   help="HTML path (default: report/tearsheet.html in the account); an existing "
                        "file is replaced only when it is an lstmknn report")
    c.add_argument("--fast", action="store_true", help="models section only, no quantstats")

    c = command("signals", "export the recorded signals", cmd_signals)
    c.add_argument("--format", choices=["csv", "jsonl"], default="csv",
                   help="output format (default csv)")
    c.add_argument("--jsonl", action="store_const", const="jsonl", dest="format",
                   help="same as --format jsonl")
    c.add_argument("--since", metavar="DATE", help="only signals on or after this date/time")


def _date_text(text: str | None, option: str) -> str | None:
    """A date option read by the data's rule (``03/02/2017`` refused as ambiguous), passed on
    as ISO text (the accounts read it again by the same rule)."""
    from lstmknn.engine.runio import format_timestamp

    ts = date_arg(text, option)
    return None if ts is None else format_timestamp(ts)


MAX_WAIT = 1e6  # seconds (11.6 days)


def _wait(seconds: float) -> float:
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_WAIT:
        raise UserError(f"--wait must be a number of seconds from 0 to {MAX_WAIT:g} "
                        f"(got {seconds!r})")
    return seconds


def _cache_arg(args: argparse.Namespace) -> str | None:
    """``""`` for --no-cache, a folder from --cache or $LSTMKNN_CACHE, None for the default."""
    if args.no_cache:
        return ""
    return args.cache or os.environ.get("LSTMKNN_CACHE") or None


def cmd_init(args: argparse.Namespace) -> int:
    from lstmknn.engine.paper.accounts import init_account
    from lstmknn.engine.paper.text import init_text

    if args.broker != "local" and args.cash is not None:
        raise UserError(f"--cash does not apply to --broker {args.broker}: the account trades the "
                        "broker account's cash")
    cfg = config_from_args(args)
    text = ""
    if args.config:
        try:
            text = Path(args.config).read_text()
        except OSError as exc:  # pragma: no cover - load_config read it a moment ago
            raise UserError(f"--config {args.config}: {exc.strerror}") from None
    acct = init_account(args.root, args.account, args.data, cfg, text,
                        start=_date_text(args.start, "--start"),
                        cache=_cache_arg(args), options=load_options(args), broker=args.broker)
    print(init_text(acct))
    return 0


def cmd_step(args: argparse.Namespace) -> int:
    from lstmknn.engine.paper.step import result_dict, step_account
    from lstmknn.engine.paper.text import step_summary

    wait = _wait(args.wait)
    res = step_account(args.root, args.account, until=_date_text(args.until, "--until"),
                       wait=wait, progress=not args.quiet,
                       accept_revisions_from=_date_text(args.accept_revisions_from,
                                                        "--accept-revisions-from"),
                       adopt=args.adopt_broker_positions)
    if args.json:
        print(json.dumps(result_dict(res)))
    elif not args.quiet:
        print(step_summary(res))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from lstmknn.engine.paper.accounts import account_status
    from lstmknn.engine.paper.text import status_text

    st = account_status(args.root, args.account)
    print(json.dumps(st, indent=2) if args.json else status_text(st))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from lstmknn.engine.paper.report import write_account_report

    print(f"wrote {write_account_report(args.root, args.account, args.out, fast=args.fast)}")
    return 0


def cmd_signals(args: argparse.Namespace) -> int:
    from lstmknn.engine.paper.accounts import export_signals

    records = export_signals(args.root, args.account, _date_text(args.since, "--since"))
    if records:
        sys.stdout.write(format_records(records, args.format))
    return 0
