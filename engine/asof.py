"""The as-of signal: each symbol's decision at a bar, its target weight and its provenance.

Forecasts for a bar never change when later bars are added, and the strategy decides a
bar from that bar's rows and earlier ones, so :func:`engine.decisions.decide` on the data
cut at bar ``T`` (fits from the fold cache) yields the backtest's ``predictions.csv`` rows
of ``T`` (``fused``, ``target``, every model column), bit for bit, in every scope and
sizing. Used by ``lstmknn signal`` and by paper trading.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lstmknn.data.dates import parse_date
from lstmknn.data.errors import DataError
from lstmknn.data.loader import PriceData
from lstmknn.engine.cache import FoldCache
from lstmknn.engine.config import Config, validate_universe
from lstmknn.engine.decisions import Decisions, decide
from lstmknn.engine.runio import clean_json, format_timestamp
from lstmknn.strategies.strategy import Strategy

OHLCV = ["open", "high", "low", "close", "volume"]
# Order of the fields of a signal record (multi-lookback ``lstm_<L>`` columns follow ``lstm``).
SIGNAL_FIELDS = [
    "symbol", "asof", "target", "fused", "alpha", "regime", "fusion_used", "lstm", "lstm_conf",
    "knn", "knn_conf", "knn_k", "vol", "train_mean", "persistence", "fold", "train_start",
    "train_end", "train_size", "config_hash", "data_hash", "data_rows",
]


def row_block(frame: pd.DataFrame) -> np.ndarray:
    """Canonical bytes of each bar: int64 date (ns) then OHLCV as float64, 48 bytes a row."""
    out = np.empty((len(frame), 6), dtype="<f8")
    out.view("<i8")[:, 0] = pd.DatetimeIndex(frame.index).as_unit("ns").asi8
    out[:, 1:] = frame[OHLCV].to_numpy(dtype="<f8")
    return out.view(np.uint8)


def row_hashes(frame: pd.DataFrame) -> list[str]:
    """sha256 of each bar's canonical bytes (see :func:`row_block`)."""
    return [hashlib.sha256(r.tobytes()).hexdigest() for r in row_block(frame)]


def data_hashes(frame: pd.DataFrame, start: int, stop: int) -> list[str]:
    """``data_hash(frame, i)`` for ``i`` in ``[start, stop)``, in one pass."""
    block = row_block(frame.iloc[:stop])
    h = hashlib.sha256(block[:start].tobytes())
    out = []
    for row in block[start:stop]:
        h.update(row.tobytes())
        out.append(h.copy().hexdigest())
    return out


def data_hash(frame: pd.DataFrame, upto: int) -> str:
    """sha256 of the canonical bytes of rows ``0..upto`` (inclusive)."""
    return data_hashes(frame, upto, upto + 1)[0]


def signal_record(row: pd.Series, symbol: str, config_hash: str, data_digest: str,
                  data_rows: int) -> dict[str, Any]:
    """A JSON-ready record of one signal row (floats exact, NaN as None)."""
    rec: dict[str, Any] = {"symbol": symbol, "asof": row["date"], "config_hash": config_hash,
                           "data_hash": data_digest, "data_rows": data_rows}
    for key in row.index:
        if key not in ("date", "y_true", "symbol"):
            rec[key] = row[key]
    lstm_parts = sorted(k for k in rec if k.startswith("lstm_") and k != "lstm_conf")
    order = []
    for k in SIGNAL_FIELDS:
        order.append(k)
        if k == "lstm":
            order += lstm_parts
    order += [k for k in rec if k not in order]
    return clean_json({k: rec[k] for k in order if k in rec})


def bar_position(index: pd.DatetimeIndex, asof: str | pd.Timestamp | None) -> int:
    """Position of the last bar on or before ``asof`` (the last bar when None)."""
    if asof is None:
        return len(index) - 1
    ts = parse_date(asof, "--asof")
    pos = int(index.searchsorted(ts, side="right")) - 1
    if pos < 0:
        raise DataError(f"--asof {format_timestamp(ts)}: before the first bar "
                        f"({format_timestamp(index[0])})")
    return pos


def asof_date(datas: Sequence[PriceData], asof: str | pd.Timestamp | None) -> pd.Timestamp:
    """The as-of bar of a signal: ``asof``, or the latest bar of any symbol."""
    if asof is None:
        return max(d.frame.index[-1] for d in datas)
    ts = parse_date(asof, "--asof")
    first = min(d.frame.index[0] for d in datas)
    if ts < first:
        raise DataError(f"--asof {format_timestamp(ts)}: before the first bar "
                        f"({format_timestamp(first)})")
    return ts


def signal_records(datas: Sequence[PriceData], cfg: Config,
                   asof: str | pd.Timestamp | None = None, *, cache: FoldCache | None = None,
                   strategy: Strategy | None = None, account_value: float | None = None,
                   quiet: bool = True) -> list[dict[str, Any]]:
    """The decision at the close of ``asof`` (default: the latest bar) for every symbol.

    One record per symbol (in ``datas`` order; symbols that start after ``asof`` or have
    no forecast yet are left out): the backtest's ``predictions.csv`` row of its last bar
    on or before ``asof`` (``target`` is the weight the backtest decides), the fold's
    training span, ``weight`` (the weight the backtest holds after that decision),
    ``side``, an indicative ``quantity`` for ``account_value`` (default
    ``execution.cash``), and ``stale`` / ``warning`` when a symbol's data ends before
    ``asof``.
    """
    validate_universe(cfg, [d.symbol for d in datas])
    when = asof_date(datas, asof)
    decided = decide(datas, cfg, strategy=strategy, cache=cache, asof=when, quiet=quiet)
    return records_at(decided, datas, cfg, when, account_value)


def records_at(decided: Decisions, datas: Sequence[PriceData], cfg: Config,
               when: pd.Timestamp, account_value: float | None = None) -> list[dict[str, Any]]:
    """Signal records of the decisions of data cut at ``when`` (see :func:`signal_records`)."""
    pred = decided.predictions
    folds = decided.forecasts.folds
    value = account_value if account_value is not None else cfg.execution.cash
    end = pred["date"].max()  # the last bar of the universe cut at ``when``
    records = []
    for d in datas:
        rows = pred[pred["symbol"] == d.symbol]
        if rows.empty:
            continue
        row = rows.iloc[-1]
        pos = int(d.frame.index.searchsorted(row["date"], side="right")) - 1
        span = folds[folds["fold"] == row["fold"]]
        if "symbol" in span:
            span = span[span["symbol"] == d.symbol]
        row = pd.concat([row.drop(labels=["symbol"]),
                         span.iloc[0][["train_start", "train_end", "train_size"]]])
        rec = signal_record(row, d.symbol, cfg.hash(), data_hash(d.frame, pos), pos + 1)
        stale = bool(row["date"] < when)
        weight = float(row["target"]) if np.isfinite(row["target"]) else 0.0
        if row["date"] < end:  # its bars ended before the others': the exchange closed it out
            weight = 0.0
        close = float(d.frame["close"].iloc[pos])
        rec.update(
            decided_at=rec["asof"], for_bar=d.fills, last_close=close, stale=stale,
            warning=(f"data ends at {format_timestamp(row['date'])}, before the as-of date "
                     f"{format_timestamp(when)}: this is not a current signal" if stale else None),
            weight=weight, side="long" if weight > 0 else "short" if weight < 0 else "flat",
            quantity=weight * value / close if close > 0 else None, source=d.source)
        records.append(rec)
    return records
