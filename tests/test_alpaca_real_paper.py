"""Opt-in: the calls a step makes, against Alpaca's real paper API.

Skipped unless ``APCA_API_KEY_ID`` and ``APCA_API_SECRET_KEY`` hold paper keys
(``APCA_API_BASE_URL`` is honoured; the live endpoint is refused). It reads the
account, clock, calendar, an asset, a position, open orders and the fill
history; when the market is closed it also places one 1-share AAPL day order,
checks that resending its client order id is refused as a duplicate (422, code
40010001) and found by that id, and cancels it before any open.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from lstmknn.engine.paper.alpaca import KEY_ENV, SECRET_ENV, alpaca_venue
from lstmknn.engine.paper.orders import client_order_id, new_nonce
from lstmknn.engine.paper.remote import DuplicateOrder, OrderIntent

pytestmark = pytest.mark.skipif(
    not (os.environ.get(KEY_ENV) and os.environ.get(SECRET_ENV)),
    reason=f"set {KEY_ENV} and {SECRET_ENV} (paper keys) to run against Alpaca's paper API")


def test_the_real_paper_api_answers_every_call_a_step_makes():
    venue = alpaca_venue(timeout=20.0, retries=1, retry_wait=1.0)
    account = venue.account()
    assert account.number and account.status
    clock = venue.clock()
    days = venue.sessions(clock.session - timedelta(days=14), clock.session)
    assert days and days[-1] == clock.session
    assert venue.asset("AAPL").tradable
    position = venue.position("AAPL")
    assert position is None or position.symbol == "AAPL"
    assert all(o.symbol == "AAPL" for o in venue.open_orders(["AAPL"]))
    assert venue.order_by_client_id(f"lstmknn-probe-{uuid.uuid4().hex[:20]}") is None
    since = (datetime.now(timezone.utc) - timedelta(days=7)).isoformat()
    assert isinstance(venue.fills_since(since), list)
    if clock.is_open:
        pytest.skip("market open: the order round trip runs only while it is closed")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    intent = OrderIntent(client_order_id("lstmknn-real-test", stamp, "AAPL", 0, new_nonce()),
                         "AAPL", "buy", 1.0, "day")
    placed = venue.submit(intent)
    try:
        assert placed.client_order_id == intent.client_order_id
        with pytest.raises(DuplicateOrder):
            venue.submit(intent)
        found = venue.order_by_client_id(intent.client_order_id)
        assert found is not None and found.broker_id == placed.broker_id
        assert venue.order(placed.broker_id).is_open
    finally:
        venue.cancel(placed.broker_id)
