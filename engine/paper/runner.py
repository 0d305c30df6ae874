"""Paper account operations: init, step (bar by bar, one transaction per bar), status, report.

A step processes every bar of the data source newer than the last processed
one. For each bar, in one ``BEGIN IMMEDIATE`` transaction: the orders queued at
the previous close fill at this open, the account is marked at the close, the
signal of this bar is recorded and its orders are queued for the next open.
Signals of all new bars come from one walk-forward run on the data cut at the
last new bar (identical to cutting at each bar: there is no look-ahead), with
the fold cache in the account folder, so only fold boundaries retrain.

Bars before the account's first tradable signal (warm-up, or before
``start_date``) are recorded as history in one transaction.

History the account has processed is checked on every step against the
source's rows with the same timestamps (OHLCV hashes):

* rows the source no longer holds at its *start* (a rolling window) are fine
  as long as the rows left are enough for the next decision: the walk-forward
  needs ``warm-up + train_window + purge`` bars before the bar it decides. The
  decisions are then those of a walk-forward over the rows the source holds
  now (fold boundaries count from its first row, so they differ from a
  full-history backtest's); a step refuses when fewer rows remain;
* a changed, inserted or removed row inside the processed span is refused,
  unless the user accepts the revised history from a date
  (``accept_revisions_from``): the ledger keeps what was traded then (equity,
  fills, signals with their data hashes), the verification reference of the
  bars from that date is replaced, the change is logged in ``revisions``, and
  later decisions use the revised data.

With the cost-aware rule (a target depends on the previous one), the target of
each new bar continues from the last target the account recorded, so a
revision or a rolled window never teleports the position.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from data.errors import DataError
from data.features import next_return
from data.loader import BUNDLED, PriceData, load_prices
from engine.asof import compute_signals, data_hashes, row_hashes, signal_record
from engine.cache import FoldCache
from engine.config import Config, from_dict
from engine.errors import UserError
from engine.paper.broker import Broker, BrokerFactory, paper_broker
from engine.paper.store import (
    CACHE_DIR,
    LEDGER_FILE,
    REPORT_DIR,
    Bar,
    Ledger,
    account_dir,
    account_lock,
    create_ledger,
    open_ledger,
    require_account,
    sqlite_errors,
)
from engine.params import execution_params, strategy_for
from engine.progress import progress_bar
from engine.runio import format_timestamp, write_atomic
from engine.walk_forward import folds_for, prepare
from reports.forecast_metrics import fusion_counts
from reports.periods import infer_periods_per_year
from strategies.execution import buy_and_hold_returns
from strategies.result import TRADE_COLUMNS

# Test hook: seconds to sleep inside each bar's transaction (crash-safety tests kill there).
PAUSE_ENV = "LSTMKNN_PAPER_BAR_PAUSE"
# Marks the HTML reports lstmknn writes (``paper report --out`` replaces only those).
REPORT_MARK = '<meta name="generator" content="lstmknn">'


@dataclass
class StepResult:
    """What one ``paper step`` did."""

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


def _fmt(ts: pd.Timestamp) -> str:
    return format_timestamp(ts)


def _parse_date(text: str, option: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        ts = pd.NaT
    if ts is pd.NaT:
        raise UserError(f"{option} {text!r}: not a date")
    return ts


def _source_text(source: str) -> str:
    """Bundled names stay names; CSV paths become absolute."""
    return source.lower() if source.lower() in BUNDLED else str(Path(source).expanduser().resolve())


# ----------------------------------------------------------------------------- init

def init_account(root: str | Path | None, name: str, data: str, cfg: Config,
                 config_text: str = "", *, start: str | None = None,
                 cache: str | None = None) -> dict[str, Any]:
    """Create account ``name``: folder, ledger and the config it will trade with.

    ``config_text`` is the TOML the config came from (kept for the record);
    ``cache`` a fold cache folder outside the account (``""``: no cache;
    default ``cache/`` in the account folder).
    """
    folder = account_dir(root, name)
    prices = load_prices(data)
    start_text = _fmt(_parse_date(start, "--start")) if start is not None else None
    if cache is None:
        cache_dir = CACHE_DIR
    else:
        cache_dir = str(Path(cache).expanduser().resolve()) if cache else ""
    folder.mkdir(parents=True, exist_ok=True)
    account_dir(root, name)  # checked again now that the folder exists
    with account_lock(folder):
        account = {
            "name": name, "symbol": prices.symbol, "data_source": _source_text(data),
            "config_toml": config_text,
            "config_json": json.dumps(cfg.to_dict(), sort_keys=True),
            "config_hash": cfg.hash(), "initial_cash": cfg.execution.cash,
            "cash": cfg.execution.cash, "start_date": start_text,
            "cache_dir": cache_dir,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        create_ledger(folder / LEDGER_FILE, account).close()
    return account


def account_config(acct: dict[str, Any]) -> Config:
    return from_dict(json.loads(acct["config_json"]))


def fold_cache(folder: Path, acct: dict[str, Any]) -> FoldCache | None:
    """The fold cache of the account (``cache/`` in its folder unless set at init)."""
    if not acct["cache_dir"]:
        return None
    return FoldCache(folder / acct["cache_dir"])


def load_source(acct: dict[str, Any]) -> PriceData:
    return load_prices(acct["data_source"], symbol=acct["symbol"])


# ----------------------------------------------------------------------------- history checks

def _refuse(date: str) -> str:
    return ("refusing to re-price history (restore the data, or accept the source's revised "
            f"history with `lstmknn paper step --accept-revisions-from {date}`)")


def verify_history(ledger: Ledger, frame: pd.DataFrame, source: str) -> int:
    """Check the processed bars the source still holds; returns how many it no longer holds at
    its start (a rolling window). DataError when a processed bar changed, or rows were inserted
    or removed inside the processed span."""
    done = ledger.bars()
    if not done:
        return 0
    last = done[-1]
    present = frame.loc[: pd.Timestamp(last.date)]
    if frame.index[-1] < pd.Timestamp(last.date):
        raise DataError(f"{source}: ends at {_fmt(frame.index[-1])} but bars up to {last.date} were "
                        f"already processed (rows were removed); {_refuse(_fmt(frame.index[-1]))}")
    dates = [_fmt(t) for t in present.index]
    at = {b.date: i for i, b in enumerate(done)}
    first = at.get(dates[0]) if dates else None
    if first is None:
        where = "before the first processed bar" if dates and dates[0] < done[0].date else \
            "inside the processed span"
        raise DataError(f"{source}: its first row {dates[0] if dates else '-'} is not a processed "
                        f"bar (rows inserted {where}); {_refuse(dates[0] if dates else last.date)}")
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


def _digest(pairs: list[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for date, row_hash in pairs:
        h.update(f"{date}\t{row_hash}\n".encode())
    return h.hexdigest()


def accept_revisions(ledger: Ledger, frame: pd.DataFrame, since: pd.Timestamp,
                     source: str) -> dict[str, Any] | None:
    """Accept the source's rows from ``since`` on (up to the last processed bar) as the account's
    history: replace the verification reference of those bars and log the change in
    ``revisions``. None when nothing differs. Traded rows (equity, fills, signals) stay.
    Call inside a ledger transaction (with the check of the rows before ``since``)."""
    done = ledger.bars()
    if not done:
        return None
    since = max(since, frame.index[0])  # rows a rolling source dropped are not revisions
    old = [b for b in done if pd.Timestamp(b.date) >= since]
    if not old:
        return None
    last = pd.Timestamp(done[-1].date)
    new = frame.loc[since:last]
    if not len(new) or new.index[-1] != last:
        raise DataError(f"{source}: the revised data no longer hold the last processed bar "
                        f"{done[-1].date}, which the account traded; cannot accept them")
    new_pairs = list(zip([_fmt(t) for t in new.index], row_hashes(new), strict=True))
    old_pairs = [(b.date, b.row_hash) for b in old]
    before, after = dict(old_pairs), dict(new_pairs)
    changed = sum(before.get(d) != after.get(d) for d in set(before) | set(after))
    if not changed:
        return None
    traded = ledger.equity_dates()
    closes = new["close"].to_numpy(float)
    rows = [(d, h, float(c), d in traded) for (d, h), c in zip(new_pairs, closes, strict=True)]
    rev = {"accepted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "from_date": _fmt(since), "through_date": done[-1].date, "rows_changed": changed,
           "rows_before": len(old_pairs), "rows_after": len(new_pairs),
           "old_hash": _digest(old_pairs), "new_hash": _digest(new_pairs),
           "old_bars": json.dumps(ledger.bar_rows(old[0].pos))}
    ledger.replace_bars(old[0].pos, rows)
    ledger.add_revision(rev)
    return {k: v for k, v in rev.items() if k != "old_bars"}


def _needs_message(frame: pd.DataFrame, first_new: int, cfg: Config, data: PriceData) -> str:
    """Why the rows before the next decision bar are too few (rolling source)."""
    source = data.source
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


# ----------------------------------------------------------------------------- step

def step_account(root: str | Path | None, name: str, *, until: str | None = None,
                 wait: float = 0.0, progress: bool = False,
                 accept_revisions_from: str | None = None,
                 broker: BrokerFactory = paper_broker) -> StepResult:
    """Process every new bar of the account's data source (see the module doc)."""
    folder = account_dir(root, name)
    until_ts = _parse_date(until, "--until") if until is not None else None
    accept = (_parse_date(accept_revisions_from, "--accept-revisions-from")
              if accept_revisions_from is not None else None)
    require_account(folder)
    t0 = time.perf_counter()
    with account_lock(folder, wait):
        ledger = open_ledger(folder / LEDGER_FILE)
        try:
            with sqlite_errors(ledger.path):
                result = _step(ledger, folder, until_ts, accept, progress, broker)
        finally:
            ledger.close()
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


@dataclass
class _NewBars:
    frame: pd.DataFrame
    first: int
    signals: pd.DataFrame
    row_hashes: list[str]
    data_hashes: list[str]
    symbol: str
    config_hash: str

    def __post_init__(self) -> None:
        self.by_date = {pd.Timestamp(d): i for i, d in enumerate(self.signals["date"])}

    def date(self, pos: int) -> str:
        return _fmt(self.frame.index[pos])

    def rows(self, positions: range, traded: bool) -> list[tuple[str, str, float, bool]]:
        close = self.frame["close"]
        return [(self.date(p), self.row_hashes[p - self.first], float(close.iloc[p]), traded)
                for p in positions]

    def history_end(self, start: pd.Timestamp | None) -> int:
        """First new bar with a signal on or after ``start`` (bars before it are history)."""
        pos, idx = self.first, self.frame.index
        while pos < len(idx) and (idx[pos] not in self.by_date
                                  or (start is not None and idx[pos] < start)):
            pos += 1
        return pos


def _continue_targets(sig: pd.DataFrame, cfg: Config, start: float, after: pd.Timestamp,
                      periods_per_year: float) -> pd.DataFrame:
    """Targets of the rows after ``after`` by the strategy, continuing from ``start`` (the
    account's last recorded target) rather than from the window's first row."""
    new = (sig["date"] > after).to_numpy()
    if not new.any():
        return sig
    strategy = strategy_for(cfg, periods_per_year)
    decided = strategy.targets(sig[new].assign(symbol="_"), held={"_": start})
    sig = sig.copy()
    sig.loc[new, "target"] = decided["target"].to_numpy()
    return sig


def _step(ledger: Ledger, folder: Path, until: pd.Timestamp | None, accept: pd.Timestamp | None,
          progress: bool, factory: BrokerFactory) -> StepResult:
    acct = ledger.account()
    out = StepResult(account=acct["name"])
    cfg = account_config(acct)
    data = load_source(acct)
    frame = data.frame
    if accept is not None:  # accepted only if every row before ``accept`` still verifies
        with ledger.transaction():
            out.revision = accept_revisions(ledger, frame, accept, data.source)
            out.dropped = verify_history(ledger, frame, data.source)
        acct = ledger.account()
    else:
        out.dropped = verify_history(ledger, frame, data.source)
    if until is not None:
        frame = frame.loc[:until]
    last_bar = pd.Timestamp(acct["last_bar"]) if acct["last_bar"] else None
    first_new = int(frame.index.searchsorted(last_bar, side="right")) if last_bar is not None else 0
    if first_new >= len(frame):
        return out
    trading = ledger.is_trading()
    t_wf = time.perf_counter()
    try:
        with progress_bar(progress, desc=f"{acct['name']} folds") as bar_progress:
            sig = compute_signals(frame, cfg, cache=fold_cache(folder, acct),
                                  since=frame.index[first_new], progress=bar_progress,
                                  available=data.available)
    except DataError as exc:
        if trading:  # a rolling source dropped rows the next decision needs
            raise DataError(_needs_message(frame, first_new, cfg, data)) from None
        out.waiting = str(exc)  # too little data for any forecast yet: process nothing
        return out
    if trading and frame.index[first_new] not in set(sig["date"]):
        raise DataError(_needs_message(frame, first_new, cfg, data))
    last_signal = ledger.last_signal()
    if strategy_for(cfg).path_dependent and last_signal is not None and last_bar is not None:
        sig = _continue_targets(sig, cfg, float(last_signal["target"]), last_bar,
                                infer_periods_per_year(frame.index))
    out.walk_forward_seconds = round(time.perf_counter() - t_wf, 3)
    bars = _NewBars(frame, first_new, sig, row_hashes(frame.iloc[first_new:]),
                    data_hashes(frame, first_new, len(frame)), data.symbol, cfg.hash())
    broker = factory(ledger, execution_params(cfg))
    _process(ledger, broker, acct, bars, out, progress)
    out.queued = [_order_row(o, out.last_bar) for o in broker.open_orders()]
    last = ledger.last_signal()
    out.target = float(last["target"]) if last and last["asof"] == out.last_bar else None
    return out


def _order_row(order: Any, last_bar: str | None) -> dict[str, Any]:
    return {"symbol": order.symbol, "side": "buy" if order.size > 0 else "sell",
            "quantity": abs(order.size), "decided": order.decided, "ref_price": order.ref_price,
            "fills_at": f"open of the bar after {order.decided}"}


def _process(ledger: Ledger, broker: Broker, acct: dict[str, Any], bars: _NewBars,
             out: StepResult, progress: bool) -> None:
    start = pd.Timestamp(acct["start_date"]) if acct["start_date"] else None
    n = len(bars.frame)
    pos = bars.first
    if not ledger.is_trading():  # history: before the first tradable signal
        pos = bars.history_end(start)
        if pos > bars.first:
            with ledger.transaction():
                ledger.add_bars(bars.rows(range(bars.first, pos), traded=False))
            out.history = pos - bars.first
    total = n - pos
    with progress_bar(progress and total >= 2, desc=f"{acct['name']} bars", unit="bar") as bar:
        done = [0]

        def tick() -> None:
            done[0] += 1
            if bar is not None:
                bar(done[0], total)

        _trade_bars(ledger, broker, bars, pos, out, tick)
    out.processed = out.history + out.traded
    out.first_bar = bars.date(bars.first)
    out.last_bar = bars.date(n - 1)


def _trade_bars(ledger: Ledger, broker: Broker, bars: _NewBars, pos: int, out: StepResult,
                tick: Callable[[], None]) -> None:
    """One transaction per bar: fill at the open, mark at the close, signal and queue orders."""
    frame, sym, by_date = bars.frame, bars.symbol, bars.by_date
    pause = float(os.environ.get(PAUSE_ENV) or 0.0)
    prev = ledger.last_equity()
    value = prev["value"] if prev else None
    for p in range(pos, len(frame)):
        ts = frame.index[p]
        bar = _fmt(ts)
        row = frame.iloc[p]
        with ledger.transaction():
            fills = broker.sync(bar, {sym: float(row["open"])}, {sym: float(row["volume"])})
            if pause:
                time.sleep(pause)
            closes = {sym: float(row["close"])}
            now = broker.value(closes)
            ret = now / value - 1.0 if value is not None and value != 0 else 0.0
            ledger.add_equity(bar, broker.cash(), now, ret, broker.positions())
            if ts in by_date:
                s = bars.signals.iloc[by_date[ts]]
                ledger.add_signal(signal_record(s, sym, bars.config_hash,
                                                bars.data_hashes[p - bars.first], p + 1))
                broker.submit_targets(bar, {sym: float(s["target"])}, closes)
                out.signals += 1
            ledger.add_bars(bars.rows(range(p, p + 1), traded=True))
        value = now
        out.fills += len(fills)
        out.traded += 1
        out.value = value
        tick()


def step_summary(r: StepResult) -> str:
    """What a step did, in a few lines: revisions accepted, bars processed, the queued order."""
    lines = []
    if r.revision:
        v = r.revision
        lines.append(f"{r.account}: accepted revised history from {v['from_date']} to "
                     f"{v['through_date']}: {v['rows_changed']} rows changed ({v['rows_before']} "
                     f"processed bars, {v['rows_after']} rows now; old {v['old_hash'][:12]}, new "
                     f"{v['new_hash'][:12]})")
    if r.waiting:
        return "\n".join([*lines, f"{r.account}: waiting for more data ({r.waiting})"])
    if not r.processed:
        return "\n".join([*lines, f"{r.account}: up to date, no new bars"])
    if r.dropped:
        lines.append(f"{r.account}: the source no longer holds the first {r.dropped} processed "
                     "bars (a rolling window); decisions use the rows it holds")
    value = f"; equity {r.value:,.2f}" if r.value is not None else ""
    lines.append(f"{r.account}: processed {r.processed} bars {r.first_bar}..{r.last_bar} "
                 f"({r.history} history, {r.traded} traded, {r.signals} signals, {r.fills} fills)"
                 f"{value} in {r.seconds:.1f}s (walk-forward {r.walk_forward_seconds:.1f}s)")
    target = f"target weight {r.target:+.3f}" if r.target is not None else "no signal"
    for o in r.queued:
        lines.append(f"{r.account}: queued {o['side']} {o['quantity']:.6g} {o['symbol']} "
                     f"({target}), decided at the close of {o['decided']}, fills at the "
                     f"{o['fills_at']}")
    if not r.queued and r.traded:
        lines.append(f"{r.account}: no order queued at the close of {r.last_bar} ({target}"
                     f"{', already held' if r.target is not None else ''})")
    return "\n".join(lines)


def result_dict(r: StepResult) -> dict[str, Any]:
    return asdict(r)


# ----------------------------------------------------------------------------- status, export

def open_account(root: str | Path | None, name: str) -> tuple[Path, Ledger]:
    folder = account_dir(root, name)
    return folder, open_ledger(folder / LEDGER_FILE)


def account_status(root: str | Path | None, name: str, *,
                   broker: BrokerFactory = paper_broker) -> dict[str, Any]:
    """Positions, cash, equity, last signal, last bar and open orders of an account."""
    _, ledger = open_account(root, name)
    try:
        with sqlite_errors(ledger.path):
            return _status(ledger, broker)
    finally:
        ledger.close()


def _status(ledger: Ledger, factory: BrokerFactory) -> dict[str, Any]:
    acct = ledger.account()
    broker = factory(ledger, execution_params(account_config(acct)))
    last = ledger.last_equity()
    close = ledger.last_close()
    basis = broker.cost_basis()
    cash = broker.cash()
    positions = []
    for sym, shares in broker.positions().items():
        if not shares:
            continue
        mv = shares * close if close is not None else None
        positions.append({"symbol": sym, "shares": shares, "avg_price": basis.get(sym),
                          "close": close, "market_value": mv,
                          "weight": mv / last["value"] if mv is not None and last else None})
    value = last["value"] if last else cash
    orders = [{"decided": o.decided, "symbol": o.symbol, "side": "buy" if o.size > 0 else "sell",
               "size": abs(o.size), "ref_price": o.ref_price, "fills_at": "next bar open"}
              for o in broker.open_orders()]
    return {
        "account": acct["name"], "symbol": acct["symbol"], "data_source": acct["data_source"],
        "config_hash": acct["config_hash"], "created_at": acct["created_at"],
        "start_date": acct["start_date"], "last_bar": acct["last_bar"],
        "trading_since": ledger.first_equity_date(), "cash": cash,
        "initial_cash": acct["initial_cash"], "equity": value,
        "total_return": value / acct["initial_cash"] - 1.0,
        "positions": positions, "open_orders": orders, "last_signal": ledger.last_signal(),
        "revisions": [{k: v for k, v in r.items() if k != "old_bars"}
                      for r in ledger.revisions()],
        "counts": ledger.counts(),
    }


def status_text(st: dict[str, Any]) -> str:
    """A short human-readable status."""
    lines = [f"account {st['account']} ({st['symbol']}, {st['data_source']}), "
             f"config {st['config_hash']}",
             f"last bar {st['last_bar'] or '-'}; trading since {st['trading_since'] or '-'}",
             f"equity {st['equity']:,.2f} ({st['total_return']:+.2%}); cash {st['cash']:,.2f}"]
    for p in st["positions"]:
        lines.append(f"  position {p['symbol']}: {p['shares']:.6g} shares @ avg "
                     f"{p['avg_price']:.4f}, value {p['market_value']:,.2f} "
                     f"(weight {p['weight']:+.3f})")
    if not st["positions"]:
        lines.append("  no positions")
    for o in st["open_orders"]:
        lines.append(f"  open order: {o['side']} {o['size']:.6g} {o['symbol']} "
                     f"(decided {o['decided']}, fills at the next open)")
    sig = st["last_signal"]
    if sig:
        lines.append(f"last signal {sig['asof']}: target {sig['target']:+.3f}, fused "
                     f"{sig['fused']:+.3e} ({sig['regime']}, alpha {sig['alpha']}), lstm "
                     f"{sig['lstm']:+.3e}, knn {sig['knn']:+.3e}, fold {sig['fold']}")
    for r in st.get("revisions", []):
        lines.append(f"revised history accepted {r['accepted_at']}: from {r['from_date']}, "
                     f"{r['rows_changed']} rows changed")
    return "\n".join(lines)


def export_signals(root: str | Path | None, name: str,
                   since: str | None = None) -> list[dict[str, Any]]:
    """The account's signal records (every field of ``lstmknn signal``), oldest first; ``since``
    keeps the bars at or after that instant (compared as timestamps)."""
    since_ts = _parse_date(since, "--since") if since is not None else None
    _, ledger = open_account(root, name)
    try:
        with sqlite_errors(ledger.path):
            records = ledger.signals()
    finally:
        ledger.close()
    if since_ts is None:
        return records
    return [r for r in records if pd.Timestamp(r["asof"]) >= since_ts]


# ----------------------------------------------------------------------------- report

def ledger_frames(ledger: Ledger) -> dict[str, pd.DataFrame]:
    """Equity, trades (every fill report), positions and signals as backtest-shaped frames."""
    eq = pd.DataFrame(ledger.table("equity", "date"))
    if eq.empty:
        raise UserError(f"{ledger.path.parent.name}: nothing traded yet (run `lstmknn paper step`)")
    eq["date"] = pd.to_datetime(eq["date"])
    equity = eq.rename(columns={"ret": "return"})[["date", "value", "return"]]
    held = pd.DataFrame([json.loads(p) for p in eq["positions"]], index=eq["date"]).fillna(0.0)
    fills = pd.DataFrame(ledger.table("fills", "id"), columns=["date", *TRADE_COLUMNS[1:]])
    fills["date"] = pd.to_datetime(fills["date"])
    fills["price"] = fills["price"].astype(float)
    sig = pd.DataFrame(ledger.signals())
    if not sig.empty:
        sig = sig.rename(columns={"asof": "date"})
        sig["date"] = pd.to_datetime(sig["date"])
    return {"equity": equity, "trades": fills[TRADE_COLUMNS].reset_index(drop=True),
            "positions": held, "signals": sig}


def is_report(path: Path) -> bool:
    """Whether ``path`` is an HTML report lstmknn wrote (carries :data:`REPORT_MARK`)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return REPORT_MARK.encode() in head


def check_report_path(path: Path, option: str = "--out") -> None:
    """Refuse a report path that is a symlink, a folder, or a file lstmknn did not write."""
    if path.is_symlink():
        raise UserError(f"{option} {path}: is a symbolic link; name a real file")
    if path.exists() and (not path.is_file() or not is_report(path)):
        raise UserError(f"{option} {path}: exists and is not an lstmknn report; nothing was "
                        "written (choose another path or remove it)")


def _mark(page: str) -> str:
    if REPORT_MARK in page[: 1 << 16]:
        return page
    low = page[:4096].lower()
    at = low.find("<head>")
    if at >= 0:
        at += len("<head>")
        return page[:at] + "\n" + REPORT_MARK + page[at:]
    return REPORT_MARK + "\n" + page


def write_account_report(root: str | Path | None, name: str, out: str | Path | None = None,
                 fast: bool = False) -> Path:
    """The account's tearsheet so far (``report/tearsheet.html`` in its folder by default),
    marked as an lstmknn report and written atomically; an existing ``out`` is replaced only
    when it is an lstmknn report."""
    from reports.tearsheet import write_model_report, write_tearsheet

    folder, ledger = open_account(root, name)
    try:
        with sqlite_errors(ledger.path):
            acct = ledger.account()
            frames = ledger_frames(ledger)
    finally:
        ledger.close()
    path = Path(out) if out else folder / REPORT_DIR / "tearsheet.html"
    if out:
        check_report_path(path)
    elif path.is_symlink():
        raise UserError(f"{path}: the account's report is a symbolic link; refusing to follow it")
    cfg = account_config(acct)
    prices = load_source(acct).frame
    equity, preds = frames["equity"], frames["signals"]
    y = next_return(prices["close"], cfg.walk_forward.horizon)
    preds["y_true"] = y.reindex(pd.DatetimeIndex(preds["date"])).to_numpy()
    label = f"Buy & hold {acct['symbol']}"
    bench = buy_and_hold_returns({acct["symbol"]: prices},
                                 pd.DatetimeIndex(equity["date"])).rename(label)
    models = [m for m in ("lstm", "knn", "fused", "train_mean", "persistence") if m in preds]
    writer = write_model_report if fast else write_tearsheet
    with tempfile.TemporaryDirectory(prefix="lstmknn-report-") as tmp:
        draft = writer(Path(tmp) / "tearsheet.html", None, bench,
                       preds.dropna(subset=["y_true"]), models, frames["trades"],
                       frames["positions"], equity, infer_periods_per_year(prices.index),
                       f"lstmknn paper account {acct['name']} ({acct['symbol']})",
                       {"Fusion method used per decision": fusion_counts(preds)},
                       n_trials=cfg.report.n_trials, benchmark_label=label)
        page = _mark(draft.read_text(encoding="utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    if out:
        check_report_path(path)  # again, just before replacing it
    return write_atomic(path, page)


__all__ = ["REPORT_MARK", "StepResult", "Bar", "accept_revisions", "account_status",
           "export_signals", "init_account", "step_account", "verify_history", "write_account_report"]
