"""Scale-free, stationary features and next-bar labels.

Every feature at bar ``t`` uses only bars ``<= t``; no raw price level is a
feature, so a 1999 bar and a 2018 bar are comparable for KNN distances.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FEATURE_NAMES = (
    "ret_1",
    "ret_5",
    "ret_10",
    "ret_20",
    "close_ma5",
    "close_ma20",
    "rsi_14",
    "macd",
    "macd_hist",
    "vol_20",
    "vol_ratio",
    "range_hl",
    "close_loc",
    "volume_ma20",
)


def log_returns(close: pd.Series) -> pd.Series:
    """Bar-to-bar log returns (NaN for the first bar)."""
    return np.log(close).diff()


def _rsi(close: pd.Series, window: int = 14) -> pd.Series:
    delta = close.diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / window, adjust=False, min_periods=window).mean()
    total = gain + loss
    rsi = gain / total.where(total > 0)
    return rsi.fillna(0.5)


def build_features(prices: pd.DataFrame) -> pd.DataFrame:
    """Feature matrix aligned with ``prices`` (NaN during each feature's warm-up).

    Columns (all dimensionless): log returns over 1/5/10/20 bars (momentum),
    close relative to its 5- and 20-bar means, RSI(14) centred on 0, MACD and
    its histogram relative to price, 20-bar realised volatility and its ratio
    to the 5-bar one, the high-low range, where the close sits in that range,
    and log volume relative to its 20-bar mean.
    """
    close, high, low = prices["close"], prices["high"], prices["low"]
    r = log_returns(close)
    logc = np.log(close)
    f = pd.DataFrame(index=prices.index)
    for h in (1, 5, 10, 20):
        f[f"ret_{h}"] = logc.diff(h)
    f["close_ma5"] = close / close.rolling(5).mean() - 1.0
    f["close_ma20"] = close / close.rolling(20).mean() - 1.0
    rsi = _rsi(close)
    rsi[close.diff().rolling(14).count() < 14] = np.nan
    f["rsi_14"] = rsi - 0.5
    ema12 = close.ewm(span=12, adjust=False, min_periods=12).mean()
    ema26 = close.ewm(span=26, adjust=False, min_periods=26).mean()
    macd = (ema12 - ema26) / close
    signal = macd.ewm(span=9, adjust=False, min_periods=9).mean()
    f["macd"] = macd
    f["macd_hist"] = macd - signal
    vol20 = r.rolling(20).std()
    vol5 = r.rolling(5).std()
    f["vol_20"] = vol20
    f["vol_ratio"] = np.log((vol5 + 1e-12) / (vol20 + 1e-12))
    f["range_hl"] = (high - low) / close
    span = (high - low).where(high > low)
    f["close_loc"] = ((close - low) / span).fillna(0.5) - 0.5
    logv = np.log1p(prices["volume"])
    f["volume_ma20"] = logv - logv.rolling(20).mean()
    return f[list(FEATURE_NAMES)].astype("float64")


def realized_volatility(close: pd.Series, window: int) -> pd.Series:
    """Rolling standard deviation of log returns over ``window`` bars, known at each bar's close."""
    return log_returns(close).rolling(window).std()


def next_return(close: pd.Series, horizon: int = 1) -> pd.Series:
    """Label: the return from bar t's close to bar t+horizon's close.

    It is unknown (NaN) for the last ``horizon`` bars, and becomes known only at
    the close of bar ``t + horizon``.
    """
    return close.shift(-horizon) / close - 1.0


def first_valid_row(features: pd.DataFrame) -> int:
    """Position of the first bar at which every feature is defined."""
    ok = features.notna().all(axis=1).to_numpy()
    hits = np.flatnonzero(ok)
    return int(hits[0]) if hits.size else len(features)
