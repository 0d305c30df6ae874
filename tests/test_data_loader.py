from pathlib import Path

import pytest

from lstmknn.data.errors import DataError
from lstmknn.data.loader import load_prices

HEADER = "Date,Open,High,Low,Close,Volume\n"
GOOD = ["2020-01-02,10,11,9,10.5,100", "2020-01-03,10.5,11,10,10.8,120",
        "2020-01-06,10.8,11.2,10.1,11,90"]


def write(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    p = tmp_path / "prices.csv"
    p.write_text(header + "\n".join(rows) + "\n")
    return p


def test_bundled_datasets_load_by_name_with_known_rows():
    sp = load_prices("sp500")
    assert sp.rows == 5031 and sp.frame.index[0].year == 1999
    assert sp.sha256 == "bad175054af993b4bfbe39c045bd883db38fed2fbc440c7a8e7f938285a73804"
    assert load_prices("MSFT").frame["close"].min() < 0.1


def test_column_names_are_case_insensitive(tmp_path):
    p = write(tmp_path, GOOD, header="date,OPEN,high,Low,close,VOLUME\n")
    assert list(load_prices(p).frame.columns) == ["open", "high", "low", "close", "volume"]


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (GOOD, "Date,Open,High,Low,Volume\n", "missing column(s) close"),
        (["2020-01-02,10,11,9,10.5,100", "yesterday,10,11,9,10,1"], HEADER, "line 3: unparseable date"),
        ([GOOD[0], GOOD[0]], HEADER, "line 3: duplicate date"),
        ([GOOD[1], GOOD[0]], HEADER, "line 3: date 2020-01-02 is before the previous row's "
                                     "2020-01-03 (dates must"),
        ([GOOD[0], "2020-01-03,10,11,9,,5"], HEADER, "line 3: column close is not a finite number"),
        ([GOOD[0], "2020-01-03,10,11,9,inf,5"], HEADER, "column close is not a finite number"),
        ([GOOD[0], "2020-01-03,10,11,9,0,5"], HEADER, "line 3: close must be > 0"),
        ([GOOD[0], "2020-01-03,10,11,-9,10,5"], HEADER, "low must be > 0"),
        ([GOOD[0], "2020-01-03,10,9,11,10,5"], HEADER, "line 3: high < low"),
        ([], HEADER, "no data rows"),
    ],
)
def test_bad_input_is_refused_with_the_line_and_the_problem(tmp_path, rows, header, message):
    with pytest.raises(DataError) as err:
        load_prices(write(tmp_path, rows, header))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_name_that_is_not_a_file_says_which_datasets_exist():
    with pytest.raises(DataError, match="bundled: msft, sp500"):
        load_prices("nosuchthing")


def test_binary_garbage_is_refused_as_unreadable(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"\x00\xff\xfe" * 50)
    with pytest.raises(DataError):
        load_prices(p)


def test_line_numbers_count_blank_lines(tmp_path):
    p = write(tmp_path, [GOOD[0], "", GOOD[1], "2020-01-06,10,11,9,x,5"])
    with pytest.raises(DataError, match=r"line 5: column close is not a finite number \('x'\)"):
        load_prices(p)


def test_quoted_thousands_separators_are_read_as_thousands(tmp_path):
    p = write(tmp_path, ['2020-01-02,10,11,9,10.5,"1,234,567"', '2020-01-03,10.5,11,10,10.8,"2,000"'])
    assert load_prices(p).frame["volume"].tolist() == [1234567.0, 2000.0]


def test_a_folder_is_not_a_single_symbol_source(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        load_prices(tmp_path)
