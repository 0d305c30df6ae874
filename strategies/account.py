"""Bar-step account model: plan orders at a close, fill them at the next open.

This is the reference semantics of the execution layer (it reproduces
backtrader's ``BackBroker`` with ``checksubmit=True``, ``shortcash=True`` and a
stock-like, leveraged ``CommInfo``).  A paper broker calls it bar by bar (as
:func:`strategies.vectorized.run_stepwise` does); the vectorized twin is an
inlined copy of the same steps, tested equal to it::

    orders = plan_orders(state, targets_row, close_row, params)      # at close t
    outcomes = fill_orders(state, orders, open_row, volume_row, params)  # at open t+1

Cash rules: ``state.cash`` is the true cash balance; short sales credit their
proceeds to it.  An order is checked twice, as backtrader does: first at the
decision close, all of a bar's orders cumulatively in submission order (sells
first), and then at the fill.  A check fails when *margin cash* (cash plus the
borrowed part ``(1 - 1/leverage)`` of the cost basis of long positions) would
go negative; closing legs always execute, an opening leg that does not fit is
refused with status ``margin``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lstmknn.strategies.costs import (
    FILL_TOL,
    ExecutionParams,
    cap_fill_size,
    commission_amount,
    fill_price,
    order_size,
    position_update,
)

STATUSES = ("filled", "partial", "margin", "rejected", "cancelled")


@dataclass
class AccountState:
    """One cash account: cash, shares per symbol and average entry price per symbol."""

    cash: float
    positions: dict[str, float] = field(default_factory=dict)
    avg_price: dict[str, float] = field(default_factory=dict)

    def value(self, close_row: Mapping[str, float]) -> float:
        """Mark-to-market value (cash plus signed position values at ``close_row``)."""
        v = self.cash
        for sym, size in self.positions.items():
            if size:
                v += size * close_row[sym]
        return v

    def margin_cash(self, leverage: float) -> float:
        """Cash available to open positions (backtrader's broker cash)."""
        if leverage == 1.0:
            return self.cash
        basis = [
            q * self.avg_price.get(s, 0.0) if q > 0 else 0.0 for s, q in self.positions.items()
        ]
        return self.cash + (1.0 - 1.0 / leverage) * sum(basis)


@dataclass(frozen=True)
class OrderRequest:
    """A market order decided at a close: signed ``size``, ``ref_price`` = that close."""

    symbol: str
    size: float
    ref_price: float

    @property
    def side(self) -> str:
        return "buy" if self.size > 0 else "sell"


@dataclass(frozen=True)
class OrderOutcome:
    """One order outcome (a row of ``BacktestResult.trades`` without its date)."""

    symbol: str
    side: str
    size: float
    price: float
    commission: float
    status: str
    seq: int = 0  # submission index within the bar


def plan_orders(
    state: AccountState,
    targets_row: Mapping[str, float],
    close_row: Mapping[str, float],
    params: ExecutionParams,
) -> list[OrderRequest]:
    """Orders moving each symbol to its target weight at this close (sells first).

    NaN/None targets send no order.  ``close_row`` must price every held symbol.
    """
    value = state.value(close_row)
    sells: list[OrderRequest] = []
    buys: list[OrderRequest] = []
    for sym, target in targets_row.items():
        if target is None or target != target:
            continue
        close = close_row[sym]
        size = order_size(target, value, close, state.positions.get(sym, 0.0), params)
        if size > 0:
            buys.append(OrderRequest(sym, size, close))
        elif size < 0:
            sells.append(OrderRequest(sym, size, close))
    return sells + buys


def _leg_cash(size: float, price: float, leverage: float) -> float:
    """Margin cash consumed by opening ``size`` (longs are levered, shorts credit cash)."""
    v = size * price
    return v / leverage if v > 0 else v


def submission_check(
    state: AccountState, orders: list[OrderRequest], params: ExecutionParams
) -> list[bool]:
    """Backtrader's ``check_submitted``: pseudo-execute all orders at their ``ref_price``.

    Cash and positions accumulate over the batch, including refused orders.
    """
    lev, pct, fixed = params.leverage, params.commission, params.commission_fixed
    cash = state.margin_cash(lev)
    sizes: dict[str, float] = {}
    ok: list[bool] = []
    for o in orders:
        pos = sizes.get(o.symbol, state.positions.get(o.symbol, 0.0))
        new, _, opened, closed = position_update(pos, 0.0, o.size, o.ref_price)
        sizes[o.symbol] = new
        fee = fixed
        if closed:
            back = -closed * o.ref_price  # cash returned; a closed long returns its margin
            cash += back / lev if back > 0 else back
            cash -= commission_amount(closed, o.ref_price, pct, fee)
            fee = 0.0
        if opened:
            cash -= _leg_cash(opened, o.ref_price, lev)
            cash -= commission_amount(opened, o.ref_price, pct, fee)
        ok.append(cash >= 0.0)
    return ok


def fill_orders(
    state: AccountState,
    orders: list[OrderRequest],
    open_row: Mapping[str, float],
    volume_row: Mapping[str, float] | None,
    params: ExecutionParams,
) -> list[OrderOutcome]:
    """Fill ``orders`` at this bar's open, updating ``state``; one outcome per order part.

    Statuses: ``filled``; ``partial`` (+ ``cancelled`` for the remainder when
    the volume cap bites, or ``margin`` when the opening leg does not fit);
    ``margin`` alone when refused at the submission check or at the fill;
    ``cancelled`` when nothing could be filled (zero volume under a cap).
    ``volume_row`` may be None when ``params.volume_cap`` is None.
    """
    out: list[OrderOutcome] = []
    lev, pct, fixed, slip = (
        params.leverage,
        params.commission,
        params.commission_fixed,
        params.slippage,
    )
    cap = params.volume_cap
    accepted = submission_check(state, orders, params)
    for seq, (o, ok) in enumerate(zip(orders, accepted, strict=True)):
        side = o.side
        if not ok:
            out.append(OrderOutcome(o.symbol, side, abs(o.size), float("nan"), 0.0, "margin", seq))
    for seq, (o, ok) in enumerate(zip(orders, accepted, strict=True)):
        if ok:
            out.extend(_fill_one(state, o, seq, open_row, volume_row, cap, lev, pct, fixed, slip))
    return out


def _fill_one(
    state: AccountState,
    o: OrderRequest,
    seq: int,
    open_row: Mapping[str, float],
    volume_row: Mapping[str, float] | None,
    cap: float | None,
    lev: float,
    pct: float,
    fixed: float,
    slip: float,
) -> list[OrderOutcome]:
    """Execute one accepted order (backtrader ``BackBroker._execute``)."""
    sym, side, total = o.symbol, o.side, o.size
    price = fill_price(open_row[sym], total, slip)
    size = total if cap is None else cap_fill_size(total, volume_row[sym], cap)  # type: ignore[index]
    if not size:
        return [OrderOutcome(sym, side, abs(total), float("nan"), 0.0, "cancelled", seq)]
    pos = state.positions.get(sym, 0.0)
    avg = state.avg_price.get(sym, 0.0)
    _, _, opened, closed = position_update(pos, avg, size, price)
    comm, fee, refused = 0.0, fixed, False
    if closed:
        c = commission_amount(closed, price, pct, fee)
        fee = 0.0
        state.cash -= closed * price + c
        comm += c
        state.positions[sym], state.avg_price[sym], _, _ = position_update(pos, avg, closed, price)
    if opened:
        c = commission_amount(opened, price, pct, fee)
        if state.margin_cash(lev) - _leg_cash(opened, price, lev) - c < 0.0:
            opened, refused = 0.0, True
        else:
            state.cash -= opened * price + c
            comm += c
    executed = closed + opened
    if executed:
        new, new_avg, _, _ = position_update(pos, avg, executed, price)
        state.positions[sym], state.avg_price[sym] = new, new_avg
    out: list[OrderOutcome] = []
    rem = total - executed
    done = abs(rem) <= FILL_TOL * abs(total)
    if executed:
        status = "filled" if done else "partial"
        out.append(OrderOutcome(sym, side, abs(executed), price, comm, status, seq))
    if refused:
        out.append(OrderOutcome(sym, side, abs(rem), float("nan"), 0.0, "margin", seq))
    elif not done:
        out.append(OrderOutcome(sym, side, abs(rem), float("nan"), 0.0, "cancelled", seq))
    return out
