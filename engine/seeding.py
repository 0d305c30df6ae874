"""Seeds derived from a root seed and a task key, never from worker identity."""

from __future__ import annotations

import hashlib


def derive_seed(root: int, *key: object) -> int:
    """A 31-bit seed that depends only on ``root`` and ``key``."""
    text = "/".join([str(root), *map(str, key)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF
