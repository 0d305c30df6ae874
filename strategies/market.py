"""Input validation and calendar alignment shared by both backtest engines.

Several symbols are aligned on the union of their dates.  On a date where a
symbol has no bar its prices are forward-filled from its last real close (open
= high = low = close = that close, volume 0; back-filled from its first bar
before it starts trading), so that the account can still be valued.  A symbol
only gets an order at close ``t`` when its target is not NaN and it has a real
bar both at ``t`` (the decision) and at the next union date (the fill);
otherwise no order is sent that day and its position is left unchanged.
Orders on the last bar are never sent. A symbol whose bars end before the others'
is closed out at its last bar's open (a delisting; see :func:`_close_out_ended`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

FIELDS = ("open", "high", "low", "close", "volume")
Prices = pd.DataFrame | Mapping[str, pd.DataFrame]
Targets = pd.Series | pd.DataFrame


@dataclass(frozen=True)
class MarketData:
    """Aligned arrays of shape (n_bars, n_symbols) from the first target date on."""

    dates: pd.DatetimeIndex
    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    targets: np.ndarray  # NaN where no order may be sent

    def frame(self, j: int) -> pd.DataFrame:
        """OHLCV + ``target`` frame of symbol ``j`` (a backtrader feed)."""
        cols = {f: getattr(self, f)[:, j] for f in FIELDS}
        cols["target"] = self.targets[:, j]
        return pd.DataFrame(cols, index=self.dates)


def _check_frame(sym: str, df: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame) or not isinstance(df.index, pd.DatetimeIndex):
        raise TypeError(f"prices[{sym!r}] must be a DataFrame with a DatetimeIndex")
    missing = [c for c in FIELDS if c not in df.columns]
    if missing:
        raise ValueError(f"prices[{sym!r}] lacks columns {missing}")
    if not (df.index.is_unique and df.index.is_monotonic_increasing):
        raise ValueError(f"prices[{sym!r}] index must be unique and ascending")
    if df.index.tz is not None:
        raise ValueError(f"prices[{sym!r}] index must be tz-naive")
    return df.loc[:, list(FIELDS)].astype(float)


def _normalize(prices: Prices, targets: Targets) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    if isinstance(prices, pd.DataFrame):
        if isinstance(targets, pd.DataFrame):
            if targets.shape[1] != 1:
                raise ValueError("one price frame needs a Series (or one-column) target")
            targets = targets.iloc[:, 0]
        sym = "asset"
        return {sym: _check_frame(sym, prices)}, targets.to_frame(sym)
    frames = {str(s): _check_frame(str(s), df) for s, df in prices.items()}
    if not frames:
        raise ValueError("prices is empty")
    if isinstance(targets, pd.Series):
        if len(frames) != 1:
            raise ValueError("a portfolio needs a DataFrame of targets (one column per symbol)")
        targets = targets.to_frame(next(iter(frames)))
    targets = targets.rename(columns=str)
    unknown = sorted(set(targets.columns) - set(frames))
    if unknown:
        raise ValueError(f"targets for symbols without prices: {unknown}")
    return frames, targets


def _align(df: pd.DataFrame, union: pd.DatetimeIndex, first: int) -> tuple[np.ndarray, np.ndarray]:
    """(bars x 5) OHLCV block on ``union[first:]`` with filled gaps, and the real-bar mask."""
    if df.index.equals(union) and not df["close"].isna().any():
        block = df.to_numpy(dtype=float)[first:]
        return block, np.ones(len(block), dtype=bool)
    full = df.reindex(union)
    is_real = full["close"].notna().to_numpy()
    close = full["close"].ffill().bfill().fillna(0.0)
    for f in ("open", "high", "low"):
        full[f] = full[f].where(is_real, close)
    full["close"] = close
    full["volume"] = full["volume"].where(is_real, 0.0).fillna(0.0)
    return full.to_numpy(dtype=float)[first:], is_real[first:]


def market_data(prices: Prices, targets: Targets) -> MarketData:
    """Validate inputs and align them on the union calendar from the first target date."""
    frames, tdf = _normalize(prices, targets)
    if tdf.empty:
        raise ValueError("targets is empty")
    if not tdf.index.is_unique:
        raise ValueError("targets index must be unique")
    tdf = tdf.sort_index()
    union = next(iter(frames.values())).index
    for df in list(frames.values())[1:]:
        union = union.union(df.index)
    rows = union.get_indexer(tdf.index)
    if (rows < 0).any():
        raise ValueError("targets has dates that are not in the price index")
    first = int(rows[0])
    dates = union[first:].rename("date")
    n, k = len(dates), len(frames)
    blocks, reals = zip(*(_align(df, union, first) for df in frames.values()), strict=True)
    arr = {f: np.column_stack([b[:, c] for b in blocks]) for c, f in enumerate(FIELDS)}
    real = np.zeros((n + 1, k), dtype=bool)  # extra False row: no fill after the last bar
    real[:n] = np.column_stack(reals)
    tgt = np.full((n, k), np.nan)
    cols = [list(frames).index(c) for c in tdf.columns]
    tgt[np.ix_(rows - first, cols)] = tdf.to_numpy(dtype=float)
    tradable = real[:-1] & real[1:]
    tgt[~tradable] = np.nan
    _close_out_ended(tgt, real[:n], tradable)
    return MarketData(dates, tuple(frames), targets=tgt, **arr)


def _close_out_ended(tgt: np.ndarray, real: np.ndarray, tradable: np.ndarray) -> None:
    """Delisting: a symbol whose bars end before the others' is sold at its last bar's open.

    This is the exchange's event, not the strategy's decision (a decision never knows
    that a symbol's data will end): the last order that can still fill (decided at the
    close before the symbol's last bar) is set to flat, so no position is left valued at a
    frozen price. The strategy's targets (``predictions.csv``) are left as decided.
    """
    for j, i in close_out_rows(real).items():
        tgt[i, j] = 0.0


def close_out_rows(real: np.ndarray) -> dict[int, int]:
    """Per symbol (column of ``real``, its bars on the union calendar) whose bars end before
    the calendar's last row: the row at whose close its last fillable order is decided.

    The one rule of the backtest's engines and of paper accounts (which apply it when a
    step's data show a symbol has stopped).
    """
    n = len(real)
    out: dict[int, int] = {}
    if n < 2:
        return out
    tradable = real[:-1] & real[1:]
    for j in range(real.shape[1]):
        bars = np.flatnonzero(real[:, j])
        if not len(bars) or bars[-1] >= n - 1:
            continue
        fills = np.flatnonzero(tradable[: bars[-1], j])
        if len(fills):
            out[j] = int(fills[-1])
    return out
