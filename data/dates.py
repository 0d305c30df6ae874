"""Parse a date column: numeric layouts, day-first detection and the timezone rule.

Timezone rule (timestamps written with a UTC offset, e.g. yfinance's
``2013-01-16 00:00:00-05:00``):

- **daily bars** (every bar at the same local time of day, usually midnight, or
  at most one bar per local calendar date) belong to the exchange's local date:
  the offset is dropped and the local wall clock kept, so a ``-05:00``/``-04:00``
  file across a DST change or a ``+09:00`` midnight file gives exactly the frame
  of its offset-free twin;
- **intraday bars** keep their instants: they are converted to UTC and stored
  tz-naive. Local wall clock would repeat an hour when DST ends (duplicate or
  backwards timestamps) and skip one when it starts; UTC is monotonic and exact.

Timestamps without an offset are taken as written (never shifted).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from lstmknn.data.errors import DataError

OFFSET = re.compile(
    r"^(?P<wall>.*?\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)\s*"
    r"(?P<off>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$",
    re.IGNORECASE,
)
NUMERIC = r"^(?P<a>\d{1,4})(?P<s>[./-])(?P<b>\d{1,2})(?P=s)(?P<c>\d{1,4})(?P<rest>[T ].*)?$"
NS_PER_DAY = 86_400 * 10**9


def _offset_minutes(off: str) -> int:
    o = off.upper().replace(":", "")
    if o in ("Z", "UTC", "GMT"):
        return 0
    sign = -1 if o[0] == "-" else 1
    return sign * (int(o[1:3]) * 60 + (int(o[3:5]) if len(o) > 3 else 0))


def _day_first(first: pd.Series, second: pd.Series, text: pd.Series, dayfirst: bool | None,
               where: str, line: Callable[[int], int]) -> bool:
    """Decide d/m/y against m/d/y from the file itself, or refuse in one line."""
    a, b = first.astype(int).to_numpy(), second.astype(int).to_numpy()
    big_a, big_b = np.flatnonzero(a > 12), np.flatnonzero(b > 12)
    if dayfirst is not None:
        return dayfirst
    if big_a.size and big_b.size:
        i, j = first.index[big_a[0]], first.index[big_b[0]]
        raise DataError(
            f"{where}: dates mix day-first (line {line(i)}: {text[i]!r}) and month-first "
            f"(line {line(j)}: {text[j]!r}); fix the file or pass --date-format"
        )
    if big_a.size:
        return True
    if big_b.size:
        return False
    i = first.index[0]
    raise DataError(
        f"{where}: dates like {text[i]!r} (line {line(i)}) could be day-first or month-first "
        f"and no day in the file is above 12; pass --dayfirst for dd/mm/yyyy or "
        f"--date-format %m/%d/%Y for mm/dd/yyyy"
    )


def _ns(parsed: pd.Series) -> pd.Series:
    """datetime64[ns]; dates outside its range (years 1677..2262) become NaT."""
    ok = parsed.isna() | ((parsed >= pd.Timestamp.min) & (parsed <= pd.Timestamp.max))
    return parsed.where(ok).astype("datetime64[ns]")


def _parse_wall(text: pd.Series, dayfirst: bool | None, date_format: str | None, where: str,
                line: Callable[[int], int]) -> pd.Series:
    """Offset-free timestamps as datetime64[ns] (NaT where unparseable)."""
    if date_format:
        fmt = date_format.replace("%z", "").replace("%Z", "").strip()
        return pd.to_datetime(text, format=fmt, errors="coerce").pipe(_ns)
    if len(text) and text.str.fullmatch(r"\d{8}").all():
        return pd.to_datetime(text, format="%Y%m%d", errors="coerce").pipe(_ns)
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    parts = text.str.extract(NUMERIC)
    numeric = parts["a"].notna().to_numpy()
    if numeric.any():
        p = parts[numeric]
        rest = p["rest"].fillna("")
        ymd = (p["a"].str.len() == 4).to_numpy()
        year, month, day = p["a"].copy(), p["b"].copy(), p["c"].copy()
        dmy = ~ymd
        if dmy.any():
            first, second = p["a"][dmy], p["b"][dmy]
            if _day_first(first, second, text, dayfirst, where, line):
                day[dmy], month[dmy] = first, second
            else:
                month[dmy], day[dmy] = first, second
            y = p["c"][dmy].astype(int)
            y = y.where(y >= 100, y + np.where(y < 69, 2000, 1900))
            year[dmy] = y.astype(str)
        iso = year.str.zfill(4) + "-" + month.str.zfill(2) + "-" + day.str.zfill(2) + rest
        out[numeric] = pd.to_datetime(iso, format="ISO8601", errors="coerce").pipe(_ns)
    other = ~numeric
    if other.any():
        t = text[other]
        parsed = pd.to_datetime(t, format="ISO8601", errors="coerce").pipe(_ns)
        named = (parsed.isna() & t.str.contains(r"[A-Za-z]{3}")).to_numpy()
        if named.any():  # month names: "Jan 02, 2020", "02-Jan-2020"
            parsed[named] = pd.to_datetime(t[named], format="mixed", dayfirst=bool(dayfirst),
                                           errors="coerce").pipe(_ns)
        out[other] = parsed
    return out


def _per_group(ns: np.ndarray, offsets: np.ndarray | None, groups: np.ndarray | None
               ) -> tuple[np.ndarray, str | None]:
    """Apply the bar-spacing rule to each symbol's rows (see the module docstring)."""
    codes = pd.factorize(groups)[0] if groups is not None else np.zeros(len(ns), dtype=np.int64)
    day = ns // NS_PER_DAY
    counts = pd.DataFrame({"g": codes, "t": ns, "d": day}).groupby("g").nunique()
    daily = (counts["d"] == counts["t"]).reindex(range(codes.max(initial=-1) + 1)).to_numpy()
    row_daily = daily[codes] if len(ns) else np.zeros(0, dtype=bool)
    moved = row_daily & (ns % NS_PER_DAY != 0)
    out = np.where(row_daily, day * NS_PER_DAY, ns)
    if offsets is not None:
        out = np.where(row_daily, out, ns - offsets * 60 * 10**9)
    parts = []
    if offsets is not None:
        if row_daily.any():
            parts.append("daily bars put on their local date")
        if not row_daily.all():
            parts.append("intraday bars converted to UTC")
    elif moved.any():
        times = sorted({str(pd.Timedelta(int(t), "ns")).split(" days ")[-1]
                        for t in np.unique(ns[moved] % NS_PER_DAY)[:3]})
        parts.append(f"daily bars stamped {', '.join(times)} put on their date")
    return out, "; ".join(parts) or None


def parse_dates(values: pd.Series, where: str, line: Callable[[int], int], *,
                dayfirst: bool | None = None, date_format: str | None = None,
                groups: np.ndarray | None = None) -> tuple[pd.DatetimeIndex, str | None]:
    """Parse ``values`` (strings, positional index) into tz-naive timestamps.

    ``groups`` (one symbol per row, for a long file) applies the bar-spacing rule to each
    symbol on its own: daily bars (at most one per calendar date) are put on their date
    at midnight, intraday bars keep their time (in UTC when written with an offset).
    Returns the timestamps and a note for ``describe()`` when timestamps were moved.
    ``line(i)`` maps a position to the file's line number for messages.
    """
    codes, uniq = pd.factorize(values.astype(str).to_numpy())
    _, first = np.unique(codes, return_index=True)  # first position of each distinct value

    def uline(k: int) -> int:
        return line(int(first[k]))

    text = pd.Series(uniq, dtype=object).str.strip()
    m = text.str.extract(OFFSET)
    has = m["off"].notna().to_numpy()
    if has.any():
        if not has.all():
            i, j = int(np.flatnonzero(~has)[0]), int(np.flatnonzero(has)[0])
            raise DataError(
                f"{where}: line {uline(i)}: date {text[i]!r} has no UTC offset but line {uline(j)} "
                f"has one ({text[j]!r}); use one convention for the whole column"
            )
        wall = _parse_wall(m["wall"], dayfirst, date_format, where, uline)
    else:
        wall = _parse_wall(text, dayfirst, date_format, where, uline)
    bad = np.flatnonzero(wall.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        hint = "" if date_format else " (pass --date-format to give its format)"
        raise DataError(f"{where}: line {uline(i)}: unparseable date {uniq[i]!r}{hint}")
    ns = wall.to_numpy().astype("datetime64[ns]").astype(np.int64)[codes]
    offsets = None
    if has.any():
        offsets = np.array([_offset_minutes(o) for o in m["off"]], dtype=np.int64)[codes]
    ns, note = _per_group(ns, offsets, groups)
    if offsets is not None:
        shown = ", ".join(sorted(set(m["off"]), key=str))
        note = f"dates had UTC offsets ({shown}): {note}"
    unit = "us" if (ns % 1000 == 0).all() else "ns"
    idx = pd.DatetimeIndex(ns.astype("datetime64[ns]"), name="date").as_unit(unit)
    return idx, note


def is_daily(index: pd.DatetimeIndex) -> bool:
    """Whether bars are daily (or coarser): at most one bar per calendar date."""
    return bool(index.normalize().is_unique)


def parse_date(text: str | pd.Timestamp, option: str, *, dayfirst: bool | None = None,
               date_format: str | None = None) -> pd.Timestamp:
    """One date or time given on the command line (``--asof``, ``--until``, ``--since``,
    ``--start``, ``--accept-revisions-from``), read by the rule of the data's date column.

    ``yyyy-mm-dd[ hh:mm[:ss]]``, ``yyyymmdd``, month names, or ``--date-format`` when given;
    ``dd/mm/yyyy`` against ``mm/dd/yyyy`` follows ``dayfirst``, and without it a date
    that could be either (both numbers <= 12 and different) is refused, as in a file. A
    UTC offset gives the instant in UTC (tz-naive), as intraday data are stored.
    """
    if isinstance(text, pd.Timestamp):
        return text.tz_convert("UTC").tz_localize(None) if text.tz is not None else text
    raw = str(text).strip()
    m = OFFSET.match(raw)
    wall = pd.Series([m["wall"] if m else raw], dtype=object)

    def no_line(_: int) -> int:
        return 0

    parsed = pd.NaT
    if date_format:
        parsed = _parse_wall(wall, None, date_format, option, no_line).iloc[0]
    if pd.isna(parsed):
        parts = wall.str.extract(NUMERIC).iloc[0]
        first_day = dayfirst
        if isinstance(parts["a"], str) and len(parts["a"]) != 4 and dayfirst is None:
            a, b = int(parts["a"]), int(parts["b"])
            if a <= 12 and b <= 12 and a != b:
                raise DataError(
                    f"{option} {raw!r}: could be day-first or month-first; pass --dayfirst for "
                    f"dd/mm/yyyy or --no-dayfirst for mm/dd/yyyy, or write yyyy-mm-dd")
            first_day = a > 12 or a == b
        try:
            parsed = _parse_wall(wall, first_day, None, option, no_line).iloc[0]
        except DataError:
            parsed = pd.NaT
    if pd.isna(parsed):
        raise DataError(f"{option} {raw!r}: not a date (use yyyy-mm-dd or yyyy-mm-dd hh:mm)")
    ts = pd.Timestamp(parsed)
    if m:
        ts -= pd.Timedelta(minutes=_offset_minutes(m["off"]))
    return ts
