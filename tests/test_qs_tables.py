"""The quantstats tables we replace or correct: no multiplier, no false recovery, no
figure under a window the run does not cover."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lstmknn.reports import qs_tables


def _returns(start: str, end: str, seed: int = 0) -> pd.Series:
    idx = pd.bdate_range(start, end)
    return pd.Series(np.random.default_rng(seed).normal(2e-4, 0.01, len(idx)), index=idx)


def test_the_eoy_table_has_no_multiplier_even_for_a_flat_benchmark_year() -> None:
    r = _returns("2010-03-01", "2012-12-31")
    bench = r * 0.0 + 1e-12  # a year at about 0 %: quantstats printed a multiplier of ~1e10
    text = qs_tables.eoy_table_html(r, bench, "Strategy", "Buy & hold", 252)
    assert "Multiplier" not in text
    assert "<th>Year</th><th>Buy &amp; hold</th><th>Strategy</th><th>Won</th>" in text
    assert text.count("<tr><td>20") == 3
    assert "Part years: 2010 from the first bar (01 Mar)" in text


def test_a_run_of_a_year_or_less_gets_a_sentence_instead_of_an_eoy_table() -> None:
    text = qs_tables.eoy_table_html(_returns("2010-04-23", "2010-08-20"), None)
    assert "<table" not in text and "left out" in text


def test_a_drawdown_still_open_at_the_last_bar_reads_not_recovered() -> None:
    idx = pd.bdate_range("2020-01-01", periods=8)
    r = pd.Series([0.0, 0.1, -0.1, 0.2, 0.0, -0.05, -0.05, 0.01], index=idx)
    periods = qs_tables.drawdown_periods(r)
    assert list(periods["start"]) == [idx[2], idx[5]]
    assert periods["recovered"].iloc[0] == idx[3] and pd.isna(periods["recovered"].iloc[1])
    assert periods["days"].iloc[1] == (idx[7] - idx[5]).days + 1
    text = qs_tables.drawdown_table_html(r)
    rows = text.split("<tr>")[2:]
    assert f"<td>{idx[3]:%Y-%m-%d}</td><td>-10.00%</td>" in rows[0]  # deepest first
    assert "<td>not recovered</td>" in rows[1]
    assert "still below its peak at the last bar" in text


def _metrics_page(rows: dict[str, tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{k}</td><td>{a}</td><td>{b}</td></tr>" for k, (a, b) in rows.items())
    return f"<h3>Key Performance Metrics</h3><table><tbody>{body}</tbody></table><div id='eoy'>"


def test_metric_rows_whose_window_the_run_does_not_cover_read_n_a() -> None:
    short = _returns("2010-04-23", "2010-08-20")
    page = _metrics_page({"3M": ("-2.87%", "-13.99%"), "6M": ("-11.53%", "-27.74%"),
                          "1Y": ("-11.53%", "-27.74%"), "10Y (ann.)": ("-31.37%", "-63.16%"),
                          "Best Year": ("-11.53%", "-27.74%"), "Sharpe": ("-1.21", "-2.33")})
    out = qs_tables.fix_metrics_table(page, short, 252)
    for label in ("6M", "1Y", "10Y (ann.)", "Best Year"):
        assert f"<tr><td>{label}</td><td>n/a</td><td>n/a</td></tr>" in out
    assert "<tr><td>3M</td><td>-2.87%</td>" in out and "<td>-2.33</td>" in out
    assert "does not cover the row's period" in out
    long = _returns("2003-03-13", "2018-12-31")
    assert qs_tables.fix_metrics_table(page, long, 252) == page


def test_empty_quantstats_cells_read_n_a_not_a_bare_percent_sign() -> None:
    page = _metrics_page({"Max Drawdown": ("%", "%"), "Max DD Date": ("", "")})
    out = qs_tables.fix_metrics_table(page, _returns("2003-03-13", "2018-12-31"), 252)
    assert "<td>%</td>" not in out and "<td></td>" not in out
    assert out.count("<td>n/a</td>") == 4 and "quantstats has no value" in out
