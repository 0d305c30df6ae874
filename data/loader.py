"""Load one symbol's price history (kept for single-symbol callers).

New code should use :func:`data.sources.load_sources`, which reads every
layout and returns one :class:`PriceData` per symbol.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from lstmknn.data.dates import parse_dates
from lstmknn.data.errors import DataError
from lstmknn.data.layouts import DATE_NAMES
from lstmknn.data.prices import REQUIRED_COLUMNS, PriceData, build, norm, plan_columns
from lstmknn.data.sources import BUNDLED, LoadOptions, bundled_path, load_sources

__all__ = ["BUNDLED", "REQUIRED_COLUMNS", "PriceData", "bundled_path", "load_prices",
           "resolve_source", "validate_ohlcv"]


def resolve_source(source: str | Path) -> tuple[str, Path]:
    """Map a bundled name or a CSV path to (symbol, path)."""
    text = str(source)
    if text.lower() in BUNDLED:
        return text.lower(), bundled_path(text.lower())
    path = Path(text).expanduser()
    if not path.exists():
        names = ", ".join(sorted(BUNDLED))
        raise DataError(f"{text}: no such file and not a bundled dataset (bundled: {names})")
    if path.is_dir():
        raise DataError(f"{text}: is a folder, expected a CSV file")
    return path.stem, path


def load_prices(source: str | Path, symbol: str | None = None,
                options: LoadOptions | None = None) -> PriceData:
    """Load a single-symbol source (bundled name, CSV path or ``NAME=path``).

    Raises :class:`DataError` with a one-line message naming the file, and the
    row or column, of the first problem found; a source holding several
    symbols is refused (use :func:`data.sources.load_sources`).
    """
    text = str(source)
    if Path(text).expanduser().is_dir():
        raise DataError(f"{text}: is a folder, expected a CSV file (load folders with load_sources)")
    datas = load_sources([text], options)
    if len(datas) != 1:
        shown = ", ".join(d.symbol for d in datas[:5]) + (", ..." if len(datas) > 5 else "")
        raise DataError(f"{text}: holds {len(datas)} symbols ({shown}); expected one")
    data = datas[0]
    return dataclasses.replace(data, symbol=symbol) if symbol else data


def validate_ohlcv(df: pd.DataFrame, where: str = "data") -> pd.DataFrame:
    """Check an in-memory OHLCV table and return its normalised frame (see :class:`PriceData`)."""
    names = {norm(c): c for c in df.columns}
    date_col = next((names[d] for d in DATE_NAMES if d in names), None)
    found = ", ".join(str(c) for c in df.columns) or "none"
    plan = plan_columns(names, None, where, found, ["date"] if date_col is None else [])
    if df.empty:
        raise DataError(f"{where}: no data rows")
    lines = np.arange(2, len(df) + 2)
    dates, _ = parse_dates(df[date_col].astype(str).reset_index(drop=True), where, lambda i: int(lines[i]))
    cols = {}
    for c in plan.used:
        raw = df[names[c]].to_numpy()
        cols[c] = (pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=float), raw)
    return build(where, dates, lines, cols, plan, where=where, source=where, sha256="").frame
