"""One symbol's validated bars (:class:`PriceData`) and the checks that build it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lstmknn.data.errors import DataError

REQUIRED_COLUMNS = ("open", "high", "low", "close", "volume")
PRICE_FIELDS = ("open", "high", "low", "close", "adj close", "volume")
ALIASES = {"adjclose": "adj close", "adjusted close": "adj close", "adj close": "adj close",
           "vol": "volume"}
PRICE_RANGE = (1e-12, 1e12)   # beyond this, returns and their products overflow or vanish
MAX_VOLUME = 1e18
MAX_STEP = 1e6                # largest bar-to-bar price factor accepted


def norm(name: object) -> str:
    """Column name for matching: lower case, runs of space/``_``/``.``/``-`` as one space."""
    text = re.sub(r"[\s_.\-]+", " ", str(name).strip().lower()).strip()
    return ALIASES.get(text, text)


@dataclass(frozen=True)
class PriceData:
    """Validated bars of one symbol.

    ``frame`` has a tz-naive ascending DatetimeIndex named ``date`` and float
    columns ``open, high, low, close, volume`` ALWAYS: where the file had no
    open/high/low they equal close, where it had no volume it is 0.0.
    ``available`` lists the columns that really came from the file.
    """

    symbol: str
    frame: pd.DataFrame
    source: str
    sha256: str
    available: tuple[str, ...] = REQUIRED_COLUMNS
    price_column: str = "close"
    notes: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def fills(self) -> str:
        """Where orders decided on a bar fill: the next bar's open, or its close without opens."""
        return "next open" if "open" in self.available else "next close"

    def describe(self) -> dict:
        idx = self.frame.index
        daily = bool(len(idx)) and bool((idx == idx.normalize()).all())

        def iso(ts: pd.Timestamp) -> str:
            return ts.date().isoformat() if daily else ts.isoformat()

        out = {
            "name": self.symbol,
            "source": self.source,
            "sha256": self.sha256,
            "first_date": iso(idx[0]) if len(idx) else None,
            "last_date": iso(idx[-1]) if len(idx) else None,
            "rows": int(len(idx)),
            "available": list(self.available),
            "fills": self.fills,
            "price_column": self.price_column,
        }
        if self.notes:
            out["notes"] = list(self.notes)
        return out


@dataclass(frozen=True)
class Plan:
    """Which file columns make the frame (normalised names)."""

    close: str
    ohl: tuple[str, ...]
    volume: bool
    scale: bool
    notes: tuple[str, ...]

    @property
    def used(self) -> tuple[str, ...]:
        cols = [*self.ohl, self.close, *(["close"] if self.scale else []),
                *(["volume"] if self.volume else [])]
        return tuple(dict.fromkeys(cols))


def plan_columns(fields: Iterable[str], price_column: str | None, where: str, found: str,
                 missing: list[str]) -> Plan:
    """Choose the close column and the others; refuse in one line what cannot work."""
    have = set(fields)
    notes: list[str] = []
    if price_column is not None:
        pc = norm(price_column)
        if pc not in have:
            raise DataError(f"{where}: no column {price_column!r} for --price-column (found: {found})")
    elif "close" in have:
        pc = "close"
        if "adj close" in have:
            notes.append("the file's adj close is not used (pass --price-column 'adj close' "
                         "to trade adjusted prices)")
    elif "adj close" in have:
        pc = "adj close"
        notes.append("no close column: adj close used as close")
    else:
        missing = [*missing, "close"]
        pc = ""
    if missing:
        hint = "; pass --price-column NAME to use another column as close" if "close" in missing else ""
        raise DataError(f"{where}: missing column(s) {', '.join(missing)} (found: {found}){hint}")
    ohl = tuple(c for c in ("open", "high", "low") if c in have)
    scale = False
    if pc != "close" and ohl:
        if "close" in have:
            scale = True
            notes.append(f"open/high/low scaled by {pc} / close")
        else:
            notes.append(f"open/high/low ignored: no raw close to scale them to {pc}")
            ohl = ()
    return Plan(close=pc, ohl=ohl, volume="volume" in have, scale=scale, notes=tuple(notes))


def build(symbol: str, dates: pd.DatetimeIndex, lines: np.ndarray,
          cols: dict[str, tuple[np.ndarray, np.ndarray]], plan: Plan, *, where: str,
          source: str, sha256: str, notes: Iterable[str] = (), dup_hint: str = "") -> PriceData:
    """Validate one symbol's rows and return its :class:`PriceData`.

    ``cols`` maps each column in ``plan.used`` to (floats, raw cells). Dates
    out of order are refused rather than silently sorted: an unsorted file
    usually means a broken export, and sorting would hide it. ``dup_hint``
    ends the duplicate-date message.
    """
    n = len(dates)
    if n == 0:
        raise DataError(f"{where}: no data rows")

    def line(i: int) -> int:
        return int(lines[int(i)])

    step = np.diff(dates.asi8)
    dup = np.flatnonzero(step == 0)
    if dup.size:
        i = dup[0] + 1
        raise DataError(f"{where}: line {line(i)}: duplicate date {_show(dates[i])}{dup_hint}")
    back = np.flatnonzero(step < 0)
    if back.size:
        i = back[0] + 1
        hint = " (the file is newest-first: sort it oldest-first)" if (step < 0).all() else ""
        raise DataError(
            f"{where}: line {line(i)}: date {_show(dates[i])} is before the previous row's "
            f"{_show(dates[i - 1])} (dates must be ascending){hint}"
        )
    for c in plan.used:
        values, raw = cols[c]
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            i = bad[0]
            raise DataError(f"{where}: line {line(i)}: column {c} is not a finite number ({raw[i]!r})")
    for c in plan.used:
        if c == "volume":
            continue
        bad = np.flatnonzero(cols[c][0] <= 0)
        if bad.size:
            raise DataError(f"{where}: line {line(bad[0])}: {c} must be > 0 (got {cols[c][0][bad[0]]})")
    if plan.volume:
        vol = cols["volume"][0]
        neg = np.flatnonzero(vol < 0)
        if neg.size:
            raise DataError(f"{where}: line {line(neg[0])}: volume must be >= 0")
        big = np.flatnonzero(vol > MAX_VOLUME)
        if big.size:
            raise DataError(f"{where}: line {line(big[0])}: volume {vol[big[0]]:g} is above {MAX_VOLUME:g}")
    if "high" in plan.ohl and "low" in plan.ohl:
        hi, lo = cols["high"][0], cols["low"][0]
        inverted = np.flatnonzero(hi < lo)
        if inverted.size:
            i = inverted[0]
            raise DataError(f"{where}: line {line(i)}: high < low ({hi[i]} < {lo[i]})")
    close = cols[plan.close][0]
    ratio = close / cols["close"][0] if plan.scale else 1.0
    data = {c: (cols[c][0] * ratio if c in plan.ohl else close) for c in ("open", "high", "low")}
    data["close"] = close
    data["volume"] = cols["volume"][0] if plan.volume else np.zeros(n)
    frame = pd.DataFrame(np.column_stack([np.asarray(v, dtype=float) for v in data.values()]),
                         index=pd.DatetimeIndex(dates, name="date"), columns=list(data))
    _check_degenerate(frame, plan, where, line)
    available = tuple(c for c in REQUIRED_COLUMNS
                      if c in plan.ohl or c == "close" or (c == "volume" and plan.volume))
    return PriceData(symbol=symbol, frame=frame, source=source, sha256=sha256, available=available,
                     price_column=plan.close, notes=(*plan.notes, *notes))


def _show(ts: pd.Timestamp) -> str:
    return str(ts.date()) if ts == ts.normalize() else ts.isoformat()


def _check_degenerate(frame: pd.DataFrame, plan: Plan, where: str, line) -> None:
    """Refuse prices whose returns would overflow or be undefined (issue 12.5)."""
    lo, hi = PRICE_RANGE
    for c in ("open", "high", "low", "close"):
        v = frame[c].to_numpy()
        bad = np.flatnonzero((v > hi) | (v < lo))
        if bad.size:
            i = bad[0]
            name = plan.close if c == "close" else c
            raise DataError(f"{where}: line {line(i)}: {name} {v[i]:g} is outside the supported "
                            f"price range {lo:g} to {hi:g} (returns would overflow)")
    close = frame["close"].to_numpy()
    if len(close) >= 2:
        r = close[1:] / close[:-1]
        jump = np.flatnonzero((r > MAX_STEP) | (r < 1 / MAX_STEP))
        if jump.size:
            i = jump[0] + 1
            raise DataError(f"{where}: line {line(i)}: {plan.close} jumps from {close[i - 1]:g} to "
                            f"{close[i]:g} in one bar (a factor above {MAX_STEP:g}; returns would "
                            f"overflow)")
        if close.max() == close.min():
            raise DataError(f"{where}: {plan.close} never changes ({close[0]:g} on all {len(close)} "
                            f"rows): zero volatility, nothing to forecast")
