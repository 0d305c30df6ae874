"""One date given on the command line is read by the rule of the data's date column."""

import pandas as pd
import pytest

from lstmknn.data.dates import parse_date
from lstmknn.data.errors import DataError

T = pd.Timestamp


@pytest.mark.parametrize(("text", "options", "expected"), [
    ("2017-02-03", {}, T("2017-02-03")),
    ("2017-02-03 15:30", {}, T("2017-02-03 15:30")),
    ("20170203", {}, T("2017-02-03")),
    ("03/02/2017", {"dayfirst": True}, T("2017-02-03")),
    ("03/02/2017", {"dayfirst": False}, T("2017-03-02")),
    ("13/02/2017", {}, T("2017-02-13")),
    ("02/13/2017", {}, T("2017-02-13")),
    ("03/03/2017", {}, T("2017-03-03")),
    ("03.02.2017", {"date_format": "%d.%m.%Y"}, T("2017-02-03")),
    ("Feb 3, 2017", {}, T("2017-02-03")),
    ("2017-02-03 10:00-05:00", {}, T("2017-02-03 15:00")),
])
def test_dates_are_read_as_in_a_data_file(text, options, expected):
    assert parse_date(text, "--asof", **options) == expected


def test_a_date_that_could_be_day_or_month_first_is_refused_naming_the_option():
    with pytest.raises(DataError, match=r"--until '03/02/2017': could be day-first or month-first; "
                                        r"pass --dayfirst"):
        parse_date("03/02/2017", "--until")


@pytest.mark.parametrize("text", ["yesterday", "2017-13-45", "", "31/31/2017"])
def test_text_that_is_no_date_is_one_line_naming_the_option(text):
    with pytest.raises(DataError, match=r"--since .*: not a date"):
        parse_date(text, "--since")


def test_a_timestamp_with_a_zone_becomes_its_utc_instant():
    assert parse_date(T("2017-02-03 10:00", tz="America/New_York"), "--asof") == T("2017-02-03 15:00")
