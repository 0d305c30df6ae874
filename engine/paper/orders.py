"""Orders for a real broker: client order ids and the quantities a broker accepts.

A client order id is derived from the account, the bar, the symbol, the order's
sequence number within the bar and a nonce written once when the account was
opened: the same decision always gets the same id (so a resend after a crash
is refused by the broker as a duplicate), and a re-created account with the
same name never reuses an id (brokers such as Alpaca keep ids forever).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from decimal import ROUND_DOWN, Decimal

MAX_ID_LENGTH = 48
# Finest fractional quantity brokers take (Alpaca: 9 decimals).
FRACTION_DECIMALS = 9
FRACTION_STEP = 10.0 ** -FRACTION_DECIMALS
NONCE_RE = re.compile(r"[0-9a-f]{8}")


def new_nonce() -> str:
    """Eight random hex digits, written once when an account is opened."""
    return secrets.token_hex(4)


def client_order_id(account: str, bar: str, symbol: str, seq: int, nonce: str) -> str:
    """``lk<nonce>-<bar digits>-<seq>-<digest>``: at most 48 characters, letters, digits, '-'."""
    if not NONCE_RE.fullmatch(nonce):
        raise ValueError(f"nonce {nonce!r}: expected 8 hex digits")
    if seq < 0:
        raise ValueError("seq must be >= 0")
    digest = hashlib.sha256("\x1f".join((account, bar, symbol, str(seq), nonce)).encode())
    stamp = re.sub(r"\D", "", bar)[:14] or "0"
    out = f"lk{nonce}-{stamp}-{seq}-{digest.hexdigest()[:12]}"
    if len(out) > MAX_ID_LENGTH:  # pragma: no cover - only with seq beyond 10**9
        raise ValueError(f"client order id {out!r} longer than {MAX_ID_LENGTH}")
    return out


def _toward_zero(x: float, decimals: int) -> float:
    # Round to the finest step first so float noise (99.99999999997) does not lose a share.
    d = Decimal(repr(round(x, FRACTION_DECIMALS)))
    return float(d.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_DOWN))


def order_legs(current: float, target: float, *, fractional: bool) -> list[float]:
    """Signed quantities that move ``current`` shares towards ``target`` shares.

    Quantities are whole shares unless ``fractional``; a short position is always
    whole shares (brokers take no fractional short sales), rounded towards zero.
    A reversal (long to short or short to long) is two legs: close, then open,
    as brokers refuse one order that crosses zero. Legs below the finest step
    are dropped.
    """
    decimals = FRACTION_DECIMALS if fractional and target >= 0 else 0
    goal = _toward_zero(target, decimals)
    crossing = current > 0 > goal or current < 0 < goal
    legs = [-current, goal] if crossing else [goal - current]
    step = FRACTION_DECIMALS if fractional else 0
    out = [_toward_zero(q, step) for q in legs]
    return [q for q in out if abs(q) >= FRACTION_STEP]
