"""A stateful fake of Alpaca's trading API (``/v2``) on a loopback HTTP server, for tests.

It checks the auth headers, keeps the account, assets, positions, orders, fills
(``FILL`` activities) and cash, enforces unique client order ids (422, code
40010001), Alpaca's time-in-force and fractional rules and a buying-power check,
and fills open orders when a test opens the market at given prices. Faults can
be injected per method and path: ``429``, ``504`` (not processed),
``504_after_accept``, ``hang`` (processed, reply late), ``drop`` (processed, no
reply), ``403``, ``500_text`` (non-JSON body), ``echo_keys`` (403 quoting the keys).

Control endpoints (no auth) under ``/_fake/``: ``reset``, ``open``, ``close``,
``advance`` (open then close), ``fault``, ``clear_faults``, ``trade`` (an order placed outside
lstmknn, filled), ``reset_account`` (a paper reset: new account number),
``clock`` and ``state``. :class:`FakeControl` calls them.

Run in a thread (:func:`running_fake`) or as its own process (:func:`spawned_fake`,
``python -m tests.fake_alpaca``) so processes killed mid-request can talk to it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

ET = ZoneInfo("America/New_York")
KEY = "PKFAKE0TEST0KEY0000001"
SECRET = "fake-secret-3b9c1e7a-do-not-leak"
HOLIDAYS = {date(2024, 1, 1), date(2024, 1, 15), date(2024, 2, 19), date(2024, 3, 29),
            date(2024, 5, 27), date(2024, 6, 19), date(2024, 7, 4), date(2024, 9, 2),
            date(2024, 11, 28), date(2024, 12, 25)}
FINAL = {"filled", "canceled", "expired", "rejected", "replaced"}
ROOT = Path(__file__).resolve().parents[1]


def is_session(d: date) -> bool:
    return d.weekday() < 5 and d not in HOLIDAYS


def next_session(d: date) -> date:
    d += timedelta(days=1)
    while not is_session(d):
        d += timedelta(days=1)
    return d


def sessions(start: date, end: date) -> list[date]:
    out, d = [], start
    while d <= end:
        if is_session(d):
            out.append(d)
        d += timedelta(days=1)
    return out


def _at(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, hh, mm, tzinfo=ET)


def _z(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _s(x: float | None) -> str | None:
    """A decimal string with up to 9 decimals, as Alpaca writes quantities and prices."""
    if x is None:
        return None
    text = f"{x:.9f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


class Reply(Exception):
    def __init__(self, status: int, body: Any, text: bool = False) -> None:
        super().__init__(status)
        self.status, self.body, self.text = status, body, text


def _err(status: int, code: int, message: str) -> Reply:
    return Reply(status, {"code": code, "message": message})


class FakeState:
    """The fake broker's state; every method runs under one lock."""

    def __init__(self, key: str = KEY, secret: str = SECRET) -> None:
        self.key, self.secret = key, secret
        self.lock = threading.RLock()
        self.client_ids: set[str] = set()
        self.reset({})

    # --- control

    def reset(self, cfg: dict[str, Any]) -> dict[str, Any]:
        self.account_id = str(uuid.uuid4())
        self.account_number = cfg.get("account_number") or f"PA{uuid.uuid4().int % 10**10:010d}"
        self.opening_cash = self.cash = float(cfg.get("cash", 100_000.0))
        self.assets: dict[str, dict[str, Any]] = {}
        for sym, a in (cfg.get("assets") or {"AAPL": {}, "MSFT": {}, "SPY": {}}).items():
            self.assets[sym] = {"id": str(uuid.uuid4()), "fractionable": True, "shortable": True,
                                "tradable": True, "price": 100.0, **a}
        self.positions: dict[str, dict[str, float]] = {}
        self.orders: list[dict[str, Any]] = []
        self.activities: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        if cfg.get("forget_ids", True):
            self.client_ids = set()
        self.today = date.fromisoformat(cfg.get("today", "2024-01-02"))
        self.phase = "post"
        self.now = _at(self.today, 17)
        self.seq = 0
        return {"account_number": self.account_number}

    def reset_account(self) -> dict[str, Any]:
        """A paper account reset: new number, no positions, opening cash; ids stay taken."""
        self.account_number = f"PA{uuid.uuid4().int % 10**10:010d}"
        self.account_id = str(uuid.uuid4())
        self.cash = self.opening_cash
        self.positions = {}
        self.orders = []
        self.activities = []
        return {"account_number": self.account_number}

    def open(self, prices: dict[str, float], fill: dict[str, float] | None = None) -> dict:
        """Open the next session at ``prices``; fill open orders (``fill``: fraction per symbol)."""
        if self.phase == "post":
            self.today = next_session(self.today)
        self.phase = "open"
        self.now = _at(self.today, 9, 30)
        for sym, p in prices.items():
            self.assets[sym]["price"] = float(p)
        fill = fill or {}
        for o in self.orders:
            if o["status"] in FINAL or o["symbol"] not in prices:
                continue
            frac = float(fill.get(o["symbol"], 1.0))
            target = o["qty"] * frac
            if o["qty"] == int(o["qty"]):
                target = math.floor(target + 1e-9)
            qty = round(target - o["filled_qty"], 9)
            if qty > 0:
                self._execute(o, qty, float(prices[o["symbol"]]))
        return self.snapshot()

    def close(self) -> dict:
        """Close the session: day orders not filled expire (rests of partial fills too)."""
        self.now = _at(self.today, 16)
        self.phase = "post"
        for o in self.orders:
            if o["status"] not in FINAL and o["time_in_force"] in ("day", "opg"):
                o["status"] = "expired"
                o["expired_at"] = o["updated_at"] = self._stamp()
        return self.snapshot()

    def set_clock(self, when: str, phase: str) -> dict:
        self.now = datetime.fromisoformat(when).replace(tzinfo=ET)
        self.today = self.now.date()
        self.phase = phase
        return self.snapshot()

    def add_fault(self, f: dict[str, Any]) -> dict:
        self.faults.append({"times": 1, "seconds": 5.0, **f})
        return {"faults": len(self.faults)}

    def external_trade(self, symbol: str, qty: float, price: float) -> dict:
        """An order placed outside lstmknn (in Alpaca's web UI, say), filled at once."""
        o = self._new_order(f"manual-{uuid.uuid4().hex[:12]}", symbol,
                            "buy" if qty > 0 else "sell", abs(qty), "day")
        self.orders.append(o)
        self._execute(o, abs(qty), float(price))
        return self._order_json(o)

    def snapshot(self) -> dict[str, Any]:
        return {"account_number": self.account_number, "cash": self.cash,
                "positions": {s: dict(p) for s, p in self.positions.items() if p["qty"]},
                "orders": [self._order_json(o) for o in self.orders],
                "requests": list(self.requests), "today": self.today.isoformat(),
                "phase": self.phase, "faults": list(self.faults)}

    # --- helpers

    def _stamp(self) -> str:
        self.seq += 1
        return _z(self.now + timedelta(microseconds=self.seq))

    def _price(self, sym: str) -> float:
        return float(self.assets[sym]["price"])

    def _equity(self) -> float:
        return self.cash + sum(p["qty"] * self._price(s) for s, p in self.positions.items())

    def _new_order(self, cid: str, sym: str, side: str, qty: float, tif: str) -> dict[str, Any]:
        ts = self._stamp()
        self.client_ids.add(cid)
        return {"id": str(uuid.uuid4()), "client_order_id": cid, "symbol": sym, "side": side,
                "qty": qty, "filled_qty": 0.0, "filled_avg_price": None,
                "status": "new" if self.phase == "open" else "accepted",
                "time_in_force": tif, "created_at": ts, "updated_at": ts, "submitted_at": ts,
                "filled_at": None, "expired_at": None, "canceled_at": None}

    def _execute(self, o: dict[str, Any], qty: float, price: float) -> None:
        sym = o["symbol"]
        signed = qty if o["side"] == "buy" else -qty
        cum = o["filled_qty"] + qty
        prev = o["filled_avg_price"] or 0.0
        o["filled_avg_price"] = round((prev * o["filled_qty"] + price * qty) / cum, 6)
        o["filled_qty"] = round(cum, 9)
        o["updated_at"] = self._stamp()
        if o["filled_qty"] >= o["qty"] - 1e-9:
            o["status"], o["filled_at"] = "filled", o["updated_at"]
        else:
            o["status"] = "partially_filled"
        pos = self.positions.setdefault(sym, {"qty": 0.0, "avg": 0.0})
        old = pos["qty"]
        new = round(old + signed, 9)
        if old == 0 or (old > 0) == (signed > 0):
            pos["avg"] = (abs(old) * pos["avg"] + qty * price) / abs(new) if new else 0.0
        elif (old > 0) != (new > 0) and new:
            pos["avg"] = price
        pos["qty"] = new
        if not new:
            pos["avg"] = 0.0
        self.cash -= signed * price
        self.activities.append({
            "id": f"{self.now.astimezone(timezone.utc):%Y%m%d%H%M%S}{self.seq:09d}::{uuid.uuid4()}",
            "account_id": self.account_id, "activity_type": "FILL",
            "transaction_time": o["updated_at"],
            "type": "fill" if o["status"] == "filled" else "partial_fill",
            "price": _s(price), "qty": _s(qty), "side": o["side"], "symbol": sym,
            "leaves_qty": _s(o["qty"] - o["filled_qty"]), "order_id": o["id"],
            "cum_qty": _s(o["filled_qty"]), "order_status": o["status"]})

    def _order_json(self, o: dict[str, Any]) -> dict[str, Any]:
        return {"id": o["id"], "client_order_id": o["client_order_id"],
                "created_at": o["created_at"], "updated_at": o["updated_at"],
                "submitted_at": o["submitted_at"], "filled_at": o["filled_at"],
                "expired_at": o["expired_at"], "canceled_at": o["canceled_at"],
                "failed_at": None, "replaced_at": None, "replaced_by": None, "replaces": None,
                "asset_id": self.assets[o["symbol"]]["id"], "symbol": o["symbol"],
                "asset_class": "us_equity", "notional": None, "qty": _s(o["qty"]),
                "filled_qty": _s(o["filled_qty"]), "filled_avg_price": _s(o["filled_avg_price"]),
                "order_class": "simple", "order_type": "market", "type": "market", "side": o["side"],
                "time_in_force": o["time_in_force"], "limit_price": None, "stop_price": None,
                "status": o["status"], "extended_hours": False, "legs": None,
                "trail_percent": None, "trail_price": None, "hwm": None,
                "position_intent": None}

    # --- the API

    def handle(self, method: str, path: str, query: dict[str, str], headers: Any,
               body: Any) -> tuple[int, Any, bool]:
        """Returns (status, body, whether body is plain text)."""
        try:
            return 200, self._route(method, path, query, body), False
        except Reply as r:
            return r.status, r.body, r.text

    def _route(self, method: str, path: str, q: dict[str, str], body: Any) -> Any:
        parts = path.split("/")[2:]  # after /v2
        head = parts[0] if parts else ""
        if method == "GET" and path == "/v2/account":
            eq = self._equity()
            return {"id": self.account_id, "account_number": self.account_number,
                    "status": "ACTIVE", "crypto_status": "ACTIVE", "currency": "USD",
                    "buying_power": _s(2 * eq), "cash": _s(self.cash), "equity": _s(eq),
                    "portfolio_value": _s(eq), "last_equity": _s(eq), "multiplier": "2",
                    "pattern_day_trader": False, "trading_blocked": False,
                    "transfers_blocked": False, "account_blocked": False,
                    "trade_suspended_by_user": False, "shorting_enabled": True,
                    "created_at": "2023-01-01T00:00:00Z"}
        if method == "GET" and path == "/v2/clock":
            nxt = self.today if self.phase == "pre" else next_session(self.today)
            close_day = self.today if self.phase in ("pre", "open") else nxt
            return {"timestamp": self.now.isoformat(), "is_open": self.phase == "open",
                    "next_open": _at(nxt, 9, 30).isoformat(),
                    "next_close": _at(close_day, 16).isoformat()}
        if method == "GET" and path == "/v2/calendar":
            start = date.fromisoformat(q.get("start", "2023-01-01"))
            end = date.fromisoformat(q.get("end", "2025-12-31"))
            return [{"date": d.isoformat(), "open": "09:30", "close": "16:00",
                     "session_open": "0400", "session_close": "2000",
                     "settlement_date": next_session(d).isoformat()}
                    for d in sessions(start, end)]
        if method == "GET" and head == "assets" and len(parts) == 2:
            a = self.assets.get(parts[1])
            if a is None:
                raise _err(404, 40410000, "asset not found")
            return {"id": a["id"], "class": "us_equity", "exchange": "NASDAQ",
                    "symbol": parts[1], "name": parts[1], "status": "active",
                    "tradable": a["tradable"], "marginable": True, "shortable": a["shortable"],
                    "easy_to_borrow": a["shortable"], "fractionable": a["fractionable"]}
        if method == "GET" and head == "positions":
            if len(parts) == 1:
                return [self._position(s) for s, p in self.positions.items() if p["qty"]]
            p = self.positions.get(parts[1])
            if not p or not p["qty"]:
                raise _err(404, 40410000, "position does not exist")
            return self._position(parts[1])
        if head == "orders" and method == "POST" and len(parts) == 1:
            return self._submit(body if isinstance(body, dict) else {})
        if method == "GET" and path == "/v2/orders":
            status = q.get("status", "open")
            syms = set(filter(None, q.get("symbols", "").split(",")))
            out = [o for o in self.orders
                   if (status == "all" or (status == "open") == (o["status"] not in FINAL))
                   and (not syms or o["symbol"] in syms)]
            out = out[::-1] if q.get("direction", "desc") == "desc" else out
            return [self._order_json(o) for o in out[:int(q.get("limit", 50))]]
        if method == "GET" and path == "/v2/orders:by_client_order_id":
            for o in self.orders:
                if o["client_order_id"] == q.get("client_order_id"):
                    return self._order_json(o)
            raise _err(404, 40410000, "order not found")
        if head == "orders" and len(parts) == 2:
            o = next((o for o in self.orders if o["id"] == parts[1]), None)
            if o is None:
                raise _err(404, 40410000, "order not found")
            if method == "GET":
                return self._order_json(o)
            if method == "DELETE":
                if o["status"] in FINAL:
                    raise _err(422, 42210000, "order is not cancelable")
                o["status"] = "canceled"
                o["canceled_at"] = o["updated_at"] = self._stamp()
                raise Reply(204, None)
        if method == "GET" and path == "/v2/account/activities/FILL":
            after = q.get("after")
            acts = self.activities
            if after:
                t = datetime.fromisoformat(after.replace("Z", "+00:00"))
                acts = [a for a in acts if datetime.fromisoformat(
                    a["transaction_time"].replace("Z", "+00:00")) > t]
            acts = sorted(acts, key=lambda a: a["id"],
                          reverse=q.get("direction", "desc") == "desc")
            token = q.get("page_token")
            if token:
                ids = [a["id"] for a in acts]
                acts = acts[ids.index(token) + 1:] if token in ids else []
            return acts[:int(q.get("page_size", 100))]
        raise _err(404, 40410000, f"endpoint not found: {method} {path}")

    def _position(self, sym: str) -> dict[str, Any]:
        p, price = self.positions[sym], self._price(sym)
        return {"asset_id": self.assets[sym]["id"], "symbol": sym, "exchange": "NASDAQ",
                "asset_class": "us_equity", "asset_marginable": True,
                "avg_entry_price": _s(p["avg"]), "qty": _s(p["qty"]),
                "side": "long" if p["qty"] > 0 else "short",
                "market_value": _s(p["qty"] * price), "cost_basis": _s(p["qty"] * p["avg"]),
                "unrealized_pl": _s(p["qty"] * (price - p["avg"])), "current_price": _s(price),
                "lastday_price": _s(price), "change_today": "0", "qty_available": _s(p["qty"])}

    def _submit(self, b: dict[str, Any]) -> dict[str, Any]:
        cid = b.get("client_order_id") or str(uuid.uuid4())
        sym, side, tif = b.get("symbol"), b.get("side"), b.get("time_in_force")
        if b.get("type") != "market":
            raise _err(422, 40010001, "only market orders in this fake")
        if (b.get("qty") is None) == (b.get("notional") is None):
            raise _err(422, 40010001, "qty or notional is required")
        if b.get("notional") is not None:
            raise _err(422, 40010001, "notional orders are not in this fake")
        qty = float(b["qty"])
        if not qty > 0:
            raise _err(422, 40010001, "qty must be > 0")
        if side not in ("buy", "sell"):
            raise _err(422, 40010001, "invalid side")
        if tif not in ("day", "gtc", "opg", "cls", "ioc", "fok"):
            raise _err(422, 40010001, "invalid time_in_force")
        if len(cid) > 48:
            raise _err(422, 40010001, "client_order_id must be no more than 48 characters")
        if cid in self.client_ids:
            raise _err(422, 40010001, "client_order_id must be unique")
        a = self.assets.get(sym or "")
        if a is None:
            raise _err(422, 40010001, f"asset \"{sym}\" not found")
        if not a["tradable"]:
            raise _err(422, 42210000, f"asset {sym} is not tradable")
        if tif == "opg":
            t = self.now.astimezone(ET).time()
            if datetime.strptime("09:28", "%H:%M").time() <= t < datetime.strptime(
                    "19:00", "%H:%M").time():
                raise _err(422, 42210000, "opg orders are accepted before 9:28am and after "
                                          "7:00pm ET only")
        fractional = abs(qty - round(qty)) > 1e-9
        if fractional and not a["fractionable"]:
            raise _err(422, 42210000, f"asset {sym} is not fractionable")
        if fractional and tif != "day":
            raise _err(422, 42210000, "fractional orders must be DAY orders")
        pos = self.positions.get(sym, {"qty": 0.0})["qty"]
        pending = sum((o["qty"] - o["filled_qty"]) * (1 if o["side"] == "buy" else -1)
                      for o in self.orders if o["symbol"] == sym and o["status"] not in FINAL)
        held = pos + pending  # after the open orders
        opening = qty
        if side == "sell":
            if held > 1e-9:
                if qty > held + 1e-9:
                    raise _err(403, 40310000, f"insufficient qty available for order "
                                              f"(requested: {qty:g}, available: {held:g})")
                opening = 0.0
            elif fractional:
                raise _err(403, 42210000, "fractional orders cannot be sold short")
            elif not a["shortable"]:
                raise _err(403, 40310000, f"asset {sym} cannot be sold short")
        else:
            if held < -1e-9:
                if qty > -held + 1e-9:
                    raise _err(403, 40310000, f"insufficient qty available for order "
                                              f"(requested: {qty:g}, available: {-held:g})")
                opening = 0.0
        if opening:
            gross = sum(abs(p["qty"]) * self._price(s) for s, p in self.positions.items())
            waiting = sum((o["qty"] - o["filled_qty"]) * self._price(o["symbol"])
                          for o in self.orders if o["status"] not in FINAL)
            power = 2 * self._equity() - gross - waiting
            if opening * a["price"] > power + 1e-6:
                raise _err(403, 40310000, "insufficient buying power")
        o = self._new_order(cid, sym, side, qty, tif)
        self.orders.append(o)
        if self.phase == "open":
            self._execute(o, qty, self._price(sym))
        return self._order_json(o)

    def take_fault(self, method: str, path: str) -> dict[str, Any] | None:
        for f in self.faults:
            if f["method"] == method and path.startswith(f["path"]) and f["times"] > 0:
                f["times"] -= 1
                return dict(f)
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: _Server

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _send(self, status: int, body: Any, text: bool = False) -> None:
        data = b"" if body is None else (body.encode() if text else json.dumps(body).encode())
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _serve(self, method: str) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if parts.path.startswith("/_fake/"):
            with state.lock:
                self._send(200, _control(state, method, parts.path[7:], body or {}))
            return
        auth = (self.headers.get("APCA-API-KEY-ID") == state.key
                and self.headers.get("APCA-API-SECRET-KEY") == state.secret)
        with state.lock:
            state.requests.append({"method": method, "path": parts.path, "query": query,
                                   "body": body, "auth": auth,
                                   "user_agent": self.headers.get("User-Agent", "")})
            fault = state.take_fault(method, parts.path)
        kind = fault["kind"] if fault else None
        if kind == "429":
            return self._send(429, {"code": 42910000, "message": "rate limit exceeded"})
        if kind == "504":
            return self._send(504, "Gateway Timeout", text=True)
        if kind == "403":
            return self._send(403, {"code": 40310000, "message": "request is forbidden"})
        if kind == "500_text":
            return self._send(500, "Internal Server Error", text=True)
        if kind == "echo_keys":  # a server that echoes the keys in its error body
            return self._send(403, {"code": 40310000, "message": "bad keys "
                                    f"{self.headers.get('APCA-API-KEY-ID')} "
                                    f"{self.headers.get('APCA-API-SECRET-KEY')}"})
        if not auth:
            return self._send(401, {"code": 40110000, "message": "request is not authorized"})
        with state.lock:
            status, out, text = state.handle(method, parts.path, query, self.headers, body)
        if kind == "504_after_accept":
            return self._send(504, "Gateway Timeout", text=True)
        if kind == "hang":
            time.sleep(float(fault["seconds"]))
        if kind == "drop":
            self.close_connection = True
            return
        self._send(status, out, text)


def _control(state: FakeState, method: str, name: str, b: dict[str, Any]) -> Any:
    if name == "reset":
        return state.reset(b)
    if name == "open":
        return state.open(b.get("prices", {}), b.get("fill"))
    if name == "close":
        return state.close()
    if name == "advance":
        state.open(b.get("prices", {}), b.get("fill"))
        return state.close()
    if name == "fault":
        return state.add_fault(b)
    if name == "clear_faults":
        state.faults = []
        return {"faults": 0}
    if name == "trade":
        return state.external_trade(b["symbol"], float(b["qty"]), float(b["price"]))
    if name == "reset_account":
        return state.reset_account()
    if name == "clock":
        return state.set_clock(b["time"], b.get("phase", "open"))
    if name == "state":
        return state.snapshot()
    return {"error": f"unknown control {name}"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, state: FakeState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class FakeControl:
    """The test's handle on a fake (in a thread or another process): its URL and controls."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _post(self, name: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(f"{self.url}/_fake/{name}", method="POST",
                                     data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def reset(self, **cfg: Any) -> dict[str, Any]:
        return self._post("reset", cfg)

    def open(self, prices: dict[str, float], fill: dict[str, float] | None = None) -> dict:
        return self._post("open", {"prices": prices, "fill": fill})

    def close(self) -> dict:
        return self._post("close")

    def advance(self, prices: dict[str, float], fill: dict[str, float] | None = None) -> dict:
        return self._post("advance", {"prices": prices, "fill": fill})

    def fault(self, method: str, path: str, kind: str, times: int = 1,
              seconds: float = 5.0) -> dict:
        return self._post("fault", {"method": method, "path": path, "kind": kind,
                                    "times": times, "seconds": seconds})

    def clear_faults(self) -> dict:
        return self._post("clear_faults")

    def trade(self, symbol: str, qty: float, price: float) -> dict:
        return self._post("trade", {"symbol": symbol, "qty": qty, "price": price})

    def reset_account(self) -> dict:
        return self._post("reset_account")

    def clock(self, when: str, phase: str) -> dict:
        return self._post("clock", {"time": when, "phase": phase})

    def state(self) -> dict[str, Any]:
        return self._post("state")

    def orders(self) -> list[dict[str, Any]]:
        return self.state()["orders"]


@contextmanager
def running_fake(key: str = KEY, secret: str = SECRET) -> Iterator[FakeControl]:
    """A fake in a thread of this process."""
    server = _Server(FakeState(key, secret))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeControl(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def spawned_fake(key: str = KEY, secret: str = SECRET) -> Iterator[FakeControl]:
    """A fake in its own process (``python -m tests.fake_alpaca``)."""
    env = {**os.environ, "FAKE_ALPACA_KEY": key, "FAKE_ALPACA_SECRET": secret,
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.fake_alpaca"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"fake alpaca did not start: {line!r}")
        yield FakeControl(f"http://127.0.0.1:{int(line.split()[1])}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# Venue settings that keep tests fast: a short timeout, quick retries.
FAST = {"timeout": 1.0, "retries": 2, "retry_wait": 0.01}
# Columns that hold wall-clock times or the fake's random ids (left out of comparisons).
VOLATILE = {"created_at", "decided_at", "intended_at", "sent_at", "updated_at", "booked_at", "at",
            "broker_id", "time", "opened_at", "endpoint"}


def fake_env(fake: FakeControl, key: str = KEY, secret: str = SECRET) -> dict[str, str]:
    """The environment a step reads: the keys and the fake's URL."""
    return {"APCA_API_KEY_ID": key, "APCA_API_SECRET_KEY": secret, "APCA_API_BASE_URL": fake.url}


def store_rows(store: Any) -> dict[str, list[dict[str, Any]]]:
    """Every table of a broker store without times and broker ids (for exact comparisons)."""
    out = {}
    for t in ("broker_meta", "broker_decisions", "broker_orders", "broker_fills",
              "reconciliations"):
        out[t] = [{k: v for k, v in r.items() if k not in VOLATILE} for r in store.table(t)]
    return out


def fake_orders(fake: FakeControl) -> list[tuple]:
    """The fake's orders in submission order, without ids and times."""
    return [(o["client_order_id"], o["symbol"], o["side"], o["qty"], o["time_in_force"],
             o["status"], o["filled_qty"], o["filled_avg_price"]) for o in fake.orders()]


class AlpacaAccount:
    """A broker account of the tests: ``broker.sqlite`` in ``folder``, initialised on ``fake``."""

    def __init__(self, folder: Path, fake: FakeControl, symbols: tuple[str, ...] = ("AAPL", "MSFT"),
                 name: str = "acct", nonce: str = "0badf00d", **broker_kw: Any) -> None:
        from lstmknn.engine.paper.alpaca import open_alpaca_account
        from lstmknn.engine.paper.broker_store import BROKER_FILE, BrokerStore

        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.fake, self.symbols, self.name = folder, fake, symbols, name
        self.env = fake_env(fake)
        self.broker_kw = broker_kw
        self.store = BrokerStore.open(folder / BROKER_FILE)
        self.meta = open_alpaca_account(self.store, name, env=self.env, nonce=nonce, **FAST)

    def broker(self, **kw: Any) -> Any:
        from lstmknn.engine.paper.alpaca import alpaca_broker

        return alpaca_broker(self.store, self.name, self.symbols, env=self.env,
                             **{**FAST, **self.broker_kw, **kw})

    def step(self, bar: str, targets: dict[str, float], closes: dict[str, float], *,
             adopt: bool = False, **kw: Any) -> Any:
        from lstmknn.engine.paper.remote import broker_step

        return broker_step(self.broker(**kw), bar, targets, closes, adopt=adopt)


def main() -> None:
    server = _Server(FakeState(os.environ.get("FAKE_ALPACA_KEY", KEY),
                               os.environ.get("FAKE_ALPACA_SECRET", SECRET)))
    sys.stdout.write(f"PORT {server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
