"""Shared fixtures: a small real-data slice and a configuration that trains in seconds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lstmknn.data.loader import load_prices
from lstmknn.engine.config import Config, from_dict
from tests.helpers import SMALL, write_csv


@pytest.fixture
def small_cfg() -> Config:
    return from_dict(SMALL)


@pytest.fixture(scope="session")
def sp500() -> pd.DataFrame:
    return load_prices("sp500").frame


@pytest.fixture
def small_prices(sp500: pd.DataFrame) -> pd.DataFrame:
    return sp500.iloc[:420].copy()


@pytest.fixture
def small_csv(small_prices: pd.DataFrame, tmp_path: Path) -> Path:
    return write_csv(small_prices, tmp_path / "small.csv")


