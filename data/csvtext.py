"""Read a CSV's cells as text: decoding, gzip, separator and decimal-mark detection."""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lstmknn.data.errors import DataError

SEPARATORS = (",", ";", "\t", "|")
SEP_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}
# "1.234.567" / "1,234" / "1 234": digit groups that may be thousands separators
GROUPED = {".": re.compile(r"^[+-]?[1-9]\d{0,2}(\.\d{3})+$"), ",": re.compile(r"^[+-]?[1-9]\d{0,2}(,\d{3})+$")}
NUMBERISH = re.compile(r"^[+-]?[\d.,]*\d[\d.,]*$")


@dataclass
class TextTable:
    """Cells of a CSV as strings: ``cells`` has positional columns, ``lines`` the line of each row."""

    cells: pd.DataFrame
    lines: np.ndarray
    sep: str


def gunzip(raw: bytes, where: str) -> bytes:
    """``raw`` itself, or decompressed when it is gzip data."""
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{where}: not a readable gzip file ({exc})") from None
    return raw


def decode(raw: bytes, where: str) -> str:
    """UTF-8 (with or without BOM), else Latin-1; binary content is refused."""
    if raw[:4] == b"PK\x03\x04":
        raise DataError(f"{where}: not a readable CSV (a zip or Excel file: export it as CSV)")
    if b"\x00" in raw[:4096]:
        raise DataError(f"{where}: not a readable CSV (binary content; save UTF-16 text as UTF-8)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def sniff_sep(text: str, where: str) -> str:
    """The separator giving the most, and consistent, fields on the first lines."""
    sample = [ln for ln in text.splitlines()[:20] if ln.strip()]
    if not sample:
        raise DataError(f"{where}: no data rows")
    best, best_key = ",", (False, 1)
    for sep in SEPARATORS:
        counts = [len(r) for r in csv.reader(sample, delimiter=sep)]
        key = (all(c == counts[0] for c in counts[:5]), counts[0])
        if counts[0] > 1 and key > best_key:
            best, best_key = sep, key
    best_n = best_key[1]
    if best_n == 1:
        raise DataError(
            f"{where}: found a single column (first line {sample[0][:60]!r}); if fields are "
            f"separated by something other than , ; tab or |, pass --sep"
        )
    return best


def read_text_table(raw: bytes, where: str, sep: str | None = None) -> TextTable:
    """All cells of a file's bytes as stripped strings; blank lines are skipped but counted."""
    text = decode(gunzip(raw, where), where)
    if sep is None:
        sep = sniff_sep(text, where)
    try:
        try:
            cells = _read(text, sep, None)
        except pd.errors.ParserError:  # rows wider than the first line: read them all
            width = max((len(r) for r in csv.reader(io.StringIO(text), delimiter=sep)), default=1)
            cells = _read(text, sep, width)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{where}: not a readable CSV with separator {SEP_NAMES.get(sep, repr(sep))} "
                        f"({first}); pass --sep if the separator is another") from None
    cells = cells.fillna("").astype(object)
    for c in cells.columns:
        if _has(cells[c].to_numpy(), " ", "\t"):
            cells[c] = cells[c].str.strip()
    cells.columns = range(cells.shape[1])
    lines = np.arange(1, len(cells) + 1)
    keep = (cells != "").any(axis=1).to_numpy()
    cells, lines = cells[keep].reset_index(drop=True), lines[keep]
    if cells.empty:
        raise DataError(f"{where}: no data rows")
    return TextTable(cells=cells, lines=lines, sep=sep)


def _read(text: str, sep: str, width: int | None) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), sep=sep, header=None, dtype=str, keep_default_na=False,
                       skip_blank_lines=False, skipinitialspace=True, engine="c",
                       names=None if width is None else list(range(width)))


def _has(values: np.ndarray, *chars: str) -> bool:
    """Whether any cell contains one of ``chars`` (one C-level scan)."""
    joined = "\x00".join(values.tolist())
    return any(ch in joined for ch in chars)


def detect_decimal(values: pd.DataFrame, sep: str, where: str, lines: np.ndarray) -> str:
    """``"."`` or ``","`` from the number cells, or a one-line refusal when they disagree."""
    cells = values.to_numpy().ravel()
    if not _has(cells, ","):
        return "."
    uniq, first = np.unique(cells.astype(str), return_index=True)
    order = np.argsort(first)
    flat = pd.Series(uniq[order], dtype=object)
    rows = first[order] // max(values.shape[1], 1)
    num = flat.str.fullmatch(NUMBERISH.pattern).to_numpy(dtype=bool)
    flat, rows = flat[num].reset_index(drop=True), rows[num]
    comma_last = flat.str.contains(",").to_numpy(dtype=bool) & (flat.str.rfind(",") > flat.str.rfind(".")).to_numpy()
    dot_last = flat.str.contains(".", regex=False).to_numpy(dtype=bool) & ~comma_last
    comma_dec = comma_last & ~flat.str.fullmatch(GROUPED[","].pattern).to_numpy(dtype=bool)
    dot_dec = dot_last & ~flat.str.fullmatch(GROUPED["."].pattern).to_numpy(dtype=bool)
    if comma_dec.any() and dot_dec.any():
        i, j = int(np.flatnonzero(comma_dec)[0]), int(np.flatnonzero(dot_dec)[0])
        raise DataError(
            f"{where}: numbers use both ',' (line {lines[rows[i]]}: {flat[i]!r}) and '.' "
            f"(line {lines[rows[j]]}: {flat[j]!r}) as decimal mark; pass --decimal"
        )
    if comma_dec.any():
        return ","
    if comma_last.any() and sep != "," and not dot_dec.any():
        i = int(np.flatnonzero(comma_last)[0])
        raise DataError(
            f"{where}: line {lines[rows[i]]}: {flat[i]!r} could use ',' as decimal mark or as "
            f"thousands separator; pass --decimal , or --decimal ."
        )
    return "."


def to_numbers(col: pd.Series, decimal: str) -> np.ndarray:
    """Floats from number cells; thousands separators only where they group digits by three."""
    values = col.to_numpy()
    if decimal == "." and not _has(values, ",", " ", "\u00a0", "\u202f", "'"):
        return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)
    codes, uniq = pd.factorize(values)
    s = pd.Series(uniq, dtype=object)
    thousands = "." if decimal == "," else ","
    s = s.str.replace(r"[\s\u00a0\u202f']", "", regex=True)
    grouped = s.str.fullmatch(GROUPED[thousands].pattern[:-1] + rf"(\{decimal}\d*)?$").to_numpy(dtype=bool)
    s = s.where(~grouped, s.str.replace(thousands, "", regex=False))
    if decimal == ",":
        s = s.mask(s.str.contains(".", regex=False).to_numpy(dtype=bool), "nan")  # a stray '.' is not a number here
        s = s.str.replace(",", ".", regex=False)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)[codes]
