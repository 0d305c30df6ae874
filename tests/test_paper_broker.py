"""The broker boundary: the ledger-backed paper broker books what the bar-step account model
does, and a second broker (in memory, same cost model) driven by the runner fills the same."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from lstmknn.engine.config import from_dict
from lstmknn.engine.paper.accounts import init_account, open_account
from lstmknn.engine.paper.broker import Broker, Fill, Order, PaperBroker
from lstmknn.engine.paper.step import step_account
from lstmknn.strategies.account import AccountState, OrderRequest, fill_orders, plan_orders
from lstmknn.strategies.costs import ExecutionParams
from tests.helpers import SMALL, write_csv

COSTLY = {"commission": 0.001, "commission_fixed": 1.0, "slippage": 0.001, "cash": 10_000}


class MemoryBroker(Broker):
    """A broker that keeps its book in memory (as an adapter to a remote broker would keep it
    at the broker), with the backtest's cost model."""

    def __init__(self, params: ExecutionParams) -> None:
        self.params = params
        self.state = AccountState(cash=params.cash)
        self.pending: list[Order] = []
        self.book: list[Fill] = []
        self.next_id = 1

    def sync(self, bar: str, opens: Mapping[str, float],
             volumes: Mapping[str, float]) -> list[Fill]:
        requests = [OrderRequest(o.symbol, o.size, o.ref_price) for o in self.pending]
        outcomes = fill_orders(self.state, requests, opens, volumes, self.params) \
            if requests else []
        fills = [Fill(self.pending[o.seq].id, bar, o.seq, o.symbol, o.side, o.size,
                      o.price if o.price == o.price else None, o.commission, o.status)
                 for o in outcomes]
        self.book += fills
        self.pending = []
        return fills

    def submit_targets(self, bar: str, targets: Mapping[str, float],
                       closes: Mapping[str, float]) -> list[Order]:
        requests = plan_orders(self.state, targets, closes, self.params)
        self.pending = [Order(self.next_id + i, bar, i, r.symbol, r.size, r.ref_price, "pending")
                        for i, r in enumerate(requests)]
        self.next_id += len(requests)
        return list(self.pending)

    def open_orders(self) -> list[Order]:
        return list(self.pending)

    def fills(self, since: str | None = None) -> list[Fill]:
        return [f for f in self.book if since is None or f.date >= since]

    def positions(self) -> dict[str, float]:
        return dict(self.state.positions)

    def cost_basis(self) -> dict[str, float]:
        return dict(self.state.avg_price)

    def cash(self) -> float:
        return self.state.cash


def test_the_runner_driving_an_in_memory_broker_gets_the_fills_of_the_sqlite_broker(
        tmp_path, sp500):
    csv = write_csv(sp500.iloc[:420], tmp_path / "spx.csv")
    cfg = from_dict({**SMALL, "execution": COSTLY,
                     "signal": {"sizing": "proportional", "scale": 0.004, "min_change": 0.05}})
    root, cache = tmp_path / "accounts", str(tmp_path / "cache")
    memory: list[MemoryBroker] = []

    def memory_broker(ledger, params):  # one broker for the account's life, like a remote one
        if not memory:
            memory.append(MemoryBroker(params))
        assert params == memory[0].params
        return memory[0]

    steps = ["2000-05-01", "2000-05-02", "2000-06-15", None]
    for name, factory in (("sqlite", None), ("memory", memory_broker)):
        init_account(root, name, str(csv), cfg, cache=cache)
        for until in steps:
            kwargs = {"broker": factory} if factory else {}
            step_account(root, name, until=until, **kwargs)
    _, ledger = open_account(root, "sqlite")
    try:
        sqlite_fills = PaperBroker(ledger, memory[0].params).fills()
        sqlite_equity = ledger.table("equity", "date")
        sqlite_cash = PaperBroker(ledger, memory[0].params).cash()
    finally:
        ledger.close()
    _, ledger = open_account(root, "memory")
    try:
        memory_equity = ledger.table("equity", "date")
        assert ledger.table("fills", "id") == []  # the memory broker booked nothing in SQLite
    finally:
        ledger.close()
    assert len(sqlite_fills) > 20 and {f.status for f in sqlite_fills} >= {"filled"}
    assert memory[0].fills() == sqlite_fills
    assert memory_equity == sqlite_equity and memory[0].cash() == sqlite_cash


def test_the_paper_broker_books_exactly_what_the_bar_step_account_model_does(tmp_path, sp500):
    csv = write_csv(sp500.iloc[:420], tmp_path / "spx.csv")
    init_account(tmp_path, "b", str(csv), from_dict({**SMALL, "execution": {"cash": 10_000}}))
    params = ExecutionParams(cash=10_000, commission=0.001, commission_fixed=1.0, slippage=0.002)
    _, ledger = open_account(tmp_path, "b")
    broker = PaperBroker(ledger, params)
    assert isinstance(broker, Broker)
    state = AccountState(cash=10_000.0)
    pending = []
    bars = [("2001-01-02", 100.0, None, 1.5), ("2001-01-03", 101.0, 102.0, -0.5),
            ("2001-01-04", 99.0, 98.0, 0.0), ("2001-01-05", 97.0, 96.0, 0.0)]
    try:
        for bar, close, open_, target in bars:
            with ledger.transaction():
                fills = broker.sync(bar, {"x": open_}, {"x": 1e9}) if open_ else []
                orders = broker.submit_targets(bar, {"x": target}, {"x": close})
            want = fill_orders(state, pending, {"x": open_}, None, params) if open_ else []
            pending = plan_orders(state, {"x": target}, {"x": close}, params)
            assert [(f.side, f.size, f.price, f.commission, f.status) for f in fills] == \
                [(w.side, w.size, w.price, w.commission, w.status) for w in want]
            assert [(o.size, o.ref_price) for o in orders] == [(p.size, p.ref_price) for p in pending]
            assert [(o.size, o.ref_price) for o in broker.open_orders()] == \
                [(p.size, p.ref_price) for p in pending]
            assert broker.cash() == state.cash and broker.positions() == state.positions
            assert broker.cost_basis() == state.avg_price
            assert broker.value({"x": close}) == state.value({"x": close})
        assert [f.date for f in broker.fills()] == ["2001-01-03", "2001-01-04", "2001-01-05"]
        assert [f.date for f in broker.fills("2001-01-04")] == ["2001-01-04", "2001-01-05"]
    finally:
        ledger.close()


def test_a_broker_that_misses_part_of_the_interface_cannot_be_built():
    class Partial(Broker):
        def sync(self, bar, opens, volumes):  # noqa: ANN001, ANN202
            return []

    with pytest.raises(TypeError, match="abstract"):
        Partial()
