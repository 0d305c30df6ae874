"""Alpaca's paper trading API as a :class:`~engine.paper.remote.Venue`, through ``alpaca-py``.

* Keys come from ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY`` when a step runs and
  live only in the SDK client: never in the store, a repr, a log or an error text.
* The endpoint is ``APCA_API_BASE_URL`` when set, else the paper endpoint; Alpaca's
  live endpoint is refused, plain ``http://`` is accepted on loopback only (tests).
* ``alpaca-py`` is imported when a venue is made, not before: without it the step
  says the install command in one line.
* alpaca-py retries every request (POST included) on 429 and 504 and sets no
  timeout: the venue adds one, and makes the retries configurable. A POST whose
  reply was lost is retried and refused as a duplicate client order id: the
  broker's send phase then looks the order up (it is placed).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from lstmknn.engine.paper.broker_store import BROKER_FILE, BrokerStore
from lstmknn.engine.paper.remote import (
    BrokerError,
    BrokerUnavailable,
    DuplicateOrder,
    OrderIntent,
    OrderRejected,
    RemoteBroker,
    VenueAccount,
    VenueAsset,
    VenueClock,
    VenueFill,
    VenueOrder,
    VenuePosition,
    broker_step,
    open_remote_account,
)
from lstmknn.strategies.costs import ExecutionParams

KEY_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"
URL_ENV = "APCA_API_BASE_URL"
PAPER_ENDPOINT = "https://paper-api.alpaca.markets"
LIVE_HOSTS = frozenset({"api.alpaca.markets"})
INSTALL = 'pip install -e ".[alpaca]"'
EXCHANGE_TZ = ZoneInfo("America/New_York")
DUPLICATE_CODE = 40010001
OPG_CLOSED = (time(9, 28), time(19, 0))  # Alpaca refuses opg orders in this window (ET)
TIMEOUT = 30.0
RETRIES = 3
RETRY_WAIT = 3.0
PAGE_SIZE = 100

alpaca_step = broker_step  # the step driver (the same for every venue)

T = TypeVar("T")


class _NotFound(Exception):
    pass


# ----------------------------------------------------------------------------- settings

def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(url: str) -> str:
    """The endpoint as the SDK wants it (no trailing ``/v2``), or a one-line refusal."""
    parts = urlsplit(url.strip())
    if "@" in parts.netloc:
        raise BrokerError(f"{URL_ENV} holds credentials: refused (give the keys in {KEY_ENV} "
                          f"and {SECRET_ENV})")
    try:
        port = parts.port
    except ValueError:
        port = None
        bad_port = True
    else:
        bad_port = False
    host = (parts.hostname or "").rstrip(".").lower()
    shown = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if parts.scheme not in ("https", "http") or not host or bad_port:
        raise BrokerError(f"{URL_ENV}={shown}: not an http(s) URL of an Alpaca endpoint")
    if host in LIVE_HOSTS:
        raise BrokerError(f"{URL_ENV}={shown} is Alpaca's live endpoint: lstmknn trades paper "
                          f"accounts only (unset it for {PAPER_ENDPOINT})")
    if parts.scheme == "http" and not _loopback(host):
        raise BrokerError(f"{URL_ENV}={shown}: plain http is accepted on loopback only; use "
                          "https")
    if parts.query or parts.fragment:
        raise BrokerError(f"{URL_ENV}={shown}: no query or fragment allowed")
    path = parts.path.rstrip("/")
    if path.endswith("/v2"):
        path = path[:-3]
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{path}"


def endpoint_from_env(env: Mapping[str, str] | None = None) -> str:
    """``APCA_API_BASE_URL`` when set, else the paper endpoint (checked)."""
    env = os.environ if env is None else env
    return check_endpoint(env.get(URL_ENV) or PAPER_ENDPOINT)


class Credentials:
    """An API key pair; its repr and str never show either key."""

    __slots__ = ("key_id", "secret")

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id = key_id
        self.secret = secret

    def __repr__(self) -> str:
        return "Credentials(<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("credentials are not to be pickled")


def credentials_from_env(env: Mapping[str, str] | None = None) -> Credentials:
    """The keys from the environment, or one line naming the two variables."""
    env = os.environ if env is None else env
    key, secret = (env.get(KEY_ENV) or "").strip(), (env.get(SECRET_ENV) or "").strip()
    if not key or not secret:
        raise BrokerError(f"set {KEY_ENV} and {SECRET_ENV} to the keys of your Alpaca paper "
                          "account")
    return Credentials(key, secret)


# ----------------------------------------------------------------------------- the SDK

@functools.lru_cache(maxsize=1)
def _sdk() -> dict[str, Any]:
    """alpaca-py's pieces, imported on first use (one line with the install command if missing)."""
    try:
        with warnings.catch_warnings():  # alpaca's package import loads websockets.legacy
            warnings.simplefilter("ignore", DeprecationWarning)
            import alpaca.trading.client  # noqa: F401
        import requests
        from alpaca.common.exceptions import APIError
        from alpaca.trading.client import TradingClient
        from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
        from alpaca.trading.requests import (
            GetCalendarRequest,
            GetOrdersRequest,
            MarketOrderRequest,
        )
    except ImportError:
        raise BrokerError(f"trading through Alpaca needs alpaca-py: {INSTALL}") from None

    class Client(TradingClient):
        """TradingClient with a timeout on every request and configurable retries."""

        def __init__(self, *, timeout: float, retries: int, retry_wait: float,
                     **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._retry = retries
            self._retry_wait = retry_wait
            self._timeout = timeout

        def _one_request(self, method: str, url: str, opts: dict, retry: int) -> Any:
            return super()._one_request(method, url, {**opts, "timeout": self._timeout}, retry)

        def __repr__(self) -> str:
            return "<alpaca TradingClient>"

    return {"Client": Client, "APIError": APIError, "requests": requests,
            "OrderSide": OrderSide,
            "QueryOrderStatus": QueryOrderStatus, "TimeInForce": TimeInForce,
            "GetCalendarRequest": GetCalendarRequest, "GetOrdersRequest": GetOrdersRequest,
            "MarketOrderRequest": MarketOrderRequest}


def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).isoformat()


def _num(x: Any) -> float | None:
    return None if x is None or x == "" else float(x)


def _value(x: Any) -> str:
    return str(getattr(x, "value", x))


class AlpacaVenue:
    """Alpaca's trading API (``/v2``) through alpaca-py, with a timeout and bounded retries."""

    name = "Alpaca"

    def __init__(self, credentials: Credentials, endpoint: str = PAPER_ENDPOINT, *,
                 timeout: float = TIMEOUT, retries: int = RETRIES,
                 retry_wait: float = RETRY_WAIT) -> None:
        self.endpoint = check_endpoint(endpoint)
        self.timeout = timeout
        self.retries = retries
        sdk = self._sdk = _sdk()
        self._client = sdk["Client"](api_key=credentials.key_id, secret_key=credentials.secret,
                                     paper=True, url_override=self.endpoint, timeout=timeout,
                                     retries=retries, retry_wait=retry_wait)
        self._scrub = _Scrubber(credentials)
        self._clock: VenueClock | None = None

    def __repr__(self) -> str:
        return f"AlpacaVenue(endpoint={self.endpoint!r})"

    # --- one call, its errors as one line

    def _call(self, what: str, fn: Callable[..., T], *args: Any, missing: bool = False) -> T:
        sdk = self._sdk
        requests = sdk["requests"]
        try:
            return fn(*args)
        except sdk["APIError"] as exc:
            status, code, message = self._parse(exc)
            if status == 404 and missing:
                raise _NotFound() from None
            raise self._error(what, status, code, message) from None
        except requests.exceptions.Timeout:
            raise BrokerUnavailable(f"Alpaca did not answer {what} within {self.timeout:g} s: "
                                    "run the step again later (nothing is sent twice)") from None
        except requests.exceptions.JSONDecodeError:
            raise BrokerError(f"Alpaca's answer to {what} is not JSON") from None
        except requests.exceptions.RequestException as exc:
            raise BrokerUnavailable(f"cannot reach Alpaca at {self.endpoint} for {what} "
                                    f"({type(exc).__name__}): run the step again later") from None
        except (ValueError, TypeError, KeyError) as exc:  # pydantic's ValidationError included
            first = self._scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise BrokerError(f"Alpaca's answer to {what} is not what alpaca-py expects: "
                              f"{first[:200]}") from None

    def _parse(self, exc: Exception) -> tuple[int | None, str | None, str]:
        status = getattr(exc, "status_code", None)
        text = str(exc)
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = body.get("code")
            message = str(body.get("message", ""))
        else:
            code, message = None, text
        message = " ".join(self._scrub(message).split())[:200] or "(no message)"
        return status, (None if code is None else str(code)), message

    def _error(self, what: str, status: int | None, code: str | None,
               message: str) -> BrokerError:
        said = f"HTTP {status}" + (f" code {code}" if code else "") + f": {message}"
        if status in (429, 504):
            return BrokerUnavailable(f"Alpaca answered {what} with {said} after {self.retries} "
                                     "retries: run the step again later (nothing is sent twice)")
        if status is None or status >= 500:
            return BrokerUnavailable(f"Alpaca answered {what} with {said}: run the step again "
                                     "later (nothing is sent twice)")
        if status in (401, 403):
            return BrokerError(f"Alpaca refused {what} ({said}): check that {KEY_ENV} and "
                               f"{SECRET_ENV} are the keys of a paper account")
        return BrokerError(f"Alpaca answered {what} with {said}")

    # --- the Venue protocol

    def account(self) -> VenueAccount:
        a = self._call("GET /v2/account", self._client.get_account)
        status = _value(a.status)
        return VenueAccount(number=a.account_number, cash=float(a.cash or 0),
                            equity=float(a.equity or 0), status=status,
                            blocked=bool(a.trading_blocked or a.account_blocked
                                         or status != "ACTIVE"))

    def clock(self) -> VenueClock:
        c = self._call("GET /v2/clock", self._client.get_clock)
        when = c.timestamp if c.is_open else c.next_open
        self._clock = VenueClock(now=_iso(c.timestamp) or "", is_open=bool(c.is_open),
                                 session=when.astimezone(EXCHANGE_TZ).date())
        return self._clock

    def sessions(self, start: date, end: date) -> list[date]:
        req = self._sdk["GetCalendarRequest"](start=start, end=end)
        days = self._call("GET /v2/calendar", self._client.get_calendar, req)
        return [d.date for d in days]

    def asset(self, symbol: str) -> VenueAsset:
        a = self._call(f"GET /v2/assets/{symbol}", self._client.get_asset, symbol)
        return VenueAsset(a.symbol, bool(a.tradable), bool(a.fractionable), bool(a.shortable))

    def position(self, symbol: str) -> VenuePosition | None:
        try:
            p = self._call(f"GET /v2/positions/{symbol}", self._client.get_open_position, symbol,
                           missing=True)
        except _NotFound:
            return None
        qty = abs(float(p.qty)) * (-1.0 if _value(p.side) == "short" else 1.0)
        return VenuePosition(p.symbol, qty, float(p.avg_entry_price), _num(p.current_price))

    def open_orders(self, symbols: Sequence[str]) -> list[VenueOrder]:
        req = self._sdk["GetOrdersRequest"](status=self._sdk["QueryOrderStatus"].OPEN,
                                            symbols=list(symbols), limit=500)
        return [self._order(o) for o in self._call("GET /v2/orders", self._client.get_orders,
                                                   req)]

    def order(self, broker_id: str) -> VenueOrder:
        return self._order(self._call(f"GET /v2/orders/{broker_id}",
                                      self._client.get_order_by_id, broker_id))

    def order_by_client_id(self, client_order_id: str) -> VenueOrder | None:
        try:
            o = self._call("GET /v2/orders:by_client_order_id",
                           self._client.get_order_by_client_id, client_order_id, missing=True)
        except _NotFound:
            return None
        return self._order(o)

    def submit(self, intent: OrderIntent) -> VenueOrder:
        sdk = self._sdk
        req = sdk["MarketOrderRequest"](
            symbol=intent.symbol, qty=intent.qty, side=sdk["OrderSide"](intent.side),
            time_in_force=sdk["TimeInForce"](intent.time_in_force),
            client_order_id=intent.client_order_id)
        api_error = sdk["APIError"]

        def post() -> Any:
            try:
                return self._client.submit_order(req)
            except api_error as exc:
                status, code, message = self._parse(exc)
                if status == 422 and code == str(DUPLICATE_CODE) and "client_order_id" in message:
                    raise DuplicateOrder(intent.client_order_id) from None
                if status in (400, 403, 404, 422):
                    raise OrderRejected(code, message) from None
                raise  # no answer or a server error: the outcome is unknown

        return self._order(self._call("POST /v2/orders", post))

    def cancel(self, broker_id: str) -> None:
        """``DELETE /v2/orders/{id}`` (not used by a step: day orders expire on their own)."""
        self._call(f"DELETE /v2/orders/{broker_id}", self._client.cancel_order_by_id, broker_id)

    def fills_since(self, after: str) -> list[VenueFill]:
        out: list[VenueFill] = []
        token = None
        while True:
            params = {"after": after, "direction": "asc", "page_size": PAGE_SIZE}
            if token:
                params["page_token"] = token
            page = self._call("GET /v2/account/activities/FILL", self._client.get,
                              "/account/activities/FILL", params)
            if not isinstance(page, list):
                raise BrokerError("Alpaca's answer to GET /v2/account/activities/FILL is not a "
                                  "list")
            for a in page:
                out.append(VenueFill(str(a["id"]), str(a["order_id"]), a["symbol"], a["side"],
                                     float(a["qty"]), float(a["price"]),
                                     str(a["transaction_time"])))
            if len(page) < PAGE_SIZE:
                return out
            token = str(page[-1]["id"])

    def session_of(self, when: str) -> str:
        ts = datetime.fromisoformat(when.replace("Z", "+00:00"))
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
        return ts.astimezone(EXCHANGE_TZ).date().isoformat()

    def send_window(self, time_in_force: str) -> str | None:
        if time_in_force != "opg" or self._clock is None:
            return None
        now = datetime.fromisoformat(self._clock.now).astimezone(EXCHANGE_TZ).time()
        if OPG_CLOSED[0] <= now < OPG_CLOSED[1]:
            return "Alpaca refuses opg orders between 9:28am and 7pm ET"
        return None

    def _order(self, o: Any) -> VenueOrder:
        return VenueOrder(broker_id=str(o.id), client_order_id=o.client_order_id,
                          symbol=o.symbol or "", side=_value(o.side), qty=float(o.qty or 0),
                          filled_qty=float(o.filled_qty or 0),
                          avg_price=_num(o.filled_avg_price), status=_value(o.status),
                          updated_at=_iso(o.updated_at) or "", filled_at=_iso(o.filled_at))


class _Scrubber:
    """Replaces the keys in a text (an error body echoing them, say); shows nothing itself."""

    __slots__ = ("_hidden",)

    def __init__(self, credentials: Credentials) -> None:
        self._hidden = tuple(s for s in (credentials.secret, credentials.key_id) if s)

    def __call__(self, text: str) -> str:
        for s in self._hidden:
            text = text.replace(s, "<hidden>")
        return text

    def __repr__(self) -> str:
        return "<scrubber>"


# ----------------------------------------------------------------------------- entry points

def alpaca_venue(env: Mapping[str, str] | None = None, **kwargs: Any) -> AlpacaVenue:
    """A venue from the environment's keys and endpoint (``kwargs``: timeout, retries, ...)."""
    endpoint = endpoint_from_env(env)
    return AlpacaVenue(credentials_from_env(env), endpoint, **kwargs)


def open_alpaca_account(store: BrokerStore, account: str, *, env: Mapping[str, str] | None = None,
                        nonce: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Record the Alpaca account number and a nonce for ``account`` (at init; idempotent)."""
    return open_remote_account(store, alpaca_venue(env, **kwargs), account, nonce=nonce)


def alpaca_broker(store: BrokerStore, account: str, symbols: Sequence[str],
                  params: ExecutionParams | None = None, *, adopt: bool = False,
                  time_in_force: str = "day", fractional: bool = False,
                  env: Mapping[str, str] | None = None, **kwargs: Any) -> RemoteBroker:
    """A :class:`RemoteBroker` on Alpaca paper for one step (keys read now, from ``env``)."""
    return RemoteBroker(store, alpaca_venue(env, **kwargs), account, symbols, params,
                        time_in_force=time_in_force, fractional=fractional, adopt=adopt)


def alpaca_factory(folder: str | Path, account: str, symbols: Sequence[str], *,
                   adopt: bool = False, **kwargs: Any) -> Callable[[Any, ExecutionParams],
                                                                   RemoteBroker]:
    """A :data:`~engine.paper.broker.BrokerFactory`: the step loop's ``(ledger, params)`` call
    opens ``broker.sqlite`` in ``folder`` and the venue."""
    def factory(ledger: Any, params: ExecutionParams) -> RemoteBroker:
        return alpaca_broker(BrokerStore.open(Path(folder) / BROKER_FILE), account, symbols,
                             params, adopt=adopt, **kwargs)
    return factory
