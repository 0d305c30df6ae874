"""``lstmknn signal``: the decision for the next bar, from the fold covering the latest bar."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from typing import Any

FORMATS = ("json", "jsonl", "csv")


def register(sub: argparse._SubParsersAction) -> None:
    from engine.cli import DEFAULT_CACHE

    p = sub.add_parser("signal", help="today's decision: forecasts, regime, fusion, target position")
    p.add_argument("--data", required=True, help="bundled name (sp500, msft) or CSV path")
    p.add_argument("--config", help="TOML config file")
    p.add_argument("--asof", help="decide at the close of this date (default: the latest bar)")
    p.add_argument("--format", choices=FORMATS, default="json", help="output format (default json)")
    p.add_argument("--seed", type=int, help="root random seed (overrides the config)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], help="overrides lstm.device")
    p.add_argument("--cache", help=f"fold model cache folder (default {DEFAULT_CACHE} or $LSTMKNN_CACHE)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the fold cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_signal)


def load_cli_config(path: str | None, seed: int | None = None, device: str | None = None):
    """Config file plus the command-line overrides."""
    from engine.config import load_config, with_overrides

    overrides: dict[str, Any] = {}
    if seed is not None:
        overrides["seed"] = seed
    if device:
        overrides["lstm.device"] = device
    cfg = load_config(path)
    return with_overrides(cfg, overrides) if overrides else cfg


def cmd_signal(args: argparse.Namespace) -> int:
    from data.loader import load_prices
    from engine.cache import FoldCache
    from engine.cli import DEFAULT_CACHE
    from engine.live import signal_for
    from engine.walk_forward import tqdm_progress

    cfg = load_cli_config(args.config, args.seed, args.device)
    data = load_prices(args.data)
    cache_dir = None if args.no_cache else (
        args.cache or os.environ.get("LSTMKNN_CACHE") or DEFAULT_CACHE)
    progress, close = tqdm_progress(not args.quiet, desc=f"{data.symbol} folds")
    try:
        rec = signal_for(data, cfg, args.asof, cache=FoldCache(cache_dir) if cache_dir else None,
                         progress=progress)
    finally:
        close()
    rec["source"] = data.source
    sys.stdout.write(format_records([rec], args.format))
    return 0


def format_records(records: list[dict[str, Any]], fmt: str) -> str:
    """Signal records as pretty JSON (one record), JSON lines, or CSV with a header."""
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
