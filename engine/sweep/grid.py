"""Sweep grids: values per dotted config key, expanded into validated configurations."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmknn.engine.config import Config, ConfigError, read_toml, with_overrides


@dataclass(frozen=True)
class Variant:
    """One configuration of the grid: its number, dotted overrides and validated config."""

    number: int
    overrides: dict[str, Any]
    cfg: Config

    @property
    def config_id(self) -> str:
        return self.cfg.hash()

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={text(v)}" for k, v in self.overrides.items()) or "base"


def text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def load_grid(path: str | Path) -> dict[str, list[Any]]:
    """Read a grid TOML: values per dotted key (``"lstm.lookback" = [10, 20]``, or tables)."""
    return _flatten(read_toml(path, "grid"))


def expand_grid(base: Config, grid: Mapping[str, Any], where: str = "grid") -> list[Variant]:
    """Every combination of the grid's values, each validated; raises ConfigError naming the key.

    Each key and each value is checked on its own first, then every combination
    (for rules across keys), before anything runs.
    """
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: `{key}` must list one or more values (got {values!r})")
        seen = []
        for v in values:
            if v in seen:
                raise ConfigError(f"{where}: `{key}` lists {v!r} twice")
            seen.append(v)
            try:
                with_overrides(base, {key: v})
            except ConfigError as exc:
                raise ConfigError(f"{where}: `{key}` = {text(v)}: {exc}") from None
    keys = list(grid)
    variants = []
    for n, combo in enumerate(itertools.product(*(grid[k] for k in keys)), 1):
        overrides = dict(zip(keys, combo, strict=True))
        try:
            cfg = with_overrides(base, overrides)
        except ConfigError as exc:
            label = ", ".join(f"{k}={text(v)}" for k, v in overrides.items())
            raise ConfigError(f"{where}: combination {label}: {exc}") from None
        variants.append(Variant(n, overrides, cfg))
    return variants


def label(overrides: Mapping[str, Any]) -> str:
    """``key=value, ...`` of a configuration's overrides (``base`` for none)."""
    return ", ".join(f"{k}={text(v)}" for k, v in overrides.items()) or "base"
