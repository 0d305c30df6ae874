"""``paper report``: an account's tearsheet so far, drawn by the backtest's own
:func:`engine.backtest.write_report` from the ledger's equity, fills, positions and signals
(per symbol and in total, as a backtest run's); for an account trading through a broker, with
the implementation shortfall of every filled order (:func:`shortfall_table`)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from lstmknn.data.features import next_return
from lstmknn.engine.backtest import write_report
from lstmknn.engine.errors import UserError
from lstmknn.engine.paper.accounts import account_config, load_universe, open_account
from lstmknn.engine.paper.broker_account import LOCAL, VENUES, shortfall
from lstmknn.engine.paper.store import REPORT_DIR, Ledger, sqlite_errors
from lstmknn.engine.runio import write_atomic
from lstmknn.reports.periods import infer_periods_per_year
from lstmknn.strategies.execution import buy_and_hold_returns
from lstmknn.strategies.result import TRADE_COLUMNS

# Marks the HTML reports lstmknn writes (``paper report --out`` replaces only those).
REPORT_MARK = '<meta name="generator" content="lstmknn">'
MODELS = ("lstm", "knn", "fused", "train_mean", "persistence")


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
    folder, ledger = open_account(root, name)
    try:
        with sqlite_errors(ledger.path):
            acct = ledger.account()
            frames = ledger_frames(ledger)
            extra = ({} if acct["broker"] == LOCAL else
                     {f"Implementation shortfall: {VENUES[acct['broker']]}'s fills vs the model's "
                      "next-open fills (positive = paid more)":
                      shortfall_table(ledger.orders(), VENUES[acct["broker"]])})
    finally:
        ledger.close()
    path = Path(out) if out else folder / REPORT_DIR / "tearsheet.html"
    if out:
        check_report_path(path)
    elif path.is_symlink():
        raise UserError(f"{path}: the account's report is a symbolic link; refusing to follow it")
    cfg = account_config(acct)
    datas = load_universe(acct)
    prices = {d.symbol: d.frame for d in datas}
    equity, preds = frames["equity"], frames["signals"].copy()
    y = pd.concat([next_return(f["close"], cfg.walk_forward.horizon).rename("y_true").to_frame()
                   .assign(symbol=s) for s, f in prices.items()])
    y = y.rename_axis("date").reset_index()
    y["date"] = pd.DatetimeIndex(y["date"]).as_unit("ns")
    preds["date"] = pd.DatetimeIndex(preds["date"]).as_unit("ns")
    preds = preds.merge(y, on=["date", "symbol"], how="left")
    traded = [d for d in datas if d.symbol in set(preds["symbol"])] or datas
    summary = {"data": [d.describe() for d in traded] if len(traded) > 1 else traded[0].describe(),
               "periods_per_year": infer_periods_per_year(traded[0].frame.index),
               "config": cfg.to_dict()}
    bench = buy_and_hold_returns({d.symbol: d.frame for d in traded},
                                 pd.DatetimeIndex(equity["date"]))
    models = [m for m in MODELS if m in preds]
    title = f"lstmknn paper account {acct['name']} ({_label(acct)})"
    with tempfile.TemporaryDirectory(prefix="lstmknn-report-") as tmp:
        draft = write_report(Path(tmp), summary, preds, models, equity, frames["trades"],
                             frames["positions"], bench, title=title, fast=fast,
                             extra_tables=extra)
        page = _mark(draft.read_text(encoding="utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    if out:
        check_report_path(path)  # again, just before replacing it
    return write_atomic(path, page)


def shortfall_table(orders: list[dict[str, Any]], venue: str) -> pd.DataFrame:
    """One row per filled order (broker price against the model's next-open fill, per order and
    cumulative) and a total row."""
    sf = shortfall(orders)
    cols = {"decided": "decided", "symbol": "symbol", "side": "side", "shares": "shares",
            "model_date": "model fill at open of", "model_price": "model price",
            "broker_price": f"{venue} price", "shortfall": "shortfall", "bps": "shortfall (bp)",
            "cumulative": "cumulative"}
    table = pd.DataFrame(sf["orders"], columns=list(cols)).rename(columns=cols)
    total = {c: "" for c in cols.values()}
    total.update({"decided": "total", "shares": sum(o["shares"] for o in sf["orders"]),
                  "shortfall": sf["total"], "cumulative": sf["total"],
                  "shortfall (bp)": sf["bps"] if sf["bps"] is not None else ""})
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def _label(acct: dict[str, object]) -> str:
    symbols = str(acct["symbol"]).split(",")
    return symbols[0] if len(symbols) == 1 else f"{len(symbols)} symbols"
