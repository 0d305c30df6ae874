"""Paper account operations: init, step (bar by bar, one transaction per bar), status, report.

A step processes every bar of the data source newer than the last processed
one. For each bar, in one ``BEGIN IMMEDIATE`` transaction: the orders queued at
the previous close fill at this open, the account is marked at the close, the
signal of this bar is recorded and its orders are queued for the next open.
Signals of all new bars come from one walk-forward run on the data cut at the
last new bar (identical to cutting at each bar: there is no look-ahead), with
the fold cache in the account folder, so only fold boundaries retrain.

Bars before the account's first tradable signal (warm-up, or before
``start_date``) are recorded as history in one transaction. Every processed
bar's OHLCV hash is kept; a step refuses to run when any of them changed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from data.errors import DataError
from data.loader import PriceData, load_prices
from engine.config import Config, from_dict, load_config, with_overrides
from engine.errors import UserError
from engine.paper.store import (
    LEDGER_FILE,
    Ledger,
    account_dir,
    account_lock,
    create_ledger,
    open_ledger,
    require_account,
)

if TYPE_CHECKING:
    from engine.paper.broker import PaperBroker

# Test hook: seconds to sleep inside each bar's transaction (crash-safety tests kill there).
PAUSE_ENV = "LSTMKNN_PAPER_BAR_PAUSE"


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


def _source_text(source: str) -> str:
    """Bundled names stay names; CSV paths become absolute."""
    from data.loader import BUNDLED

    return source.lower() if source.lower() in BUNDLED else str(Path(source).expanduser().resolve())


def init_account(root: str | Path | None, name: str, data: str, config: str | None = None,
                 cash: float | None = None, start: str | None = None,
                 cache: str | None = None) -> dict[str, Any]:
    """Create account ``name``: folder, ledger and the config it will trade with."""
    folder = account_dir(root, name)
    cfg = load_config(config)
    if cash is not None:
        cfg = with_overrides(cfg, {"execution.cash": float(cash)})
    prices = load_prices(data)
    if start is not None:
        start = _parse_date(start, "--start")
    folder.mkdir(parents=True, exist_ok=True)
    with account_lock(folder):
        account = {
            "name": name, "symbol": prices.symbol, "data_source": _source_text(data),
            "config_toml": Path(config).read_text() if config else "",
            "config_json": json.dumps(cfg.to_dict(), sort_keys=True),
            "config_hash": cfg.hash(), "initial_cash": cfg.execution.cash,
            "cash": cfg.execution.cash, "start_date": start,
            "cache_dir": str(Path(cache).expanduser().resolve()) if cache else "cache",
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        create_ledger(folder / LEDGER_FILE, account).close()
    return account


def _parse_date(text: str, option: str) -> str:
    try:
        return _fmt(pd.Timestamp(text))
    except (ValueError, TypeError):
        raise UserError(f"{option} {text!r}: not a date") from None


def _fmt(ts: pd.Timestamp) -> str:
    from engine.runio import format_timestamp

    return format_timestamp(ts)


def account_config(acct: dict[str, Any]) -> Config:
    return from_dict(json.loads(acct["config_json"]))


def cache_path(folder: Path, acct: dict[str, Any]) -> Path:
    """The fold cache of the account (``cache/`` in its folder unless set at init)."""
    return folder / acct["cache_dir"]


def load_source(acct: dict[str, Any]) -> PriceData:
    return load_prices(acct["data_source"], symbol=acct["symbol"])


def verify_history(ledger: Ledger, frame: pd.DataFrame, source: str) -> None:
    """Refuse (DataError) when a processed bar is missing or its OHLCV changed in the source."""
    from engine.asof import row_hashes

    done = ledger.bars()
    if not done:
        return
    if len(frame) < len(done):
        raise DataError(f"{source}: has {len(frame)} rows but {len(done)} bars were already "
                        "processed (rows were removed); refusing to re-price history")
    hashes = row_hashes(frame.iloc[: len(done)])
    for (pos, date, old), new, ts in zip(done, hashes, frame.index, strict=False):
        if new != old:
            now = _fmt(ts)
            what = f"the bar of {date} changed" if now == date else \
                f"bar #{pos} is {now} but {date} was processed (rows inserted or removed)"
            raise DataError(f"{source}: {what} since it was processed; refusing to re-price "
                            "history (restore the data or start a new account)")


def step_account(root: str | Path | None, name: str, *, until: str | None = None,
                 wait: float = 0.0, progress: bool = False) -> StepResult:
    """Process every new bar of the account's data source (see the module doc)."""
    folder = account_dir(root, name)
    if until is not None:
        until = _parse_date(until, "--until")
    require_account(folder)
    t0 = time.perf_counter()
    with account_lock(folder, wait):
        ledger = open_ledger(folder / LEDGER_FILE)
        try:
            result = _step(ledger, folder, until, progress)
        finally:
            ledger.close()
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def _step(ledger: Ledger, folder: Path, until: str | None, progress: bool) -> StepResult:
    from engine.asof import compute_signals, data_hashes, row_hashes
    from engine.cache import FoldCache
    from engine.progress import progress_bar

    acct = ledger.account()
    out = StepResult(account=acct["name"])
    cfg = account_config(acct)
    data = load_source(acct)
    frame = data.frame
    verify_history(ledger, frame, data.source)
    if until is not None:
        frame = frame.loc[: pd.Timestamp(until)]
    first_new = acct["last_pos"] + 1
    if first_new >= len(frame):
        return out
    t_wf = time.perf_counter()
    try:
        with progress_bar(progress, desc=f"{acct['name']} folds") as bar_progress:
            sig = compute_signals(frame, cfg, cache=FoldCache(cache_path(folder, acct)),
                                  since=frame.index[first_new], progress=bar_progress)
    except DataError as exc:  # too little data for any forecast yet: process nothing
        out.waiting = str(exc)
        return out
    out.walk_forward_seconds = round(time.perf_counter() - t_wf, 3)
    bars = _NewBars(frame, first_new, sig, row_hashes(frame.iloc[first_new:]),
                    data_hashes(frame, first_new, len(frame)), data.symbol, cfg.hash())
    _process(ledger, acct, cfg, bars, out, progress)
    return out


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

    def history_end(self, start: pd.Timestamp | None) -> int:
        """First new bar with a signal on or after ``start`` (bars before it are history)."""
        pos, idx = self.first, self.frame.index
        while pos < len(idx) and (idx[pos] not in self.by_date
                                  or (start is not None and idx[pos] < start)):
            pos += 1
        return pos


def _process(ledger: Ledger, acct: dict[str, Any], cfg: Config, bars: _NewBars,
             out: StepResult, progress: bool) -> None:
    from engine.paper.broker import PaperBroker
    from strategies.execution import execution_params

    broker = PaperBroker(ledger, execution_params(cfg))
    start = pd.Timestamp(acct["start_date"]) if acct["start_date"] else None
    n = len(bars.frame)
    pos = bars.first
    if not ledger.is_trading():  # history: before the first tradable signal
        pos = bars.history_end(start)
        if pos > bars.first:
            with ledger.transaction() as db:
                _mark_bars(db, bars, range(bars.first, pos), traded=False)
            out.history = pos - bars.first
    tick, done = _bar_progress(progress, n - pos, acct["name"])
    try:
        _trade_bars(ledger, broker, bars, pos, out, tick)
    finally:
        done()
    out.processed = out.history + out.traded
    out.first_bar = bars.date(bars.first)
    out.last_bar = bars.date(n - 1)


def _trade_bars(ledger: Ledger, broker: PaperBroker, bars: _NewBars, pos: int, out: StepResult,
                tick: Callable[[], None]) -> None:
    """One transaction per bar: fill at the open, mark at the close, signal and queue orders."""
    from engine.asof import signal_record

    frame, sym, by_date = bars.frame, bars.symbol, bars.by_date
    pause = float(os.environ.get(PAUSE_ENV) or 0.0)
    prev = ledger.last_equity()
    value = prev["value"] if prev else None
    for p in range(pos, len(frame)):
        ts = frame.index[p]
        bar = _fmt(ts)
        row = frame.iloc[p]
        with ledger.transaction() as db:
            fills = broker.sync(bar, {sym: float(row["open"])}, {sym: float(row["volume"])})
            if pause:
                time.sleep(pause)
            closes = {sym: float(row["close"])}
            value = broker.record_equity(bar, closes, value)
            if ts in by_date:
                s = bars.signals.iloc[by_date[ts]]
                rec = signal_record(s, sym, bars.config_hash, bars.data_hashes[p - bars.first], p + 1)
                _insert_signal(db, rec)
                broker.submit_targets(bar, {sym: float(s["target"])}, closes)
                out.signals += 1
            _mark_bars(db, bars, [p], traded=True)
        out.fills += len(fills)
        out.traded += 1
        out.value = value
        tick()


def _mark_bars(db: Any, bars: _NewBars, positions: Any, traded: bool) -> None:
    rows = [(p, bars.date(p), bars.row_hashes[p - bars.first], float(bars.frame["close"].iloc[p]),
             int(traded)) for p in positions]
    db.executemany("INSERT INTO bars (pos, date, row_hash, close, traded) VALUES (?, ?, ?, ?, ?)",
                   rows)
    last = rows[-1]
    db.execute("UPDATE account SET last_pos = ?, last_bar = ? WHERE id = 1", (last[0], last[1]))


def _insert_signal(db: Any, rec: dict[str, Any]) -> None:
    cols = ["asof", "symbol", "fold", "lstm", "lstm_conf", "knn", "knn_conf", "regime", "alpha",
            "fused", "fusion_used", "target", "train_start", "train_end", "config_hash",
            "data_hash"]
    db.execute(
        "INSERT INTO signals (date, symbol, fold, lstm, lstm_conf, knn, knn_conf, regime, alpha, "
        "fused, fusion_used, target, train_start, train_end, config_hash, data_hash, record) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [rec.get(c) for c in cols] + [json.dumps(rec)])


def _bar_progress(enabled: bool, total: int,
                  name: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """(tick, close) of a bar progress bar on stderr, only when it is a terminal."""
    import sys

    if not enabled or total < 2 or not sys.stderr.isatty():
        return (lambda: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(total=total, desc=f"{name} bars", unit="bar", file=sys.stderr, leave=False)
    return (lambda: bar.update(1)), bar.close


def step_summary(r: StepResult) -> str:
    if r.waiting:
        return f"{r.account}: waiting for more data ({r.waiting})"
    if not r.processed:
        return f"{r.account}: up to date, no new bars"
    value = f"; equity {r.value:,.2f}" if r.value is not None else ""
    return (f"{r.account}: processed {r.processed} bars {r.first_bar}..{r.last_bar} "
            f"({r.history} history, {r.traded} traded, {r.signals} signals, {r.fills} fills)"
            f"{value} in {r.seconds:.1f}s (walk-forward {r.walk_forward_seconds:.1f}s)")


def result_dict(r: StepResult) -> dict[str, Any]:
    return asdict(r)


def open_account(root: str | Path | None, name: str) -> tuple[Path, Ledger]:
    folder = account_dir(root, name)
    return folder, open_ledger(folder / LEDGER_FILE)


def account_status(root: str | Path | None, name: str) -> dict[str, Any]:
    """Positions, cash, equity, last signal, last bar and open orders of an account."""
    _, ledger = open_account(root, name)
    try:
        acct = ledger.account()
        last = ledger.last_equity()
        closes = dict(ledger.conn.execute("SELECT date, close FROM bars ORDER BY pos DESC LIMIT 1")
                      .fetchall())
        close = closes.get(acct["last_bar"])
        positions = []
        for sym, (shares, avg) in ledger.positions().items():
            if not shares:
                continue
            mv = shares * close if close is not None else None
            positions.append({"symbol": sym, "shares": shares, "avg_price": avg, "close": close,
                              "market_value": mv,
                              "weight": mv / last["value"] if mv is not None and last else None})
        value = last["value"] if last else acct["cash"]
        orders = [{"decided": o["decided"], "symbol": o["symbol"],
                   "side": "buy" if o["size"] > 0 else "sell", "size": abs(o["size"]),
                   "ref_price": o["ref_price"], "fills_at": "next bar open"}
                  for o in ledger.pending_orders()]
        return {
            "account": acct["name"], "symbol": acct["symbol"], "data_source": acct["data_source"],
            "config_hash": acct["config_hash"], "created_at": acct["created_at"],
            "start_date": acct["start_date"], "last_bar": acct["last_bar"],
            "trading_since": _first_equity_date(ledger), "cash": acct["cash"],
            "initial_cash": acct["initial_cash"], "equity": value,
            "total_return": value / acct["initial_cash"] - 1.0,
            "positions": positions, "open_orders": orders, "last_signal": ledger.last_signal(),
            "counts": ledger.counts(),
        }
    finally:
        ledger.close()


def _first_equity_date(ledger: Ledger) -> str | None:
    row = ledger.conn.execute("SELECT date FROM equity ORDER BY date LIMIT 1").fetchone()
    return row[0] if row else None


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
    return "\n".join(lines)


def export_signals(root: str | Path | None, name: str,
                   since: str | None = None) -> list[dict[str, Any]]:
    """The account's signal records (every field of ``lstmknn signal``), oldest first."""
    _, ledger = open_account(root, name)
    try:
        return ledger.signals(since)
    finally:
        ledger.close()


def ledger_frames(ledger: Ledger) -> dict[str, pd.DataFrame]:
    """Equity, trades (every fill report), positions and signals as backtest-shaped frames."""
    from strategies.result import TRADE_COLUMNS

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


def write_report(root: str | Path | None, name: str, out: str | Path | None = None,
                 fast: bool = False) -> Path:
    """The account's tearsheet so far (``report/tearsheet.html`` in its folder by default)."""
    from data.features import next_return
    from reports.periods import infer_periods_per_year
    from reports.tearsheet import write_model_report, write_tearsheet

    folder, ledger = open_account(root, name)
    try:
        acct = ledger.account()
        frames = ledger_frames(ledger)
    finally:
        ledger.close()
    cfg = account_config(acct)
    prices = load_source(acct).frame
    equity, preds = frames["equity"], frames["signals"]
    y = next_return(prices["close"], cfg.walk_forward.horizon)
    preds["y_true"] = y.reindex(pd.DatetimeIndex(preds["date"])).to_numpy()
    bench = prices["close"].pct_change().reindex(pd.DatetimeIndex(equity["date"])).fillna(0.0)
    bench.iloc[0] = 0.0
    models = [m for m in ("lstm", "knn", "fused", "train_mean", "persistence") if m in preds]
    path = Path(out) if out else folder / "report" / "tearsheet.html"
    writer = write_model_report if fast else write_tearsheet
    counts = preds["fusion_used"].value_counts().rename_axis("fusion used").rename("rows")
    return writer(path, None, bench.rename("benchmark"), preds.dropna(subset=["y_true"]), models,
                  frames["trades"], frames["positions"], equity,
                  infer_periods_per_year(prices.index),
                  f"lstmknn paper account {acct['name']} ({acct['symbol']})",
                  {"Fusion method used per decision": counts.to_frame()})
