"""The sweep's task store: one JSON record per finished task, written at once, read on resume."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lstmknn.data.loader import PriceData
from lstmknn.engine.runio import dumps, write_atomic
from lstmknn.engine.sweep.grid import Variant


class TaskStore:
    """One JSON record per task key under ``root``, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        try:
            record = json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("key") == key else None

    def save(self, record: dict[str, Any]) -> None:
        write_atomic(self.path(record["key"]), dumps(record, indent=None))


def task_key(symbol: str, variant: Variant, datas: Sequence[PriceData]) -> str:
    """Stable key of a symbol (or the universe) x configuration (data content included)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", symbol)
    if safe != symbol:  # ^GSPC and _GSPC must not share a file
        safe += "_" + hashlib.sha256(symbol.encode()).hexdigest()[:6]
    if len(datas) == 1:
        return f"{safe}-{variant.config_id}-{datas[0].sha256[:8]}"
    content = hashlib.sha256("".join(d.symbol + "\0" + d.sha256 for d in datas).encode())
    return f"universe-{variant.config_id}-{content.hexdigest()[:8]}"
