"""What an account already processed, checked against its sources on every step.

* Identity: the sources must hold exactly the account's symbols; a symbol lost, gained or
  renamed is refused (one symbol's prices are never traded under another's name).
* History: each symbol's processed bars the source still holds must be unchanged (OHLCV
  hashes). Rows a source no longer holds at a symbol's *start* are a rolling window and are
  fine; a changed, inserted or removed row inside the processed span is refused unless the
  user accepts the revised history from a date (:func:`accept_revisions`): the ledger keeps
  what was traded (equity, fills, signals with their data hashes), the verification
  reference of the bars from that date is replaced and the change is logged in
  ``revisions``.
* Enough rows: when a rolling window left fewer rows than the next decision needs,
  :func:`needs_message` says how many it needs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from lstmknn.data.errors import DataError
from lstmknn.data.prices import PriceData
from lstmknn.engine.asof import row_hashes
from lstmknn.engine.config import Config
from lstmknn.engine.paper.store import Bar, Ledger
from lstmknn.engine.runio import format_timestamp
from lstmknn.engine.walk_forward import folds_for, prepare


def _fmt(ts: pd.Timestamp) -> str:
    return format_timestamp(ts)


def _names(symbols: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(symbols[:limit])
    return shown + (f", ... ({len(symbols)} in all)" if len(symbols) > limit else "")


def where(data: PriceData, universe: bool) -> str:
    """How messages name a symbol's data: its source, with the symbol in a universe."""
    return f"{data.symbol} ({data.source})" if universe else data.source


def check_symbols(datas: Sequence[PriceData], symbols: Sequence[str],
                  sources: Sequence[str]) -> list[PriceData]:
    """``datas`` in the account's symbol order; DataError (one line, naming the symbols) when
    the sources no longer hold one of ``symbols`` or hold one the account does not trade."""
    held = {d.symbol: d for d in datas}
    lost = [s for s in symbols if s not in held]
    gained = [d.symbol for d in datas if d.symbol not in set(symbols)]
    if lost or gained:
        what = []
        if lost:
            what.append(f"no longer hold{'s' if len(sources) == 1 else ''} {_names(lost)}")
        if gained:
            what.append(f"now hold{'s' if len(sources) == 1 else ''} {_names(gained)}, which "
                        "the account does not trade")
        raise DataError(f"{' '.join(sources)}: {' and '.join(what)} (the account trades "
                        f"{_names(list(symbols))}); refusing to trade one symbol's prices under "
                        "another's name (restore the source, or start a new account for the new "
                        "symbols)")
    return [held[s] for s in symbols]


def _refuse(date: str) -> str:
    return ("refusing to re-price history (restore the data, or accept the source's revised "
            f"history with `lstmknn paper step --accept-revisions-from {date}`)")


def _by_symbol(done: list[Bar]) -> dict[str, list[Bar]]:
    out: dict[str, list[Bar]] = {}
    for b in done:
        out.setdefault(b.symbol, []).append(b)
    return out


def verify_history(ledger: Ledger, datas: Sequence[PriceData]) -> int:
    """Check every symbol's processed bars its source still holds; returns the most bars a
    source no longer holds at a symbol's start (a rolling window). DataError when a processed
    bar changed, or rows were inserted or removed inside a symbol's processed span."""
    done = ledger.bars()
    if not done:
        return 0
    last = done[-1].date
    universe = len(datas) > 1
    end = max(d.frame.index[-1] for d in datas)
    if end < pd.Timestamp(last):
        source = " ".join(dict.fromkeys(d.source for d in datas))
        raise DataError(f"{source}: ends at {_fmt(end)} but bars up to {last} were already "
                        f"processed (rows were removed); {_refuse(_fmt(end))}")
    processed = _by_symbol(done)
    dropped = 0
    for d in datas:
        rows = processed.get(d.symbol, [])
        dropped = max(dropped, _verify_symbol(rows, d, last, where(d, universe)))
    return dropped


def _verify_symbol(done: list[Bar], data: PriceData, last_bar: str, source: str) -> int:
    """:func:`verify_history` for one symbol's processed bars ``done``."""
    frame = data.frame
    present = frame.loc[: pd.Timestamp(last_bar)]
    dates = [_fmt(t) for t in present.index]
    if not done:
        if dates:
            raise DataError(f"{source}: rows up to {dates[-1]} were inserted inside the processed "
                            f"span (the account processed no bar of {data.symbol} before); "
                            f"{_refuse(dates[0])}")
        return 0
    last = done[-1]
    if not dates or pd.Timestamp(dates[-1]) < pd.Timestamp(last.date):
        end = dates[-1] if dates else "-"
        raise DataError(f"{source}: ends at {end} but bars up to {last.date} were already "
                        f"processed (rows were removed); {_refuse(dates[-1] if dates else last.date)}")
    at = {b.date: i for i, b in enumerate(done)}
    first = at.get(dates[0])
    if first is None:
        where_ = "before the first processed bar" if dates[0] < done[0].date else \
            "inside the processed span"
        raise DataError(f"{source}: its first row {dates[0]} is not a processed bar (rows "
                        f"inserted {where_}); {_refuse(dates[0])}")
    hashes = row_hashes(present)
    for i, (date, new) in enumerate(zip(dates, hashes, strict=True)):
        k = first + i
        if k >= len(done) or done[k].date != date:
            seen = done[k].date if k < len(done) else "nothing"
            raise DataError(f"{source}: row {date} is where bar {seen} was processed (rows "
                            f"inserted or removed since it was processed); {_refuse(min(date, seen))}")
        if done[k].row_hash != new:
            raise DataError(f"{source}: the bar of {date} changed since it was processed; "
                            f"{_refuse(date)}")
    if first + len(dates) != len(done):  # pragma: no cover - the last date matched above
        raise DataError(f"{source}: processed bars are missing (rows removed); "
                        f"{_refuse(last.date)}")
    return first


def _digest(rows: list[tuple[str, str, str]]) -> str:
    h = hashlib.sha256()
    for date, symbol, row_hash in rows:
        h.update(f"{date}\t{symbol}\t{row_hash}\n".encode())
    return h.hexdigest()


def accept_revisions(ledger: Ledger, datas: Sequence[PriceData],
                     since: pd.Timestamp) -> dict[str, Any] | None:
    """Accept the sources' rows from ``since`` on (up to the last processed bar) as the account's
    history: replace the verification reference of those bars and log the change in
    ``revisions``. None when nothing differs. Traded rows (equity, fills, signals) stay.
    Call inside a ledger transaction (with the check of the rows before ``since``)."""
    done = ledger.bars()
    since_pos = min((b.pos for b in done if pd.Timestamp(b.date) >= since), default=None)
    if since_pos is None:
        return None
    last = pd.Timestamp(done[-1].date)
    closes = {(r["date"], r["symbol"]): r["close"] for r in ledger.bar_rows(since_pos)}
    processed = _by_symbol(done)
    old: list[tuple[str, str, str]] = []
    new: list[tuple[str, str, str, float]] = []
    kept: list[tuple[str, str, str, float]] = []  # dropped by a rolling source: stay as they are
    for d in datas:
        mine = processed.get(d.symbol, [])
        start = max(since, d.frame.index[0])  # rows a rolling source dropped are not revisions
        kept += [(b.date, b.symbol, b.row_hash, closes[b.date, b.symbol]) for b in mine
                 if since <= pd.Timestamp(b.date) < start]
        old += [(b.date, b.symbol, b.row_hash) for b in mine if pd.Timestamp(b.date) >= start]
        rows = d.frame.loc[start:last]
        new += [(_fmt(t), d.symbol, h, float(c)) for t, h, c in
                zip(rows.index, row_hashes(rows), rows["close"].to_numpy(float), strict=True)]

    def key(r: tuple) -> tuple[pd.Timestamp, str]:
        return pd.Timestamp(r[0]), r[1]

    old.sort(key=key)
    new.sort(key=key)
    if not any(pd.Timestamp(r[0]) == last for r in new):
        raise DataError(f"{' '.join(dict.fromkeys(d.source for d in datas))}: the revised data no "
                        f"longer hold the last processed bar {done[-1].date}, which the account "
                        "traded; cannot accept them")
    before = {(dt, s): h for dt, s, h in old}
    after = {(dt, s): h for dt, s, h, _ in new}
    changed = sum(before.get(k) != after.get(k) for k in set(before) | set(after))
    if not changed:
        return None
    traded = ledger.equity_dates()
    rev = {"accepted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "from_date": _fmt(since), "through_date": done[-1].date, "rows_changed": changed,
           "rows_before": len(old), "rows_after": len(new),
           "old_hash": _digest(old), "new_hash": _digest([r[:3] for r in new]),
           "old_bars": json.dumps(ledger.bar_rows(since_pos))}
    rows = sorted(kept + new, key=key)
    ledger.replace_bars(since_pos, [(dt, s, h, c, dt in traded) for dt, s, h, c in rows])
    ledger.add_revision(rev)
    return {k: v for k, v in rev.items() if k != "old_bars"}


def needs_message(data: PriceData, first_new: int, cfg: Config, source: str) -> str:
    """Why the rows of ``data`` before its next decision bar (position ``first_new``) are too
    few (a rolling source dropped rows the account still needs)."""
    frame = data.frame
    wf = cfg.walk_forward
    when = _fmt(frame.index[first_new])
    # The warm-up counts from the frame's start: pad its end (copies of the last bar, 1 ns
    # apart) so that a window shorter than one fold still tells how many rows it needs.
    n = wf.train_window + cfg.max_lookback + cfg.regime.vol_window + wf.gap + 2 * wf.horizon + 300
    pad = pd.DataFrame([frame.iloc[-1].to_numpy()] * n, columns=frame.columns,
                       index=frame.index[-1] + pd.to_timedelta(range(1, n + 1), unit="ns"))
    try:
        prep = prepare(pd.concat([frame, pad.rename_axis(frame.index.name)]), cfg, data.available)
        warm, first_test = prep.first_sample, folds_for(prep, cfg)[0].test_start
    except DataError as exc:
        return (f"{source}: holds {first_new} rows before the next bar to decide ({when}), too "
                f"few for the account's next decision ({exc}); the source dropped rows the "
                "account still needs (restore them or use a source with a longer window)")
    purge = wf.horizon - 1 + wf.gap
    return (f"{source}: holds {first_new} rows before the next bar to decide ({when}); the "
            f"account needs {first_test} ({warm} warm-up + train_window {wf.train_window}"
            f"{f' + purge {purge}' if purge else ''}): the source dropped rows the account still "
            "needs (restore them or use a source with a longer window)")
