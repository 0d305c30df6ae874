"""In-memory price data: DataFrames (one symbol, a long frame, a yfinance download) and dicts.

Each frame is written to CSV text in memory and read by the same parser as files
(:func:`data.layouts.read_layout`), so a DataFrame, a dict of frames, a long frame, a
CSV of the same data and a bundled name give the same bars bit for bit, with the same
checks and the same one-line errors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from lstmknn.data.csvtext import read_text_table
from lstmknn.data.errors import DataError
from lstmknn.data.layouts import read_layout
from lstmknn.data.options import LoadOptions
from lstmknn.data.prices import PriceData
from lstmknn.data.sources import load_sources

DataLike = Any  # DataFrame | Mapping[str, DataFrame] | str | Path | PriceData | Sequence of them


def frame_data(frame: pd.DataFrame, name: str | None = None,
               options: LoadOptions | None = None) -> list[PriceData]:
    """Every symbol of one DataFrame: dates in the index (or a ``date`` column), OHLCV columns
    in any case (``Open``/``open``, ``Adj Close``...), a ``symbol`` column for a long frame,
    or yfinance's (field, ticker) column levels. ``name``: the symbol of a one-symbol frame."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"expected a DataFrame (got {type(frame).__name__})")
    if frame.empty:
        raise DataError(f"{name or 'DataFrame'}: no rows")
    out = frame
    if isinstance(out.index, pd.DatetimeIndex):
        out = out.rename_axis("Date" if out.index.name in (None, "") else out.index.name)
    if isinstance(out.columns, pd.MultiIndex):
        text = out.to_csv(date_format="%Y-%m-%d %H:%M:%S%z" if _timed(out.index) else "%Y-%m-%d")
    else:
        index = isinstance(out.index, pd.DatetimeIndex)
        text = out.to_csv(index=index,
                          date_format="%Y-%m-%d %H:%M:%S%z" if _timed(out.index) else "%Y-%m-%d")
    raw = text.encode()
    where = f"DataFrame {name}" if name else "DataFrame"
    table = read_text_table(raw, where, ",")
    opts = options or LoadOptions()
    return read_layout(table, LoadOptions(**{**opts.__dict__, "sep": ","}), where=where,
                       source=where, sha256=hashlib.sha256(raw).hexdigest(),
                       default_symbol=name or "asset")


def _timed(index: pd.Index) -> bool:
    """Whether a date index carries a time of day or a timezone (written in full, then)."""
    if not isinstance(index, pd.DatetimeIndex):
        return False
    return index.tz is not None or bool((index != index.normalize()).any())


def as_price_data(data: DataLike, options: LoadOptions | None = None) -> list[PriceData]:
    """Price data from whatever a user has: a DataFrame, a dict ``{symbol: DataFrame}``, a long
    frame, a bundled name, a path, ``NAME=path``, :class:`PriceData`, or a list of these.

    Raises :class:`DataError` (one line) for anything unusable or repeated symbol names.
    """
    items = list(data) if isinstance(data, (list, tuple)) else [data]
    datas: list[PriceData] = []
    specs: list[str] = []
    for item in items:
        if isinstance(item, PriceData):
            datas.append(item)
        elif isinstance(item, pd.DataFrame):
            datas += frame_data(item, None, options)
        elif isinstance(item, Mapping):
            for sym, frame in item.items():
                got = frame_data(frame, str(sym), options)
                if len(got) != 1:
                    raise DataError(f"{sym}: the frame holds {len(got)} symbols; a dict maps "
                                    "each symbol to its own frame")
                datas += got
        elif isinstance(item, (str, Path)):
            specs.append(str(item))
        else:
            raise DataError(f"cannot read price data from a {type(item).__name__} (give a "
                            "DataFrame, a dict of DataFrames, a path or a bundled name)")
    if specs:
        datas += load_sources(specs, options)
    if not datas:
        raise DataError("no data given")
    names = [d.symbol for d in datas]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"symbol names must be unique (repeated: {', '.join(dup[:10])})")
    return datas


__all__ = ["DataLike", "as_price_data", "frame_data"]
