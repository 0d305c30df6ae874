"""The as-of signal: a bar's walk-forward row, its target position and its provenance.

Walk-forward predictions for a bar never change when later bars are added, so
running the walk-forward on the data cut at bar ``T`` (with ``since=T`` and
the fold cache; padded as in :func:`padding`) yields the backtest's
``predictions.csv`` row of ``T``, bit for bit. Used by ``lstmknn signal`` and
by paper trading.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from data.errors import DataError
from data.loader import PriceData
from engine.cache import FoldCache
from engine.config import Config
from engine.folds import bars_needed
from engine.progress import Progress
from engine.runio import clean_json, format_timestamp
from engine.walk_forward import folds_for, prepare, run_walk_forward
from reports.periods import infer_periods_per_year
from strategies.targets import add_targets, path_dependent

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


def _padded(prices: pd.DataFrame, n: int) -> pd.DataFrame:
    """``prices`` followed by ``n`` copies of its last bar, 1 ns apart."""
    if n <= 0:
        return prices
    pad = pd.DataFrame(np.repeat(prices.iloc[-1:].to_numpy(), n, axis=0), columns=prices.columns,
                       index=prices.index[-1] + pd.to_timedelta(np.arange(1, n + 1), unit="ns"))
    return pd.concat([prices, pad.rename_axis(prices.index.name)])


def padding(prices: pd.DataFrame, cfg: Config, available: tuple[str, ...] | None = None) -> int:
    """Dummy bars to append so that the last bar's fold is predicted whole, as in a backtest.

    Rows after a bar never change its forecast, but the LSTM's float32 kernels
    depend on the batch shape (~1e-7 relative): predicting the fold's full
    ``step`` rows reproduces the backtest bit for bit. The walk-forward also
    wants ``horizon`` bars after the first decision bar (to score it); padding
    gives the first decision bars their signal at their own close.
    DataError when the data is too short for a forecast of the last bar.
    """
    wf = cfg.walk_forward
    n = len(prices)
    try:
        prep = prepare(_padded(prices, wf.horizon), cfg, available)
    except DataError:
        prepare(prices, cfg, available)  # raises with the unpadded numbers
        raise  # pragma: no cover
    fold = next(f for f in folds_for(prep, cfg) if f.test_start <= n - 1 < f.test_end)
    needed = bars_needed(prep.first_sample, wf.train_window, wf.gap, wf.horizon)
    return max(fold.test_start + wf.step - n, needed - n, 0)


def compute_signals(prices: pd.DataFrame, cfg: Config, *, cache: FoldCache | None = None,
                    since: pd.Timestamp | None = None, progress: Progress | None = None,
                    available: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Walk-forward rows up to the last bar (from ``since`` on), with ``target`` and the
    fold's training span; the frame is padded first (see :func:`padding`).

    When a bar's target depends on earlier forecasts (the cost-aware rule), every
    earlier fold is predicted too (fits come from the cache), so the target equals
    the backtest's."""
    frame = _padded(prices, padding(prices, cfg, available))
    wf_since = None if path_dependent(cfg) else since
    wf = run_walk_forward(frame, cfg, cache=cache, since=wf_since, progress=progress,
                          available=available)
    pred = wf.predictions
    pred = pred[pred["date"] <= prices.index[-1]]
    pred = add_targets(pred, cfg, infer_periods_per_year(prices.index))
    if since is not None:
        pred = pred[pred["date"] >= pd.Timestamp(since)]
    spans = wf.folds.set_index("fold")[["train_start", "train_end", "train_size"]]
    return pred.join(spans, on="fold").reset_index(drop=True)


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
    try:
        ts = pd.Timestamp(asof)
    except (ValueError, TypeError):
        raise DataError(f"--asof {asof!r}: not a date") from None
    pos = int(index.searchsorted(ts, side="right")) - 1
    if pos < 0:
        raise DataError(f"--asof {asof}: before the first bar ({format_timestamp(index[0])})")
    return pos


def signal_for(data: PriceData, cfg: Config, asof: str | pd.Timestamp | None = None, *,
               cache: FoldCache | None = None,
               progress: Progress | None = None) -> dict[str, Any]:
    """The decision at the close of the ``asof`` bar (default: the latest) for the next bar."""
    pos = bar_position(data.frame.index, asof)
    prices = data.frame.iloc[: pos + 1]
    when = prices.index[-1]
    try:
        rows = compute_signals(prices, cfg, cache=cache, since=when, progress=progress,
                               available=data.available)
    except DataError as exc:
        raise DataError(f"{data.symbol} as of {format_timestamp(when)}: {exc}") from None
    rows = rows[rows["date"] == when]
    if rows.empty:  # pragma: no cover - folds always reach the last bar
        raise DataError(f"{data.symbol}: no forecast for {format_timestamp(when)}")
    return signal_record(rows.iloc[-1], data.symbol, cfg.hash(), data_hash(prices, pos), pos + 1)



def asof_date(datas: list[PriceData], asof: str | pd.Timestamp | None) -> pd.Timestamp:
    """The as-of date of a multi-symbol signal: ``asof``, or the latest bar of any symbol."""
    if asof is None:
        return max(d.frame.index[-1] for d in datas)
    try:
        return pd.Timestamp(asof)
    except (ValueError, TypeError):
        raise DataError(f"--asof {asof!r}: not a date") from None


def symbol_signal(data: PriceData, cfg: Config, asof: str | pd.Timestamp | None,
                  target_date: pd.Timestamp, *, cache: FoldCache | None = None,
                  progress: Progress | None = None) -> dict[str, Any]:
    """:func:`signal_for` plus ``decided_at``, ``for_bar``, ``last_close`` and the staleness
    of the data relative to ``target_date`` (``stale``, ``warning``)."""
    rec = signal_for(data, cfg, asof, cache=cache, progress=progress)
    pos = bar_position(data.frame.index, asof)
    when = data.frame.index[pos]
    stale = bool(when < target_date and pos == len(data.frame) - 1)
    available = getattr(data, "available", ("open",))
    rec["decided_at"] = rec["asof"]
    rec["for_bar"] = "next open" if "open" in available else "next close"
    rec["last_close"] = float(data.frame["close"].iloc[pos])
    rec["stale"] = stale
    rec["warning"] = (f"data ends at {format_timestamp(when)}, before the as-of date "
                      f"{format_timestamp(target_date)}: this is not a current signal"
                      if stale else None)
    return rec


def portfolio_weights(records: list[dict[str, Any]], cfg: Config,
                      account_value: float | None = None) -> list[dict[str, Any]]:
    """Add ``weight``, ``side`` and an indicative ``quantity`` to each symbol's record.

    Capital is shared as in a portfolio backtest: equally among the symbols with
    current data (``equal``) or by ``|fused|`` (``strength``). A stale symbol gets
    no weight (``None``).
    """
    live = [r for r in records if not r["stale"]]
    many = len(records) > 1
    total = sum(abs(r["fused"] or 0.0) for r in live)
    value = account_value if account_value is not None else cfg.execution.cash
    for r in records:
        if r["stale"]:
            r["weight"] = r["side"] = r["quantity"] = None
            continue
        if not many:
            w = r["target"]
        elif cfg.signal.allocation == "equal":
            w = r["target"] / len(live)
        else:
            w = r["target"] * (abs(r["fused"] or 0.0) / total if total > 0 else 0.0)
        r["weight"] = w
        r["side"] = "long" if w > 0 else "short" if w < 0 else "flat"
        r["quantity"] = w * value / r["last_close"] if r["last_close"] > 0 else None
    return records
