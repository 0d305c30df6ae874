"""Symbols traded together: their bars line up on one calendar, their names are usable."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmknn.data.errors import DataError
from lstmknn.data.sources import load_sources
from lstmknn.engine.backtest import run_backtest
from lstmknn.strategies.execution import untraded
from tests.helpers import write_csv


def stamped(frame: pd.DataFrame, path: Path, time: str = "", symbol: str | None = None) -> Path:
    out = frame.rename(columns=str.capitalize).rename_axis("Date").reset_index()
    out["Date"] = out["Date"].dt.strftime("%Y-%m-%d") + time
    if symbol is not None:
        out.insert(1, "Symbol", symbol)
    out.to_csv(path, index=False)
    return path


def hourly(frame: pd.DataFrame, path: Path, start: str = "2021-01-04 09:30") -> Path:
    """``frame``'s rows as hourly bars from ``start``, written with their times."""
    hours = pd.date_range(start, periods=len(frame), freq="h")
    out = frame.set_axis(pd.DatetimeIndex(hours, name="date"))
    out.rename(columns=str.capitalize).rename_axis("Date").reset_index().to_csv(path, index=False)
    return path


def test_daily_files_stamped_at_different_times_trade_both_symbols(small_cfg, sp500, tmp_path):
    a = stamped(sp500.iloc[:420], tmp_path / "a.csv", " 16:00:00")
    b = stamped(sp500.iloc[:420] * [1, 1, 1, 1, 2], tmp_path / "b.csv")
    run = run_backtest([f"A={a}", f"B={b}"], small_cfg, engine="vectorized")
    assert set(run.result.trades["symbol"]) == {"A", "B"}
    assert (run.predictions["date"] == run.predictions["date"].dt.normalize()).all()
    assert "untraded_symbols" not in run.summary


def test_a_long_file_whose_symbols_carry_their_own_times_and_offsets_keeps_each_date(
        sp500, tmp_path):
    days = sp500.iloc[:30]
    parts = [stamped(days, tmp_path / "x.csv", " 16:00:00-05:00", "NY"),
             stamped(days, tmp_path / "y.csv", " 00:00:00+09:00", "TK")]
    long = pd.concat([pd.read_csv(p) for p in parts]).sort_values("Date", kind="stable")
    long.to_csv(tmp_path / "long.csv", index=False)
    ny, tk = load_sources([str(tmp_path / "long.csv")])
    pd.testing.assert_index_equal(ny.frame.index, days.index)
    pd.testing.assert_index_equal(tk.frame.index, days.index)
    assert "daily bars put on their local date" in ny.notes[0]


def test_daily_bars_at_a_close_time_are_put_on_their_date_and_say_so(sp500, tmp_path):
    (data,) = load_sources([str(stamped(sp500.iloc[:30], tmp_path / "c.csv", " 16:00"))])
    pd.testing.assert_index_equal(data.frame.index, sp500.index[:30])
    assert "daily bars stamped 16:00:00 put on their date" in data.notes


def test_intraday_bars_keep_their_times_symbol_by_symbol(sp500, tmp_path):
    (data,) = load_sources([str(hourly(sp500.iloc[:20], tmp_path / "h.csv"))])
    assert list(data.frame.index) == list(pd.date_range("2021-01-04 09:30", periods=20, freq="h"))


def test_daily_and_intraday_symbols_are_refused_naming_them(sp500, tmp_path):
    h = hourly(sp500.iloc[:40], tmp_path / "hourly.csv")
    d = write_csv(sp500.iloc[:40], tmp_path / "daily.csv")
    with pytest.raises(DataError, match=r"daily and intraday.*daily daily, hourly intraday"):
        load_sources([str(d), str(h)])


def test_symbols_whose_bars_fall_between_each_others_are_refused(sp500, tmp_path):
    on = hourly(sp500.iloc[:40], tmp_path / "on.csv", "2021-01-04 09:00")
    half = hourly(sp500.iloc[:40], tmp_path / "half.csv", "2021-01-04 09:30")
    with pytest.raises(DataError, match=r"do not line up.*orders could not fill"):
        load_sources([str(on), str(half)])


@pytest.mark.parametrize("name", ["X,Y", "X;Y", "Z" * 300, "a b", "-x"])
def test_symbol_names_that_cannot_be_file_names_are_refused_in_one_line(sp500, tmp_path, name):
    path = write_csv(sp500.iloc[:30], tmp_path / "p.csv")
    with pytest.raises(DataError, match=r"symbol") as err:
        load_sources([f"{name}={path}"])
    assert "\n" not in str(err.value)


def test_usual_ticker_spellings_are_accepted(sp500, tmp_path):
    path = write_csv(sp500.iloc[:30], tmp_path / "p.csv")
    names = ["BRK.B", "^GSPC", "EURUSD=X", "BTC-USD", "7203.T"]
    assert [d.symbol for d in load_sources([f"{n}={path}" for n in names])] == names


def test_targets_that_never_became_an_order_are_named_with_the_reason():
    dates = pd.date_range("2020-01-01", periods=3)
    pred = pd.DataFrame({"date": np.tile(dates, 2), "symbol": ["A"] * 3 + ["B"] * 3,
                         "target": [0, 1, 1, 0, 0, 0]})
    trades = pd.DataFrame({"symbol": pd.Series([], dtype=str)})
    assert list(untraded(pred, trades)) == ["A"]
    assert "no order" in untraded(pred, trades)["A"]
