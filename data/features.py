"""Scale-free, stationary features and next-bar labels.

Every feature at bar ``t`` uses only bars ``<= t``; no raw price level is a
feature, so a 1999 bar and a 2018 bar are comparable for KNN distances.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from lstmknn.data.errors import DataError

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

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")

# Input columns each built-in feature needs (every feature needs ``close``).
FEATURE_INPUTS: dict[str, tuple[str, ...]] = {
    **{name: ("close",) for name in FEATURE_NAMES},
    "range_hl": ("high", "low", "close"),
    "close_loc": ("high", "low", "close"),
    "volume_ma20": ("close", "volume"),
}


def _ema_settle(alpha: float, first: int, weight: float = 1e-12) -> int:
    """Bars until an exponential average's seed weighs less than ``weight``."""
    return first + int(np.ceil(np.log(weight) / np.log1p(-alpha)))


# Declared warm-up (bars from the start of the data) of the features seeded by an
# exponential average: their first finite row comes earlier, but until this bar the
# value still depends on where the data starts (by more than 1e-9 relative to the
# column's scale: measured at most 314 bars on the bundled data; declared here as the bar
# where the seed's weight falls below 1e-12). Every other feature is exact from
# its first finite row. Used by the recursive check of ``engine.audit``; the engine
# itself starts training at the first finite row.
SETTLE_WARMUP: dict[str, int] = {
    "rsi_14": _ema_settle(1 / 14, 14),
    "macd": _ema_settle(2 / 27, 25),
    "macd_hist": _ema_settle(2 / 27, 33),
}


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


def supported_features(available: Iterable[str] | None = None) -> tuple[str, ...]:
    """The built-in features computable from the columns in ``available`` (None: all five)."""
    have = set(PRICE_COLUMNS if available is None else available)
    return tuple(n for n in FEATURE_NAMES if set(FEATURE_INPUTS[n]) <= have)


def select_features(include: Sequence[str] | None = None,
                    available: Iterable[str] | None = None) -> tuple[str, ...]:
    """Validated built-in feature names, in :data:`FEATURE_NAMES` order.

    ``include=None`` means every feature the data's columns allow. An unknown
    name, or a feature the data cannot support, is a ``DataError`` naming it.
    """
    supported = supported_features(available)
    if include is None:
        return supported
    unknown = [n for n in include if n not in FEATURE_NAMES]
    if unknown:
        raise DataError(f"`features.include`: unknown feature(s) {', '.join(unknown)} "
                          f"(known: {', '.join(FEATURE_NAMES)})")
    missing = [n for n in include if n not in supported]
    if missing:
        have = sorted(set(PRICE_COLUMNS if available is None else available))
        needs = "; ".join(f"{n} needs {', '.join(FEATURE_INPUTS[n])}" for n in missing)
        raise DataError(f"`features.include`: the data has only {', '.join(have)}: {needs}")
    return tuple(n for n in FEATURE_NAMES if n in set(include))


def build_features(prices: pd.DataFrame, include: Sequence[str] | None = None,
                   available: Iterable[str] | None = None) -> pd.DataFrame:
    """Feature matrix aligned with ``prices`` (NaN during each feature's warm-up).

    Columns (all dimensionless): log returns over 1/5/10/20 bars (momentum),
    close relative to its 5- and 20-bar means, RSI(14) centred on 0, MACD and
    its histogram relative to price, 20-bar realised volatility and its ratio
    to the 5-bar one, the high-low range, where the close sits in that range,
    and log volume relative to its 20-bar mean.

    ``include`` picks built-ins by name (default: all that ``available``, the
    columns that truly came from the file, allow); see :func:`select_features`.
    The whole configured set, custom features included, is
    :func:`engine.feature_set.feature_frame`.
    """
    names = select_features(include, available)
    close, high, low = prices["close"], prices["high"], prices["low"]
    r = log_returns(close)
    logc = np.log(close)
    f = pd.DataFrame(index=prices.index)
    for h in (1, 5, 10, 20):
        f[f"ret_{h}"] = logc.diff(h)
    f["close_ma5"] = close / close.rolling(5).mean() - 1.0
    f["close_ma20"] = close / close.rolling(20).mean() - 1.0
    rsi = _rsi(close)
    rsi[close.diff().rolling(14, min_periods=0).count() < 14] = np.nan  # warm-up stays NaN
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
    return f[list(names)].astype("float64")


def feature_table_markdown() -> str:
    """Which built-in features each input shape gets (a Markdown table for the README)."""
    shapes = {"OHLCV": PRICE_COLUMNS, "OHLC": ("open", "high", "low", "close"),
              "close + volume": ("close", "volume"), "close only": ("close",)}
    lines = ["| feature | needs | " + " | ".join(shapes) + " |",
             "|---|---|" + "---|" * len(shapes)]
    for name in FEATURE_NAMES:
        marks = ["yes" if name in supported_features(cols) else "-" for cols in shapes.values()]
        lines.append(f"| `{name}` | {', '.join(FEATURE_INPUTS[name])} | " + " | ".join(marks) + " |")
    return "\n".join(lines)


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


def warmup_rows(features: pd.DataFrame) -> dict[str, int]:
    """Each column's warm-up: the position of its first finite value (``len`` if none)."""
    finite = np.isfinite(features.to_numpy(float))
    return {str(c): int(np.argmax(finite[:, i])) if finite[:, i].any() else len(features)
            for i, c in enumerate(features.columns)}
