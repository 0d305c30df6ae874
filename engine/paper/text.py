"""What ``lstmknn paper`` prints: the init line, a step's summary, an account's status."""

from __future__ import annotations

from typing import Any

from engine.paper.step import StepResult


def _symbols(symbols: list[str], limit: int = 6) -> str:
    if len(symbols) == 1:
        return symbols[0]
    shown = ", ".join(symbols[:limit]) + (", ..." if len(symbols) > limit else "")
    return f"{len(symbols)} symbols ({shown})"


def init_text(acct: dict[str, Any]) -> str:
    """The line ``paper init`` prints."""
    return (f"created paper account {acct['name']}: {_symbols(acct['symbol'].split(','))} from "
            f"{acct['data_source']}, cash {acct['cash']:,.2f}, config {acct['config_hash']}")


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
    for o in r.queued:
        t = r.targets.get(o["symbol"])
        target = f"target weight {t:+.3f}" if t is not None else "no signal"
        lines.append(f"{r.account}: queued {o['side']} {o['quantity']:.6g} {o['symbol']} "
                     f"({target}), decided at the close of {o['decided']}, fills at the "
                     f"{o['fills_at']}")
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
    return "\n".join(lines)
