"""What a set of symbols must satisfy to be traded together: valid, unique names and bars
that line up on one calendar.

Symbol names become file names (sweep tasks), CSV cells and command-line arguments, so
they are 1 to 64 letters, digits and ``. _ - ^ = + & @ #`` (``BRK.B``, ``^GSPC``,
``EURUSD=X``). Daily symbols (at most one bar per date, put on their date by the loader)
and intraday symbols cannot share one account; neither can symbols whose bars fall
between each other's (one stamped at 16:00, another at 09:30): an order decided at a bar
fills at the next bar of the joint calendar, which must be the symbol's own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lstmknn.data.dates import is_daily
from lstmknn.data.errors import DataError
from lstmknn.data.prices import PriceData

SYMBOL = re.compile(r"[^\W_^][\w.^=+&@#-]*|\^[\w.=+&@#-]+")
MAX_SYMBOL = 64
MIN_ALIGNED = 0.5  # share of a symbol's bars followed by its own next bar on the joint calendar


def _shown(names: Sequence[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def check_symbol(name: str, where: str = "") -> None:
    """Refuse a symbol name that cannot be a file name, CSV cell or argument, in one line."""
    at = f"{where}: " if where else ""
    shown = name if len(name) <= 40 else name[:37] + "..."
    if len(name) > MAX_SYMBOL:
        raise DataError(f"{at}symbol {shown!r} is {len(name)} characters long; symbol names are "
                        f"at most {MAX_SYMBOL} (rename it, e.g. with NAME=path)")
    if not SYMBOL.fullmatch(name) or not name.isprintable():
        raise DataError(f"{at}symbol {shown!r}: symbol names are letters, digits and "
                        f". _ - ^ = + & @ #, starting with a letter, a digit or ^ (rename it, "
                        f"e.g. with NAME=path)")


def check_universe(datas: Sequence[PriceData]) -> None:
    """Refuse, in one line, symbols that cannot be traded together (see the module doc)."""
    for d in datas:
        check_symbol(d.symbol, d.source)
    names = [d.symbol for d in datas]
    seen: set[str] = set()
    dup = sorted({n for n in names if n in seen or seen.add(n)})
    if dup:
        raise DataError(f"symbol names must be unique (repeated: {_shown(dup, 10)}); name "
                        "sources with NAME=path")
    if len(datas) < 2:
        return
    daily = [d.symbol for d in datas if is_daily(d.frame.index)]
    intraday = [d.symbol for d in datas if d.symbol not in set(daily)]
    if daily and intraday:
        raise DataError(f"daily and intraday bars cannot be traded in one account: "
                        f"{_shown(daily)} daily, {_shown(intraday)} intraday; load them "
                        "separately")
    union = pd.DatetimeIndex(np.unique(np.concatenate([d.frame.index.asi8 for d in datas])))
    apart = []
    for d in datas:
        own = d.frame.index.asi8
        if len(own) < 2:
            continue
        pos = union.asi8.searchsorted(own)
        share = float(np.mean(np.diff(pos) == 1))
        if share < MIN_ALIGNED:
            apart.append((share, d.symbol))
    if apart:
        share, worst = min(apart)
        raise DataError(
            f"the bars of {_shown([s for _, s in apart])} do not line up with the other "
            f"symbols' bars: only {share:.0%} of {worst}'s bars are followed by its own next bar "
            "on the joint calendar, so its orders could not fill; give every symbol the same "
            "bar times")
