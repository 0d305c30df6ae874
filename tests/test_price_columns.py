"""PriceData's column contract: chosen price column, close-only series, degenerate prices."""

import numpy as np
import pandas as pd
import pytest

from lstmknn.data.errors import DataError
from lstmknn.data.loader import load_prices
from lstmknn.data.sources import LoadOptions, load_sources


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    return load_prices("sp500").frame.iloc[:300]


def load_one(path, **options):
    (data,) = load_sources([str(path)], LoadOptions(**options))
    return data


def test_a_close_only_file_fills_open_high_low_with_close_and_volume_with_zero(tmp_path, spx):
    p = tmp_path / "nav.csv"
    spx[["close"]].rename(columns={"close": "Close"}).to_csv(p)
    data = load_one(p)
    assert list(data.frame.columns) == ["open", "high", "low", "close", "volume"]
    assert all(data.frame[c].equals(spx["close"]) for c in ("open", "high", "low", "close"))
    assert (data.frame["volume"] == 0.0).all() and data.frame.dtypes.eq(float).all()
    d = data.describe()
    assert d["available"] == ["close"] and d["fills"] == "next close"
    assert (d["first_date"], d["last_date"], d["rows"]) == ("1999-01-04", "2000-03-10", 300)


def test_close_and_volume_keep_the_volume(tmp_path, spx):
    p = tmp_path / "cv.csv"
    spx[["close", "volume"]].to_csv(p)
    data = load_one(p)
    assert data.available == ("close", "volume") and data.frame["volume"].equals(spx["volume"])


def test_a_full_file_fills_at_the_next_open(spx):
    d = load_prices("sp500").describe()
    assert d["available"] == ["open", "high", "low", "close", "volume"] and d["fills"] == "next open"


def test_adjusted_close_with_raw_bars_scales_open_high_low_and_says_so(tmp_path, spx):
    factor = np.linspace(0.5, 1.0, len(spx))        # dividends and splits adjust early bars down
    raw = spx.assign(**{"Adj Close": spx["close"] * factor})
    p = tmp_path / "adj.csv"
    raw.to_csv(p)
    data = load_one(p, price_column="adj_close")
    for c in ("open", "high", "low", "close"):
        np.testing.assert_allclose(data.frame[c], spx[c] * factor, rtol=1e-12)
    assert data.frame["volume"].equals(spx["volume"])
    assert "open/high/low scaled by adj close / close" in data.describe()["notes"]
    assert data.describe()["price_column"] == "adj close"


def test_a_file_with_only_adj_close_uses_it_as_close(tmp_path, spx):
    p = tmp_path / "adj_only.csv"
    spx[["close"]].rename(columns={"close": "Adj Close"}).to_csv(p)
    data = load_one(p)
    assert data.frame["close"].equals(spx["close"]) and data.available == ("close",)
    assert "adj close used as close" in data.notes[0]


def test_another_price_column_without_a_raw_close_drops_open_high_low(tmp_path, spx):
    p = tmp_path / "last.csv"
    spx.drop(columns="close").assign(Last=spx["close"]).to_csv(p)
    data = load_one(p, price_column="Last")
    assert data.available == ("close", "volume") and data.fills == "next close"
    assert "open/high/low ignored" in data.notes[0]


PRICES = ["open", "high", "low", "close"]


def constant(f: pd.DataFrame) -> None:
    f[PRICES] = 10.0


def huge(f: pd.DataFrame) -> None:
    f.iloc[5, :4] = 1e308


def tiny(f: pd.DataFrame) -> None:
    f.iloc[5:, :4] = f.iloc[5:, :4] * 1e-16


def jump(f: pd.DataFrame) -> None:
    f.iloc[5:, :4] = f.iloc[5:, :4] * 1e7


def flood(f: pd.DataFrame) -> None:
    f.iloc[3:, 4] = 1e300


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (constant, ("close never changes (10 on all 300 rows): zero volatility",)),
        (huge, ("line 7: open 1e+308 is outside the supported price range 1e-12 to 1e+12",)),
        (tiny, ("line 7: open 1.2", "e-13 is outside the supported price range")),
        (jump, ("line 7: close jumps from 1275.09 to 1.26388e+10 in one bar",)),
        (flood, ("line 5: volume 1e+300 is above 1e+18",)),
    ],
)
def test_degenerate_prices_are_refused_up_front_naming_the_line(tmp_path, spx, change, message):
    frame = spx.copy()
    change(frame)
    p = tmp_path / "odd.csv"
    frame.to_csv(p)
    with pytest.raises(DataError) as err:
        load_one(p)
    assert all(m in str(err.value) for m in message) and "\n" not in str(err.value)


def test_a_constant_symbol_in_a_long_file_is_named(tmp_path, spx):
    a = spx[["close"]].assign(Symbol="A")
    b = spx[["close"]].assign(Symbol="FLAT", close=5.0)
    p = tmp_path / "panel.csv"
    pd.concat([a, b]).to_csv(p)
    with pytest.raises(DataError, match="symbol FLAT: close never changes"):
        load_sources([str(p)])
