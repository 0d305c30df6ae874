"""What every command shares: common arguments, the config from the command line, the cache."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstmknn.data.options import LoadOptions
from lstmknn.engine.config import Config, load_config, with_overrides
from lstmknn.engine.defaults import DEFAULT_CACHE

if TYPE_CHECKING:
    import pandas as pd

    from lstmknn.engine.cache import FoldCache
DATA_HELP = ("bundled name (sp500, msft, us20, sp500_members), NAME=path, CSV file or folder; "
             "several may follow one --data, and --data may repeat")


def add_data(p: argparse.ArgumentParser, *, required: bool = False, default_help: str = "sp500"
             ) -> None:
    """``--data`` (one or more sources) and the options for reading users' files."""
    p.add_argument("--data", action="extend", nargs="+", required=required, metavar="SOURCE",
                   help=f"{DATA_HELP} (default {default_help})" if not required else DATA_HELP)
    g = p.add_argument_group("reading price files (default: detected)")
    g.add_argument("--price-column", metavar="COL",
                   help="column used as the close, e.g. 'Adj Close'")
    g.add_argument("--sep", metavar="CHAR", help="field separator, e.g. ';'")
    g.add_argument("--decimal", choices=[".", ","], help="decimal mark")
    g.add_argument("--dayfirst", action=argparse.BooleanOptionalAction, default=None,
                   help="dates are day-first (03/04/2020 = 3 April); --no-dayfirst: month-first")
    g.add_argument("--date-format", metavar="FMT", help="strftime format of the date column")
    g.add_argument("--symbol-column", metavar="COL",
                   help="column naming the symbol in a long file (default symbol/ticker)")


def add_config(p: argparse.ArgumentParser, *, device: bool = True) -> None:
    """``--config``, ``--seed`` and (for commands that train) ``--device``."""
    p.add_argument("--config", metavar="FILE.toml", help="TOML config file (default: built-in defaults)")
    p.add_argument("--seed", type=int, help="root random seed (overrides the config's `seed`)")
    if device:
        p.add_argument("--device", choices=["cpu", "cuda", "auto"], help="overrides lstm.device")


def add_cache(p: argparse.ArgumentParser, default: str | None = DEFAULT_CACHE) -> None:
    where = f"default {default} or $LSTMKNN_CACHE" if default else "default: none"
    p.add_argument("--cache", metavar="DIR", help=f"fold model cache folder ({where})")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the fold cache")


def add_parallel(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--jobs", type=int, default=1,
                   help=f"{what} in N local processes (default 1; -1 = all cores)")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="Dask scheduler address (tcp://host:8786), or 'local' for a secured "
                        "LocalCluster on 127.0.0.1 (default $DASK_SCHEDULER_ADDRESS when set)")


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted config overrides from the command line (only options that were given)."""
    out: dict[str, Any] = {}
    if getattr(args, "seed", None) is not None:
        out["seed"] = args.seed
    if getattr(args, "device", None) is not None:
        out["lstm.device"] = args.device
    if getattr(args, "cash", None) is not None:
        out["execution.cash"] = args.cash
    return out


def config_from_args(args: argparse.Namespace) -> Config:
    """The config file (or defaults) plus the command-line overrides: the one place they meet."""
    cfg = load_config(getattr(args, "config", None))
    overrides = config_overrides(args)
    return with_overrides(cfg, overrides) if overrides else cfg


def load_options(args: argparse.Namespace) -> LoadOptions:
    return LoadOptions(price_column=getattr(args, "price_column", None),
                       sep=getattr(args, "sep", None), decimal=getattr(args, "decimal", None),
                       dayfirst=getattr(args, "dayfirst", None),
                       date_format=getattr(args, "date_format", None),
                       symbol_column=getattr(args, "symbol_column", None))


def date_arg(text: str | None, option: str, args: argparse.Namespace | None = None
             ) -> pd.Timestamp | None:
    """A date option (``--asof``, ``--until``, ...) read by the data's rule
    (:func:`data.dates.parse_date`), with ``--dayfirst``/``--date-format`` where the command
    has them; None when not given."""
    from lstmknn.data.dates import parse_date

    if text is None:
        return None
    return parse_date(text, option, dayfirst=getattr(args, "dayfirst", None),
                      date_format=getattr(args, "date_format", None))


def cache_dir(args: argparse.Namespace, default: str | None = DEFAULT_CACHE) -> str | None:
    if getattr(args, "no_cache", False):
        return None
    return getattr(args, "cache", None) or os.environ.get("LSTMKNN_CACHE") or default


def fold_cache(args: argparse.Namespace) -> FoldCache | None:
    from lstmknn.engine.cache import FoldCache  # torch: loaded by the commands that train only

    root = cache_dir(args)
    return FoldCache(Path(root)) if root else None
