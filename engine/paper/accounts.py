"""Paper accounts: create one (a symbol or a universe), load its data, read its state.

An account trades the symbols its sources held at ``paper init`` (bundled names,
``NAME=path``, CSV files, folders, long files, as ``lstmknn backtest`` reads them), with
one ledger and shared capital. The sources are stored independent of the working
directory, with the reading options; every later load must give the same symbols
(:func:`engine.paper.history.check_symbols`). An account trades locally (simulated fills) or
through a broker (``broker='alpaca'``: :mod:`engine.paper.broker_account`), whose account
number is recorded at init with the keys from the environment (never stored).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from lstmknn.data import dates
from lstmknn.data.errors import DataError
from lstmknn.data.options import LoadOptions
from lstmknn.data.prices import PriceData
from lstmknn.data.sources import absolute_spec
from lstmknn.engine.backtest import load_data
from lstmknn.engine.cache import FoldCache
from lstmknn.engine.config import Config, from_dict, validate_universe
from lstmknn.engine.errors import UserError
from lstmknn.engine.paper.broker import Broker, BrokerFactory
from lstmknn.engine.paper.broker_account import (
    LOCAL,
    VENUES,
    broker_status,
    check_broker,
    check_environment,
    open_broker_account,
    remove_broker_store,
    status_broker,
)
from lstmknn.engine.paper.history import check_symbols
from lstmknn.engine.paper.store import (
    CACHE_DIR,
    LEDGER_FILE,
    Ledger,
    account_dir,
    account_lock,
    create_ledger,
    open_ledger,
    sqlite_errors,
)
from lstmknn.engine.params import execution_params
from lstmknn.engine.runio import format_timestamp


def parse_date(text: str, option: str) -> pd.Timestamp:
    """``text`` as a timestamp, by the one rule of :func:`data.dates.parse_date` (ambiguous
    day/month orders refused); one line naming ``option`` when it is not a date."""
    try:
        return dates.parse_date(text, option)
    except DataError as exc:
        raise UserError(str(exc)) from None


def init_account(root: str | Path | None, name: str, data: str | Sequence[str], cfg: Config,
                 config_text: str = "", *, start: str | None = None, cache: str | None = None,
                 options: LoadOptions | None = None, broker: str = LOCAL) -> dict[str, Any]:
    """Create account ``name``: folder, ledger, the sources and symbols it trades, its config.

    ``data``: one source or several (a universe); ``config_text`` the TOML the config came
    from (kept for the record); ``cache`` a fold cache folder outside the account (``""``:
    no cache; default ``cache/`` in the account folder); ``options`` how to read the files;
    ``broker`` where orders go (``local`` or ``alpaca``: the account's cash is then the
    broker account's, and ``broker.sqlite`` records its number).
    """
    folder = account_dir(root, name)
    broker = check_broker(broker)
    if broker != LOCAL:
        check_environment(broker)
    specs = [str(data)] if isinstance(data, (str, Path)) else [str(s) for s in data]
    datas = load_data(specs, options)
    symbols = [d.symbol for d in datas]
    validate_universe(cfg, symbols)
    sources = [absolute_spec(s) for s in specs]
    start_text = format_timestamp(parse_date(start, "--start")) if start is not None else None
    if cache is None:
        cache_dir = CACHE_DIR
    else:
        cache_dir = str(Path(cache).expanduser().resolve()) if cache else ""
    folder.mkdir(parents=True, exist_ok=True)
    account_dir(root, name)  # checked again now that the folder exists
    with account_lock(folder):
        ledger_path = folder / LEDGER_FILE
        if ledger_path.exists() or ledger_path.is_symlink():
            raise UserError(f"{ledger_path} already exists; refusing to overwrite it")
        cash, meta = cfg.execution.cash, None
        if broker != LOCAL:
            meta = open_broker_account(folder, name, broker)
            cash = float(meta["opening_cash"])
        account = {
            "name": name, "symbol": ",".join(symbols), "data_source": " ".join(sources),
            "sources": json.dumps(sources), "symbols": json.dumps(symbols),
            "data_options": json.dumps(asdict(options or LoadOptions()), sort_keys=True),
            "config_toml": config_text,
            "config_json": json.dumps(cfg.to_dict(), sort_keys=True),
            "config_hash": cfg.hash(), "initial_cash": cash, "cash": cash,
            "start_date": start_text, "cache_dir": cache_dir,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "broker": broker,
        }
        try:
            create_ledger(ledger_path, account).close()
        except BaseException:
            if meta is not None:
                remove_broker_store(folder)
            raise
    if meta is not None:
        account.update(broker_account=meta["account_number"], endpoint=meta["endpoint"])
    return account


def account_config(acct: dict[str, Any]) -> Config:
    return from_dict(json.loads(acct["config_json"]))


def account_symbols(acct: dict[str, Any]) -> list[str]:
    """The symbols the account trades, in the order its sources list them."""
    return list(json.loads(acct["symbols"]))


def fold_cache(folder: Path, acct: dict[str, Any]) -> FoldCache | None:
    """The fold cache of the account (``cache/`` in its folder unless set at init)."""
    if not acct["cache_dir"]:
        return None
    return FoldCache(folder / acct["cache_dir"])


def load_universe(acct: dict[str, Any]) -> list[PriceData]:
    """The account's price data, in its symbol order; DataError when the sources no longer
    hold exactly its symbols."""
    sources = list(json.loads(acct["sources"]))
    datas = load_data(sources, LoadOptions(**json.loads(acct["data_options"])))
    return check_symbols(datas, account_symbols(acct), sources)


def open_account(root: str | Path | None, name: str) -> tuple[Path, Ledger]:
    folder = account_dir(root, name)
    return folder, open_ledger(folder / LEDGER_FILE)


# ----------------------------------------------------------------------------- status, signals

def account_status(root: str | Path | None, name: str, *,
                   broker: BrokerFactory | None = None) -> dict[str, Any]:
    """The book per symbol and in total: positions, cash, equity, exposures, each symbol's
    last signal, open orders, revisions; for a broker account also the broker account, the
    last reconciliation and the implementation shortfall (read from the account's stores)."""
    folder, ledger = open_account(root, name)
    try:
        with sqlite_errors(ledger.path):
            return _status(ledger, folder, broker)
    finally:
        ledger.close()


def _status(ledger: Ledger, folder: Path, factory: BrokerFactory | None) -> dict[str, Any]:
    acct = ledger.account()
    factory = factory or status_broker(folder, acct)
    broker = factory(ledger, execution_params(account_config(acct)))
    try:
        out = _book(ledger, acct, broker)
    finally:
        broker.close()
    out["broker_account"] = (None if acct["broker"] == LOCAL else
                             broker_status(folder, ledger, acct))
    return out


def _book(ledger: Ledger, acct: dict[str, Any], broker: Broker) -> dict[str, Any]:
    last = ledger.last_equity()
    lasts = ledger.last_bars()
    basis = broker.cost_basis()
    cash = broker.cash()
    held = broker.positions()
    value = last["value"] if last else cash
    signals = ledger.last_signals()
    book, positions = [], []
    for sym in account_symbols(acct):
        shares = held.get(sym, 0.0)
        seen, close = lasts.get(sym, (None, None))
        mv = shares * close if close is not None else (0.0 if not shares else None)
        sig = signals.get(sym)
        row = {"symbol": sym, "shares": shares, "avg_price": basis.get(sym) if shares else None,
               "close": close, "market_value": mv,
               "weight": mv / value if mv is not None and value else None,
               "target": sig["target"] if sig else None,
               "last_signal": sig["asof"] if sig else None, "last_bar": seen,
               "stale": seen is not None and seen != acct["last_bar"]}
        book.append(row)
        if shares:
            positions.append({k: row[k] for k in ("symbol", "shares", "avg_price", "close",
                                                  "market_value", "weight")})
    values = [p["market_value"] for p in positions if p["market_value"] is not None]
    orders = [{"decided": o.decided, "symbol": o.symbol, "side": "buy" if o.size > 0 else "sell",
               "size": abs(o.size), "ref_price": o.ref_price, "status": o.status,
               "fills_at": ("next bar open" if acct["broker"] == LOCAL else
                            f"{VENUES[acct['broker']]}'s next session")}
              for o in broker.open_orders()]
    return {
        "account": acct["name"], "symbol": acct["symbol"], "symbols": account_symbols(acct),
        "data_source": acct["data_source"], "sources": json.loads(acct["sources"]),
        "config_hash": acct["config_hash"], "created_at": acct["created_at"],
        "broker": acct["broker"],
        "start_date": acct["start_date"], "last_bar": acct["last_bar"],
        "trading_since": ledger.first_equity_date(), "cash": cash,
        "initial_cash": acct["initial_cash"], "equity": value,
        "total_return": value / acct["initial_cash"] - 1.0,
        "positions_value": sum(values),
        "gross_exposure": sum(abs(v) for v in values) / value if value else None,
        "net_exposure": sum(values) / value if value else None,
        "positions": positions, "book": book, "open_orders": orders,
        "last_signal": ledger.last_signal(),
        "revisions": [{k: v for k, v in r.items() if k != "old_bars"}
                      for r in ledger.revisions()],
        "counts": ledger.counts(),
    }


def export_signals(root: str | Path | None, name: str,
                   since: str | None = None) -> list[dict[str, Any]]:
    """The account's signal records (every field of ``lstmknn signal``), oldest first (by bar,
    then symbol); ``since`` keeps the bars at or after that instant (compared as timestamps)."""
    since_ts = parse_date(since, "--since") if since is not None else None
    _, ledger = open_account(root, name)
    try:
        with sqlite_errors(ledger.path):
            records = ledger.signals()
    finally:
        ledger.close()
    if since_ts is None:
        return records
    return [r for r in records if pd.Timestamp(r["asof"]) >= since_ts]
