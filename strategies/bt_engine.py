"""Reference engine: a real backtrader ``Cerebro`` run over prepared target lines.

One ``PandasData`` feed per symbol (aligned by :func:`strategies.market.market_data`)
carries an extra ``target`` line; the strategy turns it into fractional
``buy``/``sell`` market orders (sells first) sized by
:func:`strategies.costs.order_size`.  Backtrader fills them at the next open.

Adaptations, all inside this module:

* ``_PctFixedCommInfo``: stock-like, percentage + fixed commission (the fixed
  fee is charged once per order execution, also for reversals that backtrader
  splits into a closing and an opening leg; ``_FeeBroker`` marks each
  execution), leverage from ``params.leverage``, fractional ``getsize``.
* slippage uses ``slip_out=True`` so a fill is always exactly
  ``open*(1±slippage)`` (backtrader would otherwise clip it to the bar's high/low).
* ``_VolumeFiller`` fills at most ``volume_cap * volume`` (fractional); the
  strategy cancels any unfilled remainder at the fill bar.
* Backtrader 1.9.78 runs unmodified with pandas 3 / numpy 2 here.
"""

from __future__ import annotations

import math

import backtrader as bt
import numpy as np

from lstmknn.strategies.account import OrderOutcome
from lstmknn.strategies.costs import FILL_TOL, ExecutionParams, commission_amount, order_size
from lstmknn.strategies.market import Prices, Targets, market_data
from lstmknn.strategies.result import BacktestResult, Row, build_result, outcome_row


class _PctFixedCommInfo(bt.CommInfoBase):
    """Stock-like commission: ``pct * |size| * price`` plus ``fixed`` once per order."""

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
        ("fixed", 0.0),
    )

    def __init__(self) -> None:
        super().__init__()
        self._fixed_due = False

    def new_execution(self) -> None:
        """Called by the broker before each (pseudo-)execution of an order."""
        self._fixed_due = True

    def getcommission(self, size: float, price: float) -> float:
        fee = self.p.fixed if self._fixed_due else 0.0
        self._fixed_due = False
        return commission_amount(size, price, self.p.commission, fee)

    def confirmexec(self, size: float, price: float) -> float:
        return 0.0

    def getsize(self, price: float, cash: float) -> float:
        """Fractional size affordable with ``cash`` (no whole-share rounding)."""
        return self.p.leverage * cash / price


class _FeeBroker(bt.brokers.BackBroker):
    """``BackBroker`` that tells the CommInfo where each order execution starts."""

    def _execute(self, order, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.getcommissioninfo(order.data).new_execution()
        return super()._execute(order, *args, **kwargs)


class _VolumeFiller:
    """Fill at most ``cap * volume`` of the fill bar (fractional)."""

    def __init__(self, cap: float) -> None:
        self.cap = cap

    def __call__(self, order, price, ago) -> float:  # type: ignore[no-untyped-def]
        return min(self.cap * order.data.volume[ago], abs(order.executed.remsize))


class _TargetFeed(bt.feeds.PandasData):
    lines = ("target",)
    params = (("target", -1), ("openinterest", None))


class _TargetStrategy(bt.Strategy):
    params = (("xp", None), ("nbars", 0))

    def __init__(self) -> None:
        k = len(self.datas)
        self.values = np.full(self.p.nbars, np.nan)
        self.positions_ = np.zeros((self.p.nbars, k))
        self.outcomes: list[Row] = []
        self._live: list[bt.Order] = []
        self._orig: dict[int, bt.Order] = {}

    def _add(self, order: bt.Order, size: float, price: float, comm: float, status: str) -> None:
        side = "buy" if order.isbuy() else "sell"
        out = OrderOutcome(
            order.data._name, side, abs(size), price, comm, status, order.info["seq"]
        )
        self.outcomes.append(outcome_row(len(self) - 1, out))

    def notify_order(self, order: bt.Order) -> None:
        st = order.status
        if st in (order.Submitted, order.Accepted, order.Canceled):
            return  # cancellations are recorded when the strategy cancels
        if st == order.Margin:
            self._add(order, order.executed.remsize, math.nan, 0.0, "margin")
        elif st == order.Rejected:
            self._add(order, order.executed.remsize, math.nan, 0.0, "rejected")
        elif st in (order.Completed, order.Partial):
            ex = order.executed
            done = abs(ex.remsize) <= FILL_TOL * abs(order.size)
            self._add(order, ex.size, ex.price, ex.comm, "filled" if done else "partial")
            if not done and self._orig[order.ref].alive():  # volume cap: drop the rest
                self._add(order, ex.remsize, math.nan, 0.0, "cancelled")

    def next(self) -> None:
        i = len(self) - 1
        for o in self._live:  # anything not filled at this open is cancelled
            if o.alive():
                if not o.executed.size:
                    self._add(o, o.executed.remsize, math.nan, 0.0, "cancelled")
                self.cancel(o)
        self._live = []
        value = self.broker.getvalue()
        self.values[i] = value
        plan = []
        for j, d in enumerate(self.datas):
            pos = self.getposition(d).size
            self.positions_[i, j] = pos
            target = d.target[0]
            if target == target:
                size = order_size(target, value, d.close[0], pos, self.p.xp)
                if size:
                    plan.append((size > 0, j, d, size))
        for seq, (is_buy, _, d, size) in enumerate(sorted(plan, key=lambda p: (p[0], p[1]))):
            o = self.buy(data=d, size=size) if is_buy else self.sell(data=d, size=-size)
            o.addinfo(seq=seq)
            self._live.append(o)
            self._orig[o.ref] = o


def run_backtrader(prices: Prices, targets: Targets, params: ExecutionParams) -> BacktestResult:
    """Backtest ``targets`` on ``prices`` with a real backtrader ``Cerebro`` (one cash account)."""
    md = market_data(prices, targets)
    cerebro = bt.Cerebro(stdstats=False, maxcpus=1)
    broker = _FeeBroker()
    broker.set_cash(params.cash)
    broker.set_slippage_perc(
        params.slippage, slip_open=True, slip_limit=True, slip_match=True, slip_out=True
    )
    if params.volume_cap is not None:
        broker.set_filler(_VolumeFiller(params.volume_cap))
    broker.addcommissioninfo(
        _PctFixedCommInfo(
            commission=params.commission, fixed=params.commission_fixed, leverage=params.leverage
        )
    )
    cerebro.broker = broker
    for j, sym in enumerate(md.symbols):
        cerebro.adddata(_TargetFeed(dataname=md.frame(j)), name=sym)
    cerebro.addstrategy(_TargetStrategy, xp=params, nbars=len(md.dates))
    strat = cerebro.run()[0]
    return build_result(md, strat.values, strat.positions_, strat.outcomes, "backtrader")
