"""What ``lstmknn paper`` prints: the init line, a step's summary, an account's status."""

from __future__ import annotations

from typing import Any

from lstmknn.engine.paper.step import StepResult


def _symbols(symbols: list[str], limit: int = 6) -> str:
    if len(symbols) == 1:
        return symbols[0]
    shown = ", ".join(symbols[:limit]) + (", ..." if len(symbols) > limit else "")
    return f"{len(symbols)} symbols ({shown})"


def init_text(acct: dict[str, Any]) -> str:
    """The line ``paper init`` prints."""
    line = (f"created paper account {acct['name']}: {_symbols(acct['symbol'].split(','))} from "
            f"{acct['data_source']}, cash {acct['cash']:,.2f}, config {acct['config_hash']}")
    if acct.get("broker_account"):
        line += (f"; trades through {_venue(acct['broker'])} paper account "
                 f"{acct['broker_account']} ({acct['endpoint']})")
    return line


def _venue(broker: str) -> str:
    return {"alpaca": "Alpaca"}.get(broker, broker)


def step_summary(r: StepResult) -> str:
    """What a step did, in a few lines: revisions accepted, bars processed, the queued orders."""
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
    lines += [f"{r.account}: {note}" for note in r.notes]
    venue = _venue(r.broker)
    for o in r.queued:
        t = r.targets.get(o["symbol"])
        target = f"target weight {t:+.3f}" if t is not None else "no signal"
        if r.broker == "local":
            lines.append(f"{r.account}: queued {o['side']} {o['quantity']:.6g} {o['symbol']} "
                         f"({target}), decided at the close of {o['decided']}, fills at the "
                         f"{o['fills_at']}")
        else:
            state = ("not sent yet" if o["status"] == "intended" else
                     f"sent, {venue} says {o['status']}")
            lines.append(f"{r.account}: order {o['side']} {o['quantity']:.6g} {o['symbol']} "
                         f"({target}), decided at the close of {o['decided']}: {state}")
    if not r.queued and r.traded:
        if len(r.targets) > 1:
            what = f"{len(r.targets)} targets, already held"
        elif r.targets:
            what = f"target weight {next(iter(r.targets.values())):+.3f}, already held"
        else:
            what = "no signal"
        lines.append(f"{r.account}: no order queued at the close of {r.last_bar} ({what})")
    return "\n".join(lines)


def _money(x: float | None) -> str:
    return f"{x:,.2f}" if x is not None else "-"


def status_text(st: dict[str, Any]) -> str:
    """A short human-readable status: totals, then the book per symbol."""
    what = (f" ({st['symbols'][0]}, {st['data_source']})" if len(st["symbols"]) == 1 else
            f": {_symbols(st['symbols'])} from {st['data_source']}")
    lines = [f"account {st['account']}{what}, config {st['config_hash']}",
             f"last bar {st['last_bar'] or '-'}; trading since {st['trading_since'] or '-'}",
             f"equity {st['equity']:,.2f} ({st['total_return']:+.2%}); cash {st['cash']:,.2f}"]
    if len(st["symbols"]) > 1:
        gross, net = st["gross_exposure"], st["net_exposure"]
        lines.append(f"positions {_money(st['positions_value'])} in {len(st['positions'])} of "
                     f"{len(st['symbols'])} symbols (gross {gross or 0:.3f}, net {net or 0:+.3f} "
                     "of equity)")
        lines.append(f"  {'symbol':<10} {'shares':>12} {'avg price':>11} {'close':>11} "
                     f"{'value':>14} {'weight':>7} {'target':>7}  last signal")
        for b in st["book"]:
            avg = f"{b['avg_price']:.4f}" if b["avg_price"] is not None else "-"
            close = f"{b['close']:.4f}" if b["close"] is not None else "-"
            weight = f"{b['weight']:+.3f}" if b["weight"] is not None else "-"
            target = f"{b['target']:+.3f}" if b["target"] is not None else "-"
            stale = f" (no bar since {b['last_bar']})" if b["stale"] else ""
            lines.append(f"  {b['symbol']:<10} {b['shares']:>12.6g} {avg:>11} {close:>11} "
                         f"{_money(b['market_value']):>14} {weight:>7} {target:>7}  "
                         f"{b['last_signal'] or '-'}{stale}")
    else:
        for p in st["positions"]:
            lines.append(f"  position {p['symbol']}: {p['shares']:.6g} shares @ avg "
                         f"{p['avg_price']:.4f}, value {p['market_value']:,.2f} "
                         f"(weight {p['weight']:+.3f})")
        if not st["positions"]:
            lines.append("  no positions")
    if st.get("broker_account") is None:
        for o in st["open_orders"]:
            lines.append(f"  open order: {o['side']} {o['size']:.6g} {o['symbol']} "
                         f"(decided {o['decided']}, fills at the next open)")
    sig = st["last_signal"]
    if sig and len(st["symbols"]) == 1:
        lines.append(f"last signal {sig['asof']}: target {sig['target']:+.3f}, fused "
                     f"{sig['fused']:+.3e} ({sig['regime']}, alpha {sig['alpha']}), lstm "
                     f"{sig['lstm']:+.3e}, knn {sig['knn']:+.3e}, fold {sig['fold']}")
    elif sig:
        lines.append(f"last signal {sig['asof']}")
    for r in st.get("revisions", []):
        lines.append(f"revised history accepted {r['accepted_at']}: from {r['from_date']}, "
                     f"{r['rows_changed']} rows changed")
    if st.get("broker_account") is not None:
        lines += broker_lines(st["account"], st["broker_account"])
    return "\n".join(lines)


SHORTFALL_SHOWN = 10  # orders listed in status (the report lists every one)


def broker_lines(name: str, b: dict[str, Any]) -> list[str]:
    """A broker account's part of ``status``: the broker account, its open orders, the last
    reconciliation, rejections and the implementation shortfall."""
    venue = b["venue"]
    lines = [f"trades through {venue} paper account {b['account_number']} ({b['endpoint']}); "
             f"book, cash and open orders as the last step found them at {venue}"]
    for o in b["open_orders"]:
        state = "not sent yet" if o["status"] == "intended" else o["status"]
        lines.append(f"  open order: {o['side']} {o['qty']:.9g} {o['symbol']} (decided "
                     f"{o['decided']}, {state}, filled {o['filled']:.9g}, client order id "
                     f"{o['client_order_id']})")
    rec = b["reconciliation"]
    if rec["state"] == "refused":
        lines.append(f"reconciliation at {rec['bar']}: REFUSED, positions at {venue} differ from "
                     "the ledger (nothing is sent until they match or a step runs with "
                     f"--adopt-broker-positions: lstmknn paper step --account {name} "
                     "--adopt-broker-positions)")
    elif rec["checked_at"]:
        lines.append(f"reconciliation: positions matched {venue}'s at the last step "
                     f"({rec['checked_at']})")
    else:
        lines.append("reconciliation: not yet (no step has traded)")
    for r in rec["rows"]:
        what = r["symbol"] or r["kind"]
        lines.append(f"  {r['action']} at {r['bar']}: {what} ledger {r['ledger']:.9g}, "
                     f"{venue} {r['broker']:.9g} ({r['diff']:+.9g})"
                     + (f": {r['cause']}" if r["cause"] else ""))
    for r in b["rejected"][-3:]:
        lines.append(f"  rejected: {r['side']} {r['qty']:.9g} {r['symbol']} (decided "
                     f"{r['decided']}): {r['code'] or '-'} {r['message']}")
    if b["missed_orders"]:
        lines.append(f"  {b['missed_orders']} order(s) never sent: their session passed (missed)")
    sf = b["shortfall"]
    if not sf["orders"]:
        lines.append("implementation shortfall: no filled order priced by the model yet")
        return lines
    bps = f", {sf['bps']:+.1f} bp of {sf['notional']:,.2f} traded" if sf["bps"] is not None else ""
    lines.append(f"implementation shortfall ({venue}'s fills vs the model's next-open fills; "
                 f"positive = paid more): {sf['total']:+,.2f} over {len(sf['orders'])} filled "
                 f"order(s){bps}")
    lines.append(f"  {'decided':<10} {'symbol':<8} {'side':<4} {'shares':>10} {'model':>11} "
                 f"{venue:>11} {'shortfall':>11} {'bp':>7} {'cumulative':>11}")
    for o in sf["orders"][-SHORTFALL_SHOWN:]:
        lines.append(f"  {o['decided']:<10} {o['symbol']:<8} {o['side']:<4} {o['shares']:>10.6g} "
                     f"{o['model_price']:>11.4f} {o['broker_price']:>11.4f} "
                     f"{o['shortfall']:>+11.2f} {o['bps']:>+7.1f} {o['cumulative']:>+11.2f}")
    if len(sf["orders"]) > SHORTFALL_SHOWN:
        lines.append(f"  ({len(sf['orders']) - SHORTFALL_SHOWN} earlier order(s) in the report)")
    if sf["unpriced"]:
        lines.append(f"  {sf['unpriced']} filled order(s) wait for the next bar's open to be "
                     "priced by the model")
    return lines
