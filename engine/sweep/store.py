"""The sweep's task store: one JSON record per finished task, written at once, read on resume."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from data.loader import PriceData
from engine.runio import dumps, write_atomic
from engine.sweep.grid import Variant


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


def task_key(symbol: str, variant: Variant, data: PriceData) -> str:
    """Stable key of a symbol x configuration (data content included)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", symbol)
    return f"{safe}-{variant.config_id}-{data.sha256[:8]}"
