"""Synthetic stock universes with a planted, known cross-sectional signal.

Factor model, one date at a time::

    r[i, t+1] = m[t+1] + s_t * (ic * z[i, t] + sqrt(1 - ic**2) * u[i, t+1])

``m`` is a market return common to every symbol, ``s_t`` a common
(slowly varying) volatility, ``z[i, t]`` the planted signal (standard normal
across symbols, known at the close of ``t``) and ``u`` idiosyncratic noise.
Within each date the correlation of ``z`` with the next return is ``ic`` in
expectation: the market term is the same for every symbol, so it moves the
cross-section but not its ranking. ``ic = 0`` is the null universe.

The signal is observable in the prices, so a model can learn it: the close
sits at ``Phi(z)`` of the bar's high-low range (the ``close_loc`` feature).
The returned long frame also carries ``signal`` (``z``) for tests that need a
cheap forecaster of known quality.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
from scipy.special import ndtr

from lstmknn.data.loader import PriceData

OHLCV = ["open", "high", "low", "close", "volume"]


def make_universe(n_symbols: int = 50, n_days: int = 756, *, ic: float = 0.05, seed: int = 0,
                  start: str = "2000-01-03", freq: str = "B", market_vol: float = 0.01,
                  idio_vol: float = 0.02, vol_persistence: float = 0.98,
                  signal_persistence: float = 0.0, staggered: bool = False) -> pd.DataFrame:
    """Long frame ``date, symbol, open, high, low, close, volume, signal``.

    ``signal_persistence`` makes ``z`` an AR(1) over time (still standard
    normal). ``staggered`` gives symbols different listing and delisting dates
    (each symbol then covers at least half of the span).
    """
    if not -1.0 < ic < 1.0:
        raise ValueError(f"ic must be in (-1, 1) (got {ic})")
    if n_symbols < 1 or n_days < 2:
        raise ValueError("need at least one symbol and two days")
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=n_days, freq=freq, name="date")
    n, t_n = n_symbols, n_days
    # common volatility regime: log-AR(1) around 1
    lv = np.zeros(t_n)
    eta = rng.normal(0.0, 0.15, t_n)
    for t in range(1, t_n):
        lv[t] = vol_persistence * lv[t - 1] + math.sqrt(1 - vol_persistence**2) * eta[t]
    scale = np.exp(lv - lv.var() / 2)
    z = np.empty((t_n, n))
    z[0] = rng.standard_normal(n)
    phi = signal_persistence
    for t in range(1, t_n):
        z[t] = phi * z[t - 1] + math.sqrt(1 - phi**2) * rng.standard_normal(n)
    u = rng.standard_normal((t_n, n))
    market = rng.normal(0.0002, market_vol, t_n) * scale
    ret = np.zeros((t_n, n))
    ret[1:] = market[1:, None] + idio_vol * scale[1:, None] * (
        ic * z[:-1] + math.sqrt(1 - ic**2) * u[1:])
    ret = np.maximum(ret, -0.9)
    close = 20.0 * np.exp(rng.normal(0, 0.5, n))[None, :] * np.cumprod(1.0 + ret, axis=0)
    width = close * idio_vol * scale[:, None] * (0.5 + rng.random((t_n, n)))
    low = close - ndtr(z) * width
    high = low + width
    open_ = low + rng.random((t_n, n)) * width
    volume = np.round(1e6 * np.exp(rng.normal(0.0, 0.3, (t_n, n))))
    symbols = np.array([f"S{i:04d}" for i in range(n)])
    frame = pd.DataFrame({
        "date": np.repeat(dates.to_numpy(), n),
        "symbol": np.tile(symbols, t_n),
        "open": open_.ravel(), "high": high.ravel(), "low": low.ravel(),
        "close": close.ravel(), "volume": volume.ravel(), "signal": z.ravel(),
    })
    if staggered:
        first = rng.integers(0, t_n // 4 + 1, n)
        last = t_n - 1 - rng.integers(0, t_n // 4 + 1, n)
        pos = np.repeat(np.arange(t_n), n)
        sym_i = np.tile(np.arange(n), t_n)
        frame = frame[(pos >= first[sym_i]) & (pos <= last[sym_i])]
    return frame.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)


def null_universe(n_symbols: int = 50, n_days: int = 756, **kwargs: object) -> pd.DataFrame:
    """The same model with no predictive signal (``ic = 0``)."""
    return make_universe(n_symbols, n_days, ic=0.0, **kwargs)  # type: ignore[arg-type]


def planted_ic(ic: float, noise: float = 0.0) -> float:
    """Expected per-date IC of the forecaster ``signal + noise * N(0, 1)``."""
    return ic / math.sqrt(1.0 + noise**2)


def to_price_data(frame: pd.DataFrame, source: str = "synthetic") -> list[PriceData]:
    """Split a long frame into one validated-shape :class:`PriceData` per symbol."""
    out = []
    for sym, g in frame.groupby("symbol", sort=True):
        f = g.set_index(pd.DatetimeIndex(g["date"], name="date"))[OHLCV].astype(float)
        digest = hashlib.sha256(np.ascontiguousarray(f.to_numpy()).tobytes()).hexdigest()
        out.append(PriceData(symbol=str(sym), frame=f, source=source, sha256=digest))
    return out
