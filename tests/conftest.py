"""Shared fixtures: a small real-data slice and a configuration that trains in seconds."""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from data.loader import load_prices
from engine.config import Config, from_dict

SMALL = {
    "seed": 7,
    "walk_forward": {"train_window": 150, "step": 25},
    "lstm": {"lookback": 5, "hidden_size": 8, "head_size": 4, "epochs": 3, "warm_epochs": 1,
             "batch_size": 64, "device": "cpu"},
    "knn": {"n_neighbors": 10},
    "fusion": {"min_history": 40},
    "report": {"tearsheet": False},
}


@pytest.fixture
def small_cfg() -> Config:
    return from_dict(SMALL)


@pytest.fixture(scope="session")
def sp500() -> pd.DataFrame:
    return load_prices("sp500").frame


@pytest.fixture
def small_prices(sp500: pd.DataFrame) -> pd.DataFrame:
    return sp500.iloc[:420].copy()


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    out = frame.rename(columns=str.capitalize).rename_axis("Date").reset_index()
    out.to_csv(path, index=False, date_format="%Y-%m-%d")
    return path


@pytest.fixture
def small_csv(small_prices: pd.DataFrame, tmp_path: Path) -> Path:
    return write_csv(small_prices, tmp_path / "small.csv")


def write_config(path: Path, extra: dict | None = None) -> Path:
    """Write the small config (plus ``extra`` sections merged in) as a TOML file."""
    raw = copy.deepcopy(SMALL)
    for section, values in (extra or {}).items():
        raw.setdefault(section, {}).update(values)
    lines = [f"seed = {raw['seed']}"]
    for section, values in raw.items():
        if section != "seed":
            lines += [f"[{section}]", *(f"{k} = {json.dumps(v)}" for k, v in values.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


LEDGER_TABLES = {"positions": "symbol", "bars": "pos", "signals": "date", "orders": "id",
                 "fills": "id", "equity": "date"}


def dump_ledger(path: Path, integrity: bool = False) -> dict:
    """Every paper ledger table (account: its trading state only), for exact comparisons."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        out = {t: [dict(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY {o}")]
               for t, o in LEDGER_TABLES.items()}
        out["account"] = dict(conn.execute("SELECT cash, last_pos, last_bar FROM account").fetchone())
        if integrity:
            out["integrity"] = conn.execute("PRAGMA integrity_check").fetchone()[0]
        return out
    finally:
        conn.close()
