"""``paper step``: every new bar of an account's universe, one transaction per bar.

The account's bars are the union of its symbols' timestamps. A step processes every bar
newer than the last one processed. For each bar, in one ``BEGIN IMMEDIATE`` transaction:
the orders queued at the previous close fill at this open (an order for a symbol without
a bar here expires unfilled: the backtest never sends it), the account is marked at the
close (a symbol without a bar here at its last close), every symbol's signal of this bar
is recorded and the orders moving the book to the targets are queued for the next open.

Decisions of all new bars come from :func:`engine.decisions.decide` over the whole
universe cut at the last new bar (identical to cutting at each bar: there is no
look-ahead), with the account's fold cache, so only fold boundaries retrain. Targets come
from the one :class:`~strategies.strategy.Strategy`: path-dependent rules (cost-aware,
rank) replay from the first decision exactly as the backtest; when that replay no longer
gives the targets the account recorded (accepted revisions, a rolling source), the new
bars continue from the recorded book (``Strategy.targets(..., held=...)``) so a position
never teleports. Bars before the first tradable signal (warm-up, or before
``start_date``) are recorded as history in one transaction. History checks:
:mod:`engine.paper.history`.

An account trading through a broker (:mod:`engine.paper.broker_account`) steps the same
way: its keys are checked before the walk-forward, the first bar's sync reconciles the book
with the broker's positions (a difference refuses the step unless ``adopt``), each bar's
decision is recorded and only the bar before the broker's next session sends orders.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lstmknn.data.errors import DataError
from lstmknn.data.prices import PriceData
from lstmknn.engine.asof import data_hashes, row_hashes, signal_record
from lstmknn.engine.config import Config, validate_universe
from lstmknn.engine.decisions import Decisions, decide
from lstmknn.engine.paper.accounts import account_config, fold_cache, load_universe, parse_date
from lstmknn.engine.paper.broker import Broker, BrokerFactory
from lstmknn.engine.paper.broker_account import step_broker
from lstmknn.engine.paper.history import accept_revisions, needs_message, verify_history, where
from lstmknn.engine.paper.store import (
    LEDGER_FILE,
    Ledger,
    account_dir,
    account_lock,
    open_ledger,
    require_account,
    sqlite_errors,
)
from lstmknn.engine.params import execution_params
from lstmknn.engine.progress import progress_bar
from lstmknn.engine.runio import format_timestamp
from lstmknn.strategies.market import close_out_rows

# Test hook: seconds to sleep inside each bar's transaction (crash-safety tests kill there).
PAUSE_ENV = "LSTMKNN_PAPER_BAR_PAUSE"


@dataclass
class StepResult:
    """What one ``paper step`` did (``target``: the one symbol's last target; ``targets``:
    every symbol's target at the last bar)."""

    account: str
    processed: int = 0
    history: int = 0
    traded: int = 0
    signals: int = 0
    fills: int = 0
    first_bar: str | None = None
    last_bar: str | None = None
    value: float | None = None
    waiting: str | None = None
    seconds: float = 0.0
    walk_forward_seconds: float = 0.0
    revision: dict[str, Any] | None = None
    dropped: int = 0
    queued: list[dict[str, Any]] = field(default_factory=list)
    target: float | None = None
    targets: dict[str, float] = field(default_factory=dict)
    broker: str = "local"
    notes: list[str] = field(default_factory=list)


def result_dict(r: StepResult) -> dict[str, Any]:
    return asdict(r)


def step_account(root: str | Path | None, name: str, *, until: str | None = None,
                 wait: float = 0.0, progress: bool = False,
                 accept_revisions_from: str | None = None,
                 broker: BrokerFactory | None = None, adopt: bool = False) -> StepResult:
    """Process every new bar of the account's sources (see the module doc).

    ``broker``: the broker factory (default: the account's own, local or remote);
    ``adopt``: a broker account books the broker's positions when they differ from its book.
    """
    folder = account_dir(root, name)
    until_ts = parse_date(until, "--until") if until is not None else None
    accept = (parse_date(accept_revisions_from, "--accept-revisions-from")
              if accept_revisions_from is not None else None)
    require_account(folder)
    t0 = time.perf_counter()
    with account_lock(folder, wait):
        ledger = open_ledger(folder / LEDGER_FILE)
        try:
            with sqlite_errors(ledger.path):
                result = _step(ledger, folder, until_ts, accept, progress, broker, adopt)
        finally:
            ledger.close()
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


class _Row(NamedTuple):
    """One symbol's bar: what the broker and the ledger need of it."""

    symbol: str
    date: str
    row_hash: str
    open: float
    close: float
    volume: float


class _Decision(NamedTuple):
    symbol: str
    record: dict[str, Any]
    target: float


@dataclass
class _NewBars:
    """The new bars of a step: each symbol's rows per bar and the decisions per bar."""

    dates: pd.DatetimeIndex
    rows: dict[pd.Timestamp, list[_Row]]
    decisions: dict[pd.Timestamp, list[_Decision]]
    close_outs: dict[pd.Timestamp, set[str]] = field(default_factory=dict)

    def text(self, pos: int) -> str:
        return format_timestamp(self.dates[pos])

    def history_end(self, start: pd.Timestamp | None) -> int:
        """First new bar with a decision on or after ``start`` (bars before it are history)."""
        pos = 0
        while pos < len(self.dates) and (self.dates[pos] not in self.decisions
                                         or (start is not None and self.dates[pos] < start)):
            pos += 1
        return pos

    def bar_rows(self, pos: int, traded: bool) -> list[tuple[str, str, str, float, bool]]:
        return [(r.date, r.symbol, r.row_hash, r.close, traded)
                for r in self.rows[self.dates[pos]]]


def _new_rows(datas: Sequence[PriceData], after: pd.Timestamp | None
              ) -> dict[pd.Timestamp, list[_Row]]:
    """Every symbol's rows after ``after``, per bar (symbols in account order)."""
    out: dict[pd.Timestamp, list[_Row]] = {}
    for d in datas:
        f = d.frame
        start = int(f.index.searchsorted(after, side="right")) if after is not None else 0
        sub = f.iloc[start:]
        for t, h, o, c, v in zip(sub.index, row_hashes(sub), sub["open"].to_numpy(float).tolist(),
                                 sub["close"].to_numpy(float).tolist(),
                                 sub["volume"].to_numpy(float).tolist(), strict=True):
            out.setdefault(t, []).append(_Row(d.symbol, format_timestamp(t), h, o, c, v))
    return dict(sorted(out.items()))


def _close_outs(datas: Sequence[PriceData]) -> dict[pd.Timestamp, set[str]]:
    """The bars at whose close a symbol that the step's data show stopping is sold (the
    exchange's close-out of :func:`strategies.market.close_out_rows`, as in a backtest). A
    stop seen only after that bar was processed leaves the position at its last close."""
    union = pd.DatetimeIndex(sorted(set().union(*(d.frame.index for d in datas))))
    real = np.column_stack([union.isin(d.frame.index) for d in datas])
    out: dict[pd.Timestamp, set[str]] = {}
    for j, i in close_out_rows(real).items():
        out.setdefault(union[i], set()).add(datas[j].symbol)
    return out


def _with_spans(rows: pd.DataFrame, folds: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the training span of each row's fold (per symbol in per-symbol scope)."""
    keys = ["symbol", "fold"] if "symbol" in folds else ["fold"]
    spans = folds[[*keys, "train_start", "train_end", "train_size"]].drop_duplicates(keys)
    return rows.merge(spans, on=keys, how="left")


def _decisions(rows: pd.DataFrame, datas: Sequence[PriceData], cfg: Config,
               after: pd.Timestamp | None) -> dict[pd.Timestamp, list[_Decision]]:
    """Signal records of the new decision rows, per bar (symbols in account order)."""
    config_hash = cfg.hash()
    out: dict[pd.Timestamp, list[_Decision]] = {}
    by_symbol = dict(tuple(rows.groupby("symbol", sort=False)))
    for d in datas:
        mine = by_symbol.get(d.symbol)
        if mine is None:
            continue
        index = d.frame.index
        start = int(index.searchsorted(after, side="right")) if after is not None else 0
        hashes = data_hashes(d.frame, start, len(index))
        for i in range(len(mine)):
            row = mine.iloc[i]
            pos = int(index.get_loc(row["date"]))
            rec = signal_record(row, d.symbol, config_hash, hashes[pos - start], pos + 1)
            out.setdefault(pd.Timestamp(row["date"]), []).append(
                _Decision(d.symbol, rec, float(row["target"])))
    return out


def _replays(done: pd.DataFrame, recorded: pd.DataFrame) -> bool:
    """Whether the replayed decisions before the new bars are the targets the account
    recorded (same rows, same values) over the span both cover."""
    if done.empty:
        return False
    a = done[done["date"] >= recorded["date"].min()]
    b = recorded[recorded["date"] >= done["date"].min()]
    if len(a) != len(b):
        return False
    a = a.set_index(["date", "symbol"])["target"].sort_index()
    b = b.set_index(["date", "symbol"])["target"].sort_index()
    return bool(a.index.equals(b.index) and np.array_equal(a.to_numpy(float), b.to_numpy(float),
                                                           equal_nan=True))


def _new_targets(decided: Decisions, ledger: Ledger, first: pd.Timestamp) -> pd.DataFrame:
    """Decision rows of the new bars with their targets (see the module doc)."""
    pred = decided.predictions
    new = pred[pred["date"] >= first]
    if not decided.strategy.path_dependent:
        return new
    recorded = pd.DataFrame(ledger.signal_targets(), columns=["date", "symbol", "target"])
    if recorded.empty:
        return new
    recorded["date"] = pd.DatetimeIndex(pd.to_datetime(recorded["date"])).as_unit("ns")
    done = pred.loc[pred["date"] < first, ["date", "symbol", "target"]].copy()
    done["date"] = pd.DatetimeIndex(done["date"]).as_unit("ns")
    if _replays(done, recorded):
        return new
    held = recorded.groupby("symbol", sort=False)["target"].last()
    return decided.strategy.targets(new.drop(columns="target"),
                                    held={str(s): float(t) for s, t in held.items()})


def _first_new(data: PriceData, after: pd.Timestamp | None) -> int:
    index = data.frame.index
    return int(index.searchsorted(after, side="right")) if after is not None else 0


def _check_decisions(pred: pd.DataFrame, datas: Sequence[PriceData], traded: set[str],
                     after: pd.Timestamp | None, cfg: Config, universe: bool) -> None:
    """DataError when a symbol the account already traded has a new bar but no decision at
    its first one (a rolling source left too few rows for the next decision)."""
    decided = set(zip(pred["symbol"], pred["date"], strict=True))
    for d in datas:
        p = _first_new(d, after)
        if d.symbol in traded and p < len(d.frame) and (d.symbol, d.frame.index[p]) not in decided:
            raise DataError(needs_message(d, p, cfg, where(d, universe)))


def _step(ledger: Ledger, folder: Path, until: pd.Timestamp | None, accept: pd.Timestamp | None,
          progress: bool, factory: BrokerFactory | None, adopt: bool) -> StepResult:
    acct = ledger.account()
    out = StepResult(account=acct["name"], broker=acct["broker"])
    factory = factory or step_broker(folder, acct, adopt=adopt)
    cfg = account_config(acct)
    datas = load_universe(acct)
    validate_universe(cfg, [d.symbol for d in datas])
    universe = len(datas) > 1
    if accept is not None:  # accepted only if every row before ``accept`` still verifies
        with ledger.transaction():
            out.revision = accept_revisions(ledger, datas, accept)
            out.dropped = verify_history(ledger, datas)
        acct = ledger.account()
    else:
        out.dropped = verify_history(ledger, datas)
    if until is not None:
        datas = [replace(d, frame=d.frame.loc[:until]) for d in datas]
    datas = [d for d in datas if len(d.frame)]
    last_bar = pd.Timestamp(acct["last_bar"]) if acct["last_bar"] else None
    rows = _new_rows(datas, last_bar)
    if not rows:
        return out
    dates = pd.DatetimeIndex(list(rows))
    trading = ledger.is_trading()
    traded = set(ledger.last_signals()) if trading else set()
    t_wf = time.perf_counter()
    try:
        decided = decide(datas, cfg, cache=fold_cache(folder, acct), asof=dates[-1],
                         since=dates[0], quiet=not progress)
    except DataError as exc:
        if trading:  # a rolling source dropped rows the next decision needs
            for d in datas:
                p = _first_new(d, last_bar)
                if d.symbol in traded and p < len(d.frame):
                    raise DataError(needs_message(d, p, cfg, where(d, universe))) from None
            raise
        out.waiting = str(exc)  # too little data for any forecast yet: process nothing
        return out
    if trading:
        _check_decisions(decided.predictions, datas, traded, last_bar, cfg, universe)
    new = _with_spans(_new_targets(decided, ledger, dates[0]), decided.forecasts.folds)
    out.walk_forward_seconds = round(time.perf_counter() - t_wf, 3)
    bars = _NewBars(dates, rows, _decisions(new, datas, cfg, last_bar), _close_outs(datas))
    broker = factory(ledger, execution_params(cfg))
    try:
        _process(ledger, broker, acct, bars, out, progress)
        out.queued = [_order_row(o) for o in broker.open_orders()]
        out.notes = broker.notes()
    finally:
        broker.close()
    last = bars.decisions.get(dates[-1], [])
    out.targets = {d.symbol: d.target for d in last}
    out.target = last[0].target if not universe and last else None
    return out


def _order_row(order: Any) -> dict[str, Any]:
    return {"symbol": order.symbol, "side": "buy" if order.size > 0 else "sell",
            "quantity": abs(order.size), "decided": order.decided, "ref_price": order.ref_price,
            "status": order.status, "fills_at": f"open of the bar after {order.decided}"}


def _process(ledger: Ledger, broker: Broker, acct: dict[str, Any], bars: _NewBars,
             out: StepResult, progress: bool) -> None:
    start = pd.Timestamp(acct["start_date"]) if acct["start_date"] else None
    n = len(bars.dates)
    pos = 0
    if not ledger.is_trading():  # history: before the first tradable signal
        pos = bars.history_end(start)
        if pos > 0:
            with ledger.transaction():
                ledger.add_bars([r for p in range(pos) for r in bars.bar_rows(p, traded=False)])
            out.history = pos
    total = n - pos
    with progress_bar(progress and total >= 2, desc=f"{acct['name']} bars", unit="bar") as bar:
        done = [0]

        def tick() -> None:
            done[0] += 1
            if bar is not None:
                bar(done[0], total)

        _trade_bars(ledger, broker, bars, pos, out, tick)
    out.processed = out.history + out.traded
    out.first_bar = bars.text(0)
    out.last_bar = bars.text(n - 1)


def _trade_bars(ledger: Ledger, broker: Broker, bars: _NewBars, pos: int, out: StepResult,
                tick: Callable[[], None]) -> None:
    """One transaction per bar: fill at the open, mark at the close, signals and orders."""
    pause = float(os.environ.get(PAUSE_ENV) or 0.0)
    prev = ledger.last_equity()
    value = prev["value"] if prev else None
    closes = ledger.last_closes()  # a symbol without a bar is marked at its last close
    for p in range(pos, len(bars.dates)):
        ts = bars.dates[p]
        bar = bars.text(p)
        rows = bars.rows[ts]
        with ledger.transaction():
            fills = broker.sync(bar, {r.symbol: r.open for r in rows},
                                {r.symbol: r.volume for r in rows})
            if pause:
                time.sleep(pause)
            closes.update((r.symbol, r.close) for r in rows)
            now = broker.value(closes)
            ret = now / value - 1.0 if value is not None and value != 0 else 0.0
            ledger.add_equity(bar, broker.cash(), now, ret, broker.positions())
            decisions = bars.decisions.get(ts, [])
            for d in decisions:
                ledger.add_signal(d.record)
            if decisions:
                ended = bars.close_outs.get(ts, set())  # stopped symbols: sold, as in a backtest
                broker.submit_targets(bar, {d.symbol: 0.0 if d.symbol in ended else d.target
                                            for d in decisions if np.isfinite(d.target)}, closes)
                out.signals += len(decisions)
            ledger.add_bars(bars.bar_rows(p, traded=True))
        value = now
        out.fills += len(fills)
        out.traded += 1
        out.value = value
        tick()
