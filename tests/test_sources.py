"""load_sources: bundled names, long (tidy) files, folders, NAME=path and gzip."""

import gzip
from pathlib import Path

import pandas as pd
import pytest

from lstmknn.data.errors import DataError
from lstmknn.data.loader import load_prices
from lstmknn.data.sources import LoadOptions, load_sources

COLS = ["Open", "High", "Low", "Close", "Volume"]


@pytest.fixture(scope="module")
def pair() -> dict[str, pd.DataFrame]:
    """Two symbols over different spans (SPX starts later than MSFT)."""
    return {"SPX": load_prices("sp500").frame.loc["2010-03-01":"2010-12-31"],
            "MSFT": load_prices("msft").frame.loc["2010-01-01":"2010-12-31"]}


def long_text(frames: dict[str, pd.DataFrame], symbol_header: str = "Symbol") -> str:
    """A tidy file sorted by date, then symbol: rows of the symbols interleave."""
    parts = [f.set_axis(COLS, axis=1).assign(**{symbol_header: s}) for s, f in frames.items()]
    tidy = pd.concat(parts).rename_axis("Date").reset_index()
    tidy = tidy.sort_values(["Date", symbol_header], kind="stable")
    return tidy[["Date", symbol_header, *COLS]].to_csv(index=False)


@pytest.mark.parametrize("header", ["Symbol", "ticker", "Ticker", "SYMBOL"])
def test_a_long_file_gives_one_price_data_per_symbol(tmp_path, pair, header):
    p = tmp_path / "panel.csv"
    p.write_text(long_text(pair, header))
    datas = load_sources([str(p)])
    assert sorted(d.symbol for d in datas) == ["MSFT", "SPX"]
    for d in datas:
        pd.testing.assert_frame_equal(d.frame, pair[d.symbol])


def test_a_long_file_with_another_symbol_column_name_needs_the_option(tmp_path, pair):
    p = tmp_path / "panel.csv"
    p.write_text(long_text(pair, "Code"))
    with pytest.raises(DataError, match="duplicate date 2010-03-01 .*pass --symbol-column Code"):
        load_sources([str(p)])
    datas = load_sources([str(p)], LoadOptions(symbol_column="code"))
    assert sorted(d.symbol for d in datas) == ["MSFT", "SPX"]


def test_a_repeated_bar_of_one_symbol_is_refused_naming_symbol_and_line(tmp_path, pair):
    p = tmp_path / "panel.csv"
    lines = long_text(pair).splitlines()
    lines.insert(5, lines[4])
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"symbol MSFT: line 6: duplicate date 2010-01-07"):
        load_sources([str(p)])


def test_gzipped_long_files_load_like_plain_ones(tmp_path, pair):
    p = tmp_path / "panel.csv.gz"
    p.write_bytes(gzip.compress(long_text(pair).encode()))
    assert sorted(d.symbol for d in load_sources([str(p)])) == ["MSFT", "SPX"]


def test_a_folder_mixes_wide_files_named_by_stem_and_long_files(tmp_path, pair):
    folder = tmp_path / "data"
    folder.mkdir()
    pair["SPX"].to_csv(folder / "spx.csv")
    (folder / "more.csv.gz").write_bytes(gzip.compress(long_text({"M": pair["MSFT"]}).encode()))
    (folder / "notes.txt").write_text("not prices")
    datas = load_sources([str(folder)])
    assert [d.symbol for d in datas] == ["M", "spx"]


def test_two_files_with_the_same_stem_need_names(tmp_path, pair):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        pair["SPX"].to_csv(tmp_path / sub / "prices.csv")
    a, b = str(tmp_path / "a" / "prices.csv"), str(tmp_path / "b" / "prices.csv")
    with pytest.raises(DataError, match=r"repeated: prices\); name sources with NAME=path"):
        load_sources([a, b])
    assert [d.symbol for d in load_sources([f"A={a}", f"B={b}"])] == ["A", "B"]


def test_name_equals_renames_bundled_and_refuses_multi_symbol_sources(tmp_path, pair):
    (spx,) = load_sources(["index=sp500"])
    assert spx.symbol == "index" and spx.rows == 5031
    with pytest.raises(DataError, match="holds 20 symbols .*exactly one symbol"):
        load_sources(["x=us20"])
    with pytest.raises(DataError, match="nothere.csv: no such file"):
        load_sources(["x=nothere.csv"])


def test_a_path_with_an_equals_sign_is_read_as_a_path(tmp_path, pair):
    p = tmp_path / "a=b.csv"
    pair["SPX"].to_csv(p)
    assert load_sources([str(p)])[0].symbol == "a=b"


def test_bundled_us20_is_twenty_close_only_symbols():
    datas = load_sources(["US20"])
    assert len(datas) == 20 and {d.rows for d in datas} == {6805}
    aapl = next(d for d in datas if d.symbol == "AAPL")
    assert aapl.available == ("close",) and aapl.fills == "next close"
    assert aapl.frame["close"].min() == pytest.approx(0.098)
    assert (aapl.frame["open"] == aapl.frame["close"]).all() and (aapl.frame["volume"] == 0).all()


def test_bundled_sp500_members_keeps_short_symbols_and_real_quirks():
    datas = {d.symbol: d for d in load_sources(["sp500_members"])}
    rows = [d.rows for d in datas.values()]
    assert len(datas) > 500 and min(rows) == 20 and max(rows) == 245
    assert datas["CNP"].frame.loc["2010-05-06", "low"] == 1.0       # flash crash, real
    assert datas["C"].frame["volume"].max() == 21_474_836            # capped field, real


def test_load_prices_still_loads_one_symbol_and_refuses_panels():
    assert load_prices("sp500", symbol="spx").symbol == "spx"
    with pytest.raises(DataError, match="holds 20 symbols"):
        load_prices("us20")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (LoadOptions(sep="ab"), "--sep must be one character"),
        (LoadOptions(decimal=";"), "--decimal must be '.' or ','"),
        (LoadOptions(date_format="dd/mm/yyyy"), "--date-format must be a strftime format"),
        (LoadOptions(price_column="nav"), "no column 'nav' for --price-column"),
    ],
)
def test_bad_options_are_one_line(options, message):
    with pytest.raises(DataError, match=message):
        load_sources(["sp500"], options)


def test_an_empty_folder_and_no_specs_are_refused(tmp_path: Path):
    with pytest.raises(DataError, match="folder holds no .csv files"):
        load_sources([str(tmp_path)])
    with pytest.raises(DataError, match="no data given"):
        load_sources([])
