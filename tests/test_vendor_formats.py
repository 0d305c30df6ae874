"""Vendor exports as users have them: timezones, yfinance headers, separators, day-first dates.

Every file is generated from the bundled S&P 500 prices, so each layout must
give exactly the frame of the plain file.
"""

from pathlib import Path

import pandas as pd
import pytest

from lstmknn.data.errors import DataError
from lstmknn.data.loader import load_prices
from lstmknn.data.sources import LoadOptions, load_sources

COLS = ["Open", "High", "Low", "Close", "Volume"]


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    """S&P 500, 2013 (DST starts 10 March and ends 3 November)."""
    return load_prices("sp500").frame.loc["2013-01-01":"2013-12-31"]


@pytest.fixture(scope="module")
def msft() -> pd.DataFrame:
    return load_prices("msft").frame.loc["2012-10-01":"2013-12-31"]


def titled(frame: pd.DataFrame, index: pd.Index, name: str = "Date") -> pd.DataFrame:
    out = frame.copy()
    out.columns = COLS
    out.index = index.rename(name)
    return out


def load_one(path: Path, **options) -> pd.DataFrame:
    (data,) = load_sources([str(path)], LoadOptions(**options))
    return data.frame


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo", "UTC"])
def test_daily_bars_with_utc_offsets_keep_their_local_date(tmp_path, spx, zone):
    p = tmp_path / "tz.csv"
    titled(spx, spx.index.tz_localize(zone)).to_csv(p)
    assert "00:00:00" in p.read_text().splitlines()[1]
    (data,) = load_sources([str(p)])
    pd.testing.assert_frame_equal(data.frame, spx)
    assert "local date" in data.describe()["notes"][0]


def test_yfinance_history_across_dst_gives_the_naive_frame(tmp_path, spx):
    p = tmp_path / "spy.csv"
    titled(spx, spx.index.tz_localize("America/New_York")).to_csv(p)
    text = p.read_text()
    assert "-05:00" in text and "-04:00" in text
    pd.testing.assert_frame_equal(load_one(p), spx)


def test_daily_bars_at_a_constant_local_close_time_are_put_on_their_local_date(tmp_path, spx):
    p = tmp_path / "close_time.csv"
    idx = (spx.index + pd.Timedelta(hours=16)).tz_localize("Europe/Berlin")
    titled(spx, idx).to_csv(p)
    assert (load_one(p).index == spx.index).all()


def test_intraday_bars_with_offsets_become_utc_instants_across_the_fall_back_hour(tmp_path, spx):
    idx = pd.date_range("2013-11-03 00:00", periods=6, freq="30min", tz="America/New_York")
    p = tmp_path / "intraday.csv"
    titled(spx.iloc[:6], idx, "Datetime").to_csv(p)
    (data,) = load_sources([str(p)])
    assert list(data.frame.index) == list(idx.tz_convert("UTC").tz_localize(None))
    assert data.describe()["first_date"] == "2013-11-03T04:00:00"
    assert "converted to UTC" in data.notes[0]


def test_a_column_mixing_offset_and_plain_dates_is_refused_with_both_lines(tmp_path, spx):
    p = tmp_path / "mixed.csv"
    titled(spx.iloc[:3], spx.index[:3].tz_localize("UTC")).to_csv(p)
    lines = p.read_text().splitlines()
    lines[3] = lines[3].replace(" 00:00:00+00:00", "")
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 4: .* has no UTC offset but line 2 has one"):
        load_one(p)


def yfinance_multi(frames: dict[str, pd.DataFrame], fields: list[str]) -> str:
    """yfinance >= 0.2.51 ``download([...]).to_csv()``: Price / Ticker / Date header lines."""
    wide = pd.concat({t: f.set_axis(COLS, axis=1) for t, f in frames.items()}, axis=1,
                     sort=True)
    wide = wide.swaplevel(axis=1)
    for t in frames:
        if "Adj Close" in fields:
            wide[("Adj Close", t)] = wide[("Close", t)] * 0.5
    wide = wide[[(f, t) for f in fields for t in frames]]
    wide.columns.names = ["Price", "Ticker"]
    wide.index.name = "Date"
    return wide.to_csv()


def test_yfinance_multi_ticker_download_gives_one_symbol_per_ticker(tmp_path, spx, msft):
    p = tmp_path / "download.csv"
    p.write_text(yfinance_multi({"SPY": spx, "MSFT": msft}, ["Close", "High", "Low", "Open", "Volume"]))
    assert p.read_text().splitlines()[1].startswith("Ticker,SPY,MSFT")
    spy, ms = load_sources([str(p)])
    assert (spy.symbol, ms.symbol) == ("SPY", "MSFT")
    pd.testing.assert_frame_equal(spy.frame, spx)   # dates before SPY's first bar left out
    pd.testing.assert_frame_equal(ms.frame, msft)
    assert any("left out" in n for n in spy.notes)


def test_yfinance_download_with_adj_close_can_trade_the_adjusted_price(tmp_path, spx):
    p = tmp_path / "adj.csv"
    p.write_text(yfinance_multi({"SPY": spx}, ["Adj Close", "Close", "High", "Low", "Open", "Volume"]))
    (raw,) = load_sources([str(p)])
    pd.testing.assert_frame_equal(raw.frame, spx)
    assert "adj close is not used" in raw.notes[0]
    (adj,) = load_sources([str(p)], LoadOptions(price_column="Adj Close"))
    pd.testing.assert_frame_equal(adj.frame[["open", "high", "low", "close"]],
                                  spx[["open", "high", "low", "close"]] * 0.5)
    assert adj.describe()["price_column"] == "adj close"


def european(frame: pd.DataFrame, date_format: str, decimal: str) -> str:
    rows = ["Datum;Eröffnung;Hoch;Tief;Schluss;Volumen"]
    for ts, r in frame.iterrows():
        nums = [f"{v:.6f}".replace(".", decimal) for v in r[["open", "high", "low", "close"]]]
        rows.append(";".join([ts.strftime(date_format), *nums, f"{int(r['volume'])}"]))
    return "\n".join(rows) + "\n"


def test_semicolon_export_with_decimal_commas_and_dotted_dates_is_detected(tmp_path, spx):
    frame = spx.round(6)
    p = tmp_path / "export.csv"
    text = european(frame, "%d.%m.%Y", ",").replace("Datum", "Date").replace("Schluss", "Close")
    p.write_bytes(text.encode("latin-1"))
    (data,) = load_sources([str(p)])
    pd.testing.assert_frame_equal(data.frame[["close"]], frame[["close"]])
    assert data.available == ("close",)
    assert "';'" in data.notes[-1] and "','" in data.notes[-1]


def test_semicolon_export_with_points_reads_like_the_comma_file(tmp_path, spx):
    p = tmp_path / "semi.csv"
    titled(spx, spx.index).to_csv(p, sep=";")
    pd.testing.assert_frame_equal(load_one(p), spx)


def test_a_lone_thousands_like_number_asks_for_the_decimal_option(tmp_path):
    p = tmp_path / "ambiguous.csv"
    p.write_text("Date;Close\n2020-01-02;1,250\n2020-01-03;1,375\n")
    with pytest.raises(DataError, match=r"line 2: '1,250' could use ',' .* pass --decimal"):
        load_one(p)
    assert load_one(p, decimal=",")["close"].tolist() == [1.25, 1.375]
    assert load_one(p, decimal=".")["close"].tolist() == [1250.0, 1375.0]


def test_tab_separated_files_are_detected(tmp_path, spx):
    p = tmp_path / "prices.tsv"
    titled(spx, spx.index).to_csv(p, sep="\t")
    pd.testing.assert_frame_equal(load_one(p), spx)


def test_day_first_dates_are_detected_from_any_day_above_twelve(tmp_path, spx):
    p = tmp_path / "uk.csv"
    titled(spx, spx.index).to_csv(p, date_format="%d/%m/%Y")
    assert "16/01/2013" in p.read_text()
    pd.testing.assert_frame_equal(load_one(p), spx)


def test_month_first_dates_are_detected_too(tmp_path, spx):
    p = tmp_path / "us.csv"
    titled(spx, spx.index).to_csv(p, date_format="%m/%d/%Y")
    pd.testing.assert_frame_equal(load_one(p), spx)


def test_ambiguous_day_month_dates_are_refused_with_the_option_that_fixes_it(tmp_path, spx):
    early = spx.loc["2013-01-01":"2013-01-12"]
    p = tmp_path / "ambiguous.csv"
    titled(early, early.index).to_csv(p, date_format="%d/%m/%Y")
    with pytest.raises(DataError, match=r"line 2\).*pass --dayfirst .*--date-format %m/%d/%Y") as err:
        load_one(p)
    assert "\n" not in str(err.value)
    pd.testing.assert_frame_equal(load_one(p, dayfirst=True), early)
    pd.testing.assert_frame_equal(load_one(p, date_format="%d/%m/%Y"), early)


def test_an_explicit_date_format_that_does_not_fit_names_the_line(tmp_path, spx):
    p = tmp_path / "iso.csv"
    titled(spx.iloc[:3], spx.index[:3]).to_csv(p)
    with pytest.raises(DataError, match="line 2: unparseable date '2013-01-02'"):
        load_one(p, date_format="%d/%m/%Y")


def test_compact_yyyymmdd_dates_are_read(tmp_path, spx):
    p = tmp_path / "compact.csv"
    titled(spx, spx.index).to_csv(p, date_format="%Y%m%d")
    pd.testing.assert_frame_equal(load_one(p), spx)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"just some words\nwithout any separator\n", "found a single column"),
        (b"a,b,c\n1,2,3\n", "missing column(s) date, close"),
        (b"\x00\xff\xfe" * 50, "binary content"),
        (b"PK\x03\x04" + b"\x00" * 50, "a zip or Excel file: export it as CSV"),
        (b"Date,Close,close\n2020-01-02,1,2\n", "column 'close' appears twice"),
        (b"Date,Close\n1099-01-02,1\n", "line 2: unparseable date '1099-01-02'"),
        (b"\x1f\x8b\x08garbage", "not a readable gzip file"),
        (b"Date,Close\n2020-01-02,10,11\n", "line 2: more fields than the header's 2"),
        (b"Date,Close\n2020-01-02,10\n2020-01-03,1.5\n2020-01-06,\"2,5\"\n", "as decimal mark"),
    ],
)
def test_unknown_layouts_get_one_line(tmp_path, content, message):
    p = tmp_path / "odd.csv"
    p.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_one(p)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("fmt", ["%b %d, %Y", "%d-%b-%Y"])
def test_dates_with_month_names_are_read(tmp_path, spx, fmt):
    p = tmp_path / "named.csv"
    titled(spx, spx.index).to_csv(p, date_format=fmt)
    pd.testing.assert_frame_equal(load_one(p), spx)
