"""One entry point for price data: bundled names, files, folders, ``NAME=path``.

>>> datas = load_sources(["sp500", "AAPL=exports/aapl.csv", "panel/"], LoadOptions(price_column="adj close"))

Each spec is one of

- a bundled name: ``sp500``, ``msft`` (one symbol each), ``us20`` (20 US large
  caps, adjusted close only), ``sp500_members`` (524 S&P 500 members, OHLCV,
  2009-08-21 to 2010-08-20);
- a CSV file (``.csv``, ``.csv.gz``, any separator): wide (one symbol, named by
  the file's stem), long (a ``symbol``/``ticker`` column: one symbol per value)
  or a yfinance multi-ticker download (one symbol per ticker);
- a folder: every ``*.csv`` / ``*.csv.gz`` / ``*.tsv`` in it, read as above;
- ``NAME=spec``: a spec holding exactly one symbol, renamed ``NAME``.

Every problem raises :class:`DataError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from lstmknn.data.csvtext import read_text_table
from lstmknn.data.errors import DataError
from lstmknn.data.layouts import read_layout
from lstmknn.data.options import LoadOptions
from lstmknn.data.prices import PriceData
from lstmknn.data.universe import check_universe

__all__ = ["BUNDLED", "LoadOptions", "absolute_spec", "bundled_path", "load_file", "load_sources"]

BUNDLED = {"sp500": "sp500.csv", "msft": "msft.csv", "us20": "us20.csv.gz",
           "sp500_members": "sp500_members.csv.gz"}
FOLDER_GLOBS = ("*.csv", "*.csv.gz", "*.tsv")
SEPS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def bundled_path(name: str) -> Path:
    """Path of a bundled dataset (see :data:`BUNDLED`)."""
    return Path(str(resources.files("lstmknn.data.bundled").joinpath(BUNDLED[name.lower()])))


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".csv.gz", ".gz"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return Path(name).stem


def _check_options(options: LoadOptions) -> LoadOptions:
    sep = options.sep
    if sep is not None:
        sep = SEPS.get(sep.lower(), sep)
        if len(sep) != 1 or sep in "\"'\r\n" or sep.isalnum():
            raise DataError(f"--sep must be one character such as , ; | or tab (got {options.sep!r})")
    if options.decimal is not None and options.decimal not in (".", ","):
        raise DataError(f"--decimal must be '.' or ',' (got {options.decimal!r})")
    if sep is not None and options.decimal is not None and sep == options.decimal:
        raise DataError(f"--sep and --decimal cannot both be {sep!r}")
    if options.date_format is not None and "%" not in options.date_format:
        raise DataError(f"--date-format must be a strftime format such as %d/%m/%Y "
                        f"(got {options.date_format!r})")
    return dataclasses.replace(options, sep=sep)


def load_file(path: Path, options: LoadOptions | None = None, *, label: str | None = None) -> list[PriceData]:
    """Every symbol in one CSV file (a bundled file is loaded with ``label`` as its name)."""
    options = _check_options(options or LoadOptions())
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{where}: cannot read ({exc.strerror or exc})") from None
    digest = hashlib.sha256(raw).hexdigest()
    table = read_text_table(raw, where, options.sep)
    return read_layout(table, options, where=where, source=where, sha256=digest,
                       default_symbol=label or _stem(path))


def _exists(text: str) -> bool:
    """Whether a path exists; a name the system cannot even look up (too long) does not."""
    try:
        return Path(text).expanduser().exists()
    except (OSError, ValueError):
        return False


def _resolve(text: str) -> tuple[str | None, Path]:
    """(bundled name or None, path) of a spec without ``NAME=``; raises if neither."""
    if text.lower() in BUNDLED:
        return text.lower(), bundled_path(text)
    path = Path(text).expanduser()
    if _exists(text):
        return None, path
    names = ", ".join(sorted(BUNDLED))
    raise DataError(f"{text}: no such file and not a bundled dataset (bundled: {names})")


def _split_spec(spec: str) -> tuple[str | None, str]:
    """(NAME, rest) of ``NAME=rest``; a spec that exists as written is never split."""
    if spec.lower() in BUNDLED or _exists(spec) or "=" not in spec:
        return None, spec
    for k in [i for i, ch in enumerate(spec) if ch == "="][::-1]:
        name, rest = spec[:k].strip(), spec[k + 1:].strip()
        if rest.lower() in BUNDLED or _exists(rest):
            break
    else:
        name, rest = spec.split("=", 1)
        name, rest = name.strip(), rest.strip()
    if not name or any(ch in name for ch in "/\\") or any(ch.isspace() for ch in name):
        raise DataError(f"{spec}: NAME=path needs a symbol name without spaces or slashes (got {name!r})")
    return name, rest


def _load_spec(spec: str, options: LoadOptions) -> list[PriceData]:
    name, text = _split_spec(spec.strip())
    bundled, path = _resolve(text)
    if path.is_dir():
        files = sorted({f for g in FOLDER_GLOBS for f in path.glob(g) if f.is_file()})
        if not files:
            raise DataError(f"{text}: folder holds no .csv files")
        datas = [d for f in files for d in load_file(f, options)]
    else:
        datas = load_file(path, options, label=bundled)
    if name is None:
        return datas
    if len(datas) != 1:
        shown = ", ".join(d.symbol for d in datas[:5]) + (", ..." if len(datas) > 5 else "")
        raise DataError(f"{spec}: {text} holds {len(datas)} symbols ({shown}); NAME=path names a "
                        f"source with exactly one symbol")
    return [dataclasses.replace(datas[0], symbol=name)]


def absolute_spec(spec: str) -> str:
    """``spec`` made independent of the working directory: a bundled name lower-cased, a path
    absolute, ``NAME=`` kept (loading the result later gives the same symbols)."""
    name, text = _split_spec(str(spec).strip())
    rest = text.lower() if text.lower() in BUNDLED else str(Path(text).expanduser().resolve())
    return f"{name}={rest}" if name is not None else rest


def load_sources(specs: Sequence[str], options: LoadOptions | None = None) -> list[PriceData]:
    """Load every spec (see the module docstring), one :class:`PriceData` per symbol.

    Raises :class:`DataError` (one line) for anything unusable, including symbols that
    cannot be traded together (:func:`data.universe.check_universe`).
    """
    if isinstance(specs, (str, Path)):
        specs = [str(specs)]
    if not specs:
        raise DataError("no data given (name a bundled dataset, a CSV file or a folder)")
    options = _check_options(options or LoadOptions())
    datas = [d for spec in specs for d in _load_spec(str(spec), options)]
    check_universe(datas)
    return datas
