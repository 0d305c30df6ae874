"""Load and validate OHLCV price history from the bundled datasets or any CSV."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from data.errors import DataError

REQUIRED_COLUMNS = ("open", "high", "low", "close", "volume")
BUNDLED = {"sp500": "sp500.csv", "msft": "msft.csv"}


@dataclass(frozen=True)
class PriceData:
    """Validated OHLCV bars of one symbol.

    ``frame`` has a tz-naive ascending DatetimeIndex named ``date`` and float
    columns ``open, high, low, close, volume``.
    """

    symbol: str
    frame: pd.DataFrame
    source: str
    sha256: str

    @property
    def rows(self) -> int:
        return len(self.frame)

    def describe(self) -> dict:
        idx = self.frame.index
        return {
            "name": self.symbol,
            "source": self.source,
            "sha256": self.sha256,
            "first_date": idx[0].isoformat() if len(idx) else None,
            "last_date": idx[-1].isoformat() if len(idx) else None,
            "rows": int(len(idx)),
        }


def bundled_path(name: str) -> Path:
    """Path of a bundled dataset (``sp500`` or ``msft``)."""
    return Path(str(resources.files("data.bundled").joinpath(BUNDLED[name])))


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


def load_prices(source: str | Path, symbol: str | None = None) -> PriceData:
    """Load a bundled dataset by name or an OHLCV CSV by path, and validate it.

    Raises :class:`DataError` with a one-line message naming the file, and the
    row or column, of the first problem found.
    """
    name, path = resolve_source(source)
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        df = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable CSV ({first})") from None
    frame = validate_ohlcv(df, str(path))
    return PriceData(symbol=symbol or name, frame=frame, source=str(path), sha256=digest)


def validate_ohlcv(df: pd.DataFrame, where: str = "data") -> pd.DataFrame:
    """Check a raw OHLCV table and return it normalised (see :class:`PriceData`).

    Dates out of order are refused rather than silently sorted: an unsorted
    file usually means a broken export, and sorting would hide it.
    """
    cols = {str(c).strip().lower(): c for c in df.columns}
    date_col = next((cols[c] for c in ("date", "datetime", "timestamp", "time") if c in cols), None)
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    if date_col is None:
        missing.insert(0, "date")
    if missing:
        found = ", ".join(str(c) for c in df.columns) or "none"
        raise DataError(f"{where}: missing column(s) {', '.join(missing)} (found: {found})")
    if df.empty:
        raise DataError(f"{where}: no data rows")

    def line(i: int) -> int:  # CSV line number of positional row i (header is line 1)
        return int(i) + 2

    dates = pd.to_datetime(df[date_col].astype(str).str.strip(), errors="coerce", format="mixed")
    bad = np.flatnonzero(dates.isna().to_numpy())
    if bad.size:
        i = bad[0]
        raise DataError(f"{where}: line {line(i)}: unparseable date {df[date_col].iloc[i]!r}")
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert(None)
    dup = np.flatnonzero(dates.duplicated().to_numpy())
    if dup.size:
        i = dup[0]
        raise DataError(f"{where}: line {line(i)}: duplicate date {dates.iloc[i].date()}")
    back = np.flatnonzero(np.diff(dates.to_numpy().astype("datetime64[ns]").astype(np.int64)) < 0)
    if back.size:
        i = back[0] + 1
        raise DataError(
            f"{where}: line {line(i)}: date {dates.iloc[i]} is before the previous row's "
            f"{dates.iloc[i - 1]} (dates must be ascending)"
        )
    out = pd.DataFrame(index=pd.DatetimeIndex(dates.to_numpy(), name="date"))
    for c in REQUIRED_COLUMNS:
        values = pd.to_numeric(df[cols[c]], errors="coerce").to_numpy(dtype=float)
        nonfinite = np.flatnonzero(~np.isfinite(values))
        if nonfinite.size:
            i = nonfinite[0]
            raise DataError(
                f"{where}: line {line(i)}: column {c} is not a finite number ({df[cols[c]].iloc[i]!r})"
            )
        out[c] = values
    for c in ("open", "high", "low", "close"):
        bad = np.flatnonzero(out[c].to_numpy() <= 0)
        if bad.size:
            i = bad[0]
            raise DataError(f"{where}: line {line(i)}: {c} must be > 0 (got {out[c].iloc[i]})")
    neg = np.flatnonzero(out["volume"].to_numpy() < 0)
    if neg.size:
        raise DataError(f"{where}: line {line(neg[0])}: volume must be >= 0")
    inverted = np.flatnonzero((out["high"] < out["low"]).to_numpy())
    if inverted.size:
        i = inverted[0]
        raise DataError(
            f"{where}: line {line(i)}: high < low ({out['high'].iloc[i]} < {out['low'].iloc[i]})"
        )
    return out
