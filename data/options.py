"""How to read a user's price files (the CLI's ``--price-column``, ``--sep``, ... options)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoadOptions:
    """Reading options; ``None`` everywhere means "detect from the file".

    - ``price_column``: column used as close (e.g. ``"adj close"``; case, spaces,
      ``_`` and ``.`` do not matter). With raw open/high/low and a raw close in the
      file, open/high/low are scaled by ``price / close`` so bars stay consistent.
    - ``sep``: field separator (``","``, ``";"``, ``"\\t"``, ``"|"``).
    - ``decimal``: decimal mark (``"."`` or ``","``); the other one is then only
      accepted as a thousands separator (``1.234,5``).
    - ``dayfirst``: ``True`` reads ``03/04/2020`` as 3 April, ``False`` as 4 March.
    - ``date_format``: an explicit ``strftime`` format for the date column
      (a trailing UTC offset is handled by the timezone rule, not the format).
    - ``symbol_column``: the column naming the symbol in a long (tidy) file,
      when it is not called ``symbol`` or ``ticker``.
    """

    price_column: str | None = None
    sep: str | None = None
    decimal: str | None = None
    dayfirst: bool | None = None
    date_format: str | None = None
    symbol_column: str | None = None
