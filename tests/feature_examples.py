"""User features for the feature-set and audit tests: clean ones and planted leaks.

Referenced from configs as ``tests.feature_examples:<function>``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def momentum_3(prices: pd.DataFrame) -> pd.DataFrame:
    """Clean: 3-bar log return and the gap between open and the previous close."""
    logc = np.log(prices["close"])
    gap = np.log(prices["open"]) - logc.shift(1)
    return pd.DataFrame({"mom_3": logc.diff(3), "gap": gap}, index=prices.index)


def relative_to_market(prices: pd.DataFrame, panel: dict | None) -> pd.Series:
    """Clean, panel-aware: 5-bar return minus the universe's median 5-bar return."""
    own = np.log(prices["close"]).diff(5)
    if not panel:
        return own.rename("rel_5")
    others = pd.concat({s: np.log(f["close"]).diff(5) for s, f in panel.items()}, axis=1,
                       sort=True)
    return (own - others.reindex(prices.index).median(axis=1)).rename("rel_5")


def next_return(prices: pd.DataFrame) -> pd.Series:
    """Leak: tomorrow's return (``shift(-1)``)."""
    return np.log(prices["close"]).diff().shift(-1).rename("next_ret")


def centred_mean(prices: pd.DataFrame) -> pd.Series:
    """Leak: close relative to a centred 5-bar mean (reads 2 bars ahead)."""
    close = prices["close"]
    return (close / close.rolling(5, center=True, min_periods=1).mean() - 1.0).rename("centred_ma5")


def full_sample_zscore(prices: pd.DataFrame) -> pd.Series:
    """Leak: returns z-scored with the mean and std of the whole history."""
    r = np.log(prices["close"]).diff()
    return ((r - r.mean()) / r.std()).rename("ret_z")


def weekly_close(prices: pd.DataFrame) -> pd.Series:
    """Leak: each day sees its week's last close (a weekly resample filled back over the week)."""
    close = prices["close"]
    week = close.resample("W").last().reindex(close.index, method="bfill")
    return (week / close - 1.0).rename("week_close")


def history_rank(prices: pd.DataFrame) -> pd.Series:
    """Leak: the close's rank across the whole history."""
    return prices["close"].rank(pct=True).rename("close_rank")


def ema_seeded(prices: pd.DataFrame) -> pd.Series:
    """No look-ahead, but depends on where the data starts: an EMA seeded at the first bar."""
    close = prices["close"]
    return (close / close.ewm(span=50, adjust=False).mean() - 1.0).rename("ema50_gap")


def ema_declared(prices: pd.DataFrame) -> pd.Series:
    """The same EMA with a declared warm-up long enough for its seed to fade."""
    return ema_seeded(prices).rename("ema50_gap_declared")


ema_declared.warmup = 1200  # (49/51)^1200 < 1e-20


def vandal(prices: pd.DataFrame, panel: dict | None) -> pd.Series:
    """Hostile but clean in value: edits its inputs in place (prices, every panel frame, the
    panel dict) before returning a plain 1-bar return."""
    out = np.log(prices["close"]).diff().rename("ret_1v")
    prices["close"] *= 10.0
    prices.iloc[:, 0] = 0.0
    for frame in (panel or {}).values():
        frame["close"] *= 3.0
        frame.loc[:, "open"] = -1.0
    if panel:
        panel.clear()
    return out
