"""Turn a CSV's text cells into one :class:`PriceData` per symbol.

Layouts: wide (one symbol, a date column and price columns), long/tidy (a
symbol or ticker column, one row per symbol and bar) and yfinance's
multi-ticker download (header lines ``Price,...`` / ``Ticker,...`` / ``Date,,,``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lstmknn.data.csvtext import TextTable, detect_decimal, to_numbers
from lstmknn.data.dates import parse_dates
from lstmknn.data.errors import DataError
from lstmknn.data.options import LoadOptions
from lstmknn.data.prices import PRICE_FIELDS, PriceData, build, norm, plan_columns

DATE_NAMES = ("date", "datetime", "timestamp", "time", "date time", "trade date", "local time",
              "gmt time")
SYMBOL_NAMES = ("symbol", "ticker")


def read_layout(table: TextTable, options: LoadOptions, *, where: str, source: str, sha256: str,
                default_symbol: str) -> list[PriceData]:
    """All symbols of one file, in order of first appearance."""
    multi = _yfinance_header(table.cells)
    if multi is not None:
        return _read_multi(table, options, multi, where=where, source=source, sha256=sha256)
    cells, lines = table.cells, table.lines
    header = [str(h) for h in cells.iloc[0]]
    names = [norm(h) for h in header]
    found = ", ".join(h for h in header if h) or "none"
    date_i = next((names.index(d) for d in DATE_NAMES if d in names), 0 if header[0] == "" else None)
    if options.symbol_column is not None:
        if norm(options.symbol_column) not in names:
            raise DataError(f"{where}: no column {options.symbol_column!r} for --symbol-column "
                            f"(found: {found})")
        sym_i = names.index(norm(options.symbol_column))
    else:
        sym_i = next((names.index(s) for s in SYMBOL_NAMES if s in names), None)
    fields: dict[str, int] = {}
    for i, name in enumerate(names):
        if i not in (date_i, sym_i) and name:
            if name in fields and name in PRICE_FIELDS:
                raise DataError(f"{where}: column {header[i]!r} appears twice (found: {found})")
            fields.setdefault(name, i)
    plan = plan_columns(fields, options.price_column, where, found,
                        ["date"] if date_i is None else [])
    body, lines = cells.iloc[1:].reset_index(drop=True), lines[1:]
    if body.empty:
        raise DataError(f"{where}: no data rows")
    named = max(i for i, h in enumerate(header) if h or i == date_i) + 1
    extra = np.flatnonzero((body.iloc[:, named:] != "").any(axis=1).to_numpy())
    if extra.size:
        raise DataError(f"{where}: line {lines[extra[0]]}: more fields than the header's {named} "
                        f"({found}); check the separator (--sep) or the header")
    used = {c: fields[c] for c in plan.used}
    decimal = options.decimal or detect_decimal(body[list(used.values())], table.sep, where, lines)
    dates, note = parse_dates(body[date_i], where, lambda i: int(lines[i]),
                              dayfirst=options.dayfirst, date_format=options.date_format,
                              groups=None if sym_i is None else body[sym_i].to_numpy())
    cols = {c: (to_numbers(body[i], decimal), body[i].to_numpy()) for c, i in used.items()}
    notes = _notes(note, table.sep, decimal)
    if sym_i is None:
        others = [header[i] for i in range(len(header))
                  if header[i] and i != date_i and names[i] not in PRICE_FIELDS]
        hint = (f" (if column {others[0]!r} names symbols, pass --symbol-column {others[0]})"
                if others else "")
        return [build(default_symbol, dates, lines, cols, plan, where=where, source=source,
                      sha256=sha256, notes=notes, dup_hint=hint)]
    symbols = body[sym_i]
    empty = np.flatnonzero((symbols == "").to_numpy())
    if empty.size:
        raise DataError(f"{where}: line {lines[empty[0]]}: empty {header[sym_i]}")
    groups = pd.Series(np.arange(len(body))).groupby(symbols.to_numpy(), sort=False).indices
    out = []
    for sym in pd.unique(symbols.to_numpy()):
        pos = groups[sym]
        out.append(build(str(sym), dates[pos], lines[pos], {c: (v[pos], r[pos]) for c, (v, r) in cols.items()},
                         plan, where=f"{where}: symbol {sym}", source=source, sha256=sha256,
                         notes=notes))
    return out


def _notes(date_note: str | None, sep: str, decimal: str) -> list[str]:
    notes = [date_note] if date_note else []
    if sep != "," or decimal != ".":
        notes.append(f"read with separator {sep!r} and decimal mark {decimal!r}")
    return notes


def _yfinance_header(cells: pd.DataFrame) -> tuple[list[str], list[str], int] | None:
    """(fields, tickers, header lines) of a yfinance multi-ticker file, else None."""
    if len(cells) < 3 or cells.shape[1] < 2:
        return None
    r0, r1, r2 = ([str(x) for x in cells.iloc[k]] for k in range(3))
    heads = ("price", "ticker", "")
    if r0[0].lower() not in heads or r1[0].lower() not in heads:
        return None
    known0 = sum(norm(x) in PRICE_FIELDS for x in r0[1:])
    known1 = sum(norm(x) in PRICE_FIELDS for x in r1[1:])
    if max(known0, known1) == 0:
        return None
    fields, tickers = (r0, r1) if known0 >= known1 else (r1, r0)
    if any(t == "" for t in tickers[1:]):
        return None
    date_line = (norm(r2[0]) in DATE_NAMES or r2[0] == "") and all(x == "" for x in r2[1:])
    return fields, tickers, 3 if date_line else 2


def _read_multi(table: TextTable, options: LoadOptions, multi: tuple[list[str], list[str], int], *,
                where: str, source: str, sha256: str) -> list[PriceData]:
    fields, tickers, n_head = multi
    body, lines = table.cells.iloc[n_head:].reset_index(drop=True), table.lines[n_head:]
    if body.empty:
        raise DataError(f"{where}: no data rows")
    per: dict[str, dict[str, int]] = {}
    for i in range(1, len(fields)):
        cols = per.setdefault(tickers[i], {})
        if norm(fields[i]) in cols:
            raise DataError(f"{where}: column {fields[i]!r} appears twice for ticker {tickers[i]}")
        cols[norm(fields[i])] = i
    plans = {}
    for t, cols in per.items():
        found = ", ".join(f for f in fields[1:] if f) + f" for {t}"
        plans[t] = plan_columns(cols, options.price_column, f"{where}: ticker {t}", found, [])
    used_idx = sorted({per[t][c] for t, p in plans.items() for c in p.used})
    decimal = options.decimal or detect_decimal(body[used_idx], table.sep, where, lines)
    dates, note = parse_dates(body[0], where, lambda i: int(lines[i]),
                              dayfirst=options.dayfirst, date_format=options.date_format)
    out = []
    for t, plan in plans.items():
        idx = [per[t][c] for c in plan.used]
        present = (body[idx] != "").any(axis=1).to_numpy()
        pos = np.flatnonzero(present)
        notes = _notes(note, table.sep, decimal)
        if len(pos) < len(body):
            notes.append(f"{len(body) - len(pos)} dates without values for {t} left out")
        cols = {c: (to_numbers(body[per[t][c]], decimal)[pos], body[per[t][c]].to_numpy()[pos])
                for c in plan.used}
        out.append(build(t, dates[pos], lines[pos], cols, plan, where=f"{where}: ticker {t}",
                         source=source, sha256=sha256, notes=notes))
    return out
