"""The quantstats charts we redraw: bars where the years are, labels that say the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from lstmknn.reports import qs_charts


def _returns(start: str = "2003-03-14", end: str = "2018-12-31", seed: int = 0) -> pd.Series:
    idx = pd.bdate_range(start, end)
    return pd.Series(np.random.default_rng(seed).normal(2e-4, 0.01, len(idx)), index=idx)


def _bars(ax) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() > 0]


def test_eoy_bars_sit_at_distinct_positions_with_one_label_per_year() -> None:
    r, b = _returns(), _returns(seed=1)
    fig = qs_charts.eoy_figure(r, b, "Strategy", "Buy & hold sp500")
    ax = fig.axes[0]
    years = [str(y) for y in range(2003, 2019)]
    ticks = ax.get_xticks()
    assert [t.get_text() for t in ax.get_xticklabels()] == years
    assert len(set(np.round(ticks, 6))) == len(years)
    bars = _bars(ax)
    assert len(bars) == 2 * len(years)
    centres = sorted(p.get_x() + p.get_width() / 2 for p in bars)
    assert len(set(np.round(centres, 6))) == len(bars)  # no two bars on top of each other
    # every bar lies next to its year's tick, inside the visible range
    lo, hi = ax.get_xlim()
    for c in centres:
        assert lo < c < hi
        assert np.min(np.abs(ticks - c)) < 0.5
    # heights are the compounded calendar-year returns
    strategy = sorted(bars, key=lambda p: p.get_x())[1::2]
    expected = (1 + r).groupby(r.index.year).prod() - 1
    assert [p.get_height() for p in strategy] == pytest.approx(expected.to_list())
    labels = ax.get_legend_handles_labels()[1]
    assert "Buy & hold sp500" in labels and "Strategy" in labels


def test_eoy_without_benchmark_draws_one_bar_per_year() -> None:
    fig = qs_charts.eoy_figure(_returns("2020-01-01", "2022-06-30"))
    ax = fig.axes[0]
    assert len(_bars(ax)) == 3
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2020", "2021", "2022"]


def test_percent_axes_label_five_percent_as_five_percent() -> None:
    r = _returns()
    months = pd.Series([-0.105, -0.08, -0.05, 0.0, 0.03, 0.06, 0.08] * 2,
                       index=pd.date_range("2010-01-31", periods=14, freq="ME"))
    for fig, axis in (
        (qs_charts.monthly_distribution_figure(r, _returns(seed=2)), "x"),
        (qs_charts.monthly_distribution_figure(months), "x"),  # ticks every 2.5 %
        (qs_charts.return_quantiles_figure(r), "y"),
        (qs_charts.eoy_figure(r), "y"),
    ):
        ax = fig.axes[0]
        fig.canvas.draw()
        get = ax.get_xticklabels if axis == "x" else ax.get_yticklabels
        ticks = ax.get_xticks() if axis == "x" else ax.get_yticks()
        for value, label in zip(ticks, get(), strict=True):
            shown = float(label.get_text().replace("\u2212", "-").rstrip("%"))
            assert shown == pytest.approx(value * 100, abs=1e-6), (axis, value, label)


def test_months_without_bars_are_blank_not_zero() -> None:
    table = qs_charts.monthly_table(_returns("2003-03-14", "2004-02-10"))
    assert table.loc[2003, [1, 2]].isna().all()
    assert table.loc[2004, list(range(3, 13))].isna().all()
    assert table.loc[2003, 3:12].notna().all()
    fig = qs_charts.monthly_heatmap_figure(_returns("2003-03-14", "2004-02-10"))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 12  # Mar 2003 .. Feb 2004


def test_compounded_drops_empty_periods() -> None:
    r = pd.Series([0.1, 0.1], index=pd.to_datetime(["2020-01-31", "2020-03-02"]))
    m = qs_charts.compounded(r, "ME")
    assert list(m.index.month) == [1, 3]


def test_replace_quantstats_charts_swaps_only_those_divs() -> None:
    page = (
        '<div id="returns"><img src="data:image/png;base64,KEEP"></div>'
        '<div id="eoy_returns"><img src="data:image/png;base64,OLD1" /></div>'
        '<div id="monthly_dist"><img src="data:image/png;base64,OLD2" /></div>'
        '<div id="monthly_heatmap"><img src="data:image/png;base64,OLD3" /></div>'
        '<div id="returns_dist"><img src="data:image/png;base64,OLD4" /></div>'
    )
    out = qs_charts.replace_quantstats_charts(page, _returns("2020-01-01", "2021-12-31"), None)
    assert "KEEP" in out
    assert not any(f"OLD{i}" in out for i in range(1, 5))
    assert out.count("data:image/png;base64,") == 5
    assert 'alt="end-of-year returns"' in out


def _short() -> pd.Series:
    return _returns("2010-04-23", "2010-08-20", seed=4)  # 86 bars, like sp500_members


def test_a_run_not_longer_than_the_window_gets_a_sentence_not_an_empty_rolling_chart() -> None:
    short = _short()
    frags = qs_charts.chart_fragments(short, _returns("2010-04-23", "2010-08-20", seed=5),
                                      periods_per_year=252)
    for div in ("rolling_beta", "rolling_vol", "rolling_sharpe", "rolling_sortino"):
        assert "<img" not in frags[div] and "left out" in frags[div]
        assert f"{len(short)} bars" in frags[div] and "126-bar" in frags[div]
    longer = _returns("2010-01-04", "2010-12-31")
    frags = qs_charts.chart_fragments(longer, longer * 0.5, periods_per_year=252)
    for div in ("rolling_beta", "rolling_vol", "rolling_sharpe", "rolling_sortino"):
        assert frags[div].startswith("<img")


def test_yearly_and_monthly_distribution_charts_need_enough_history() -> None:
    frags = qs_charts.chart_fragments(_short(), None, periods_per_year=252)
    assert "left out" in frags["eoy_returns"] and "more than a year" in frags["eoy_returns"]
    assert "left out" in frags["monthly_dist"] and "5 calendar months" in frags["monthly_dist"]
    assert frags["monthly_heatmap"].startswith("<img")  # the months it has, no year needed
    frags = qs_charts.chart_fragments(_returns("2016-01-04", "2018-12-31"), None, 252)
    assert frags["eoy_returns"].startswith("<img") and frags["monthly_dist"].startswith("<img")


def test_return_quantiles_leave_out_periods_with_too_few_values() -> None:
    fig = qs_charts.return_quantiles_figure(_short())
    ax = fig.axes[0]
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Per bar", "Weekly", "Monthly"]
    assert "quarterly, yearly" in ax.get_xlabel()


def test_daily_returns_are_each_bars_return_not_a_weekend_sawtooth() -> None:
    r = _short()
    fig = qs_charts.returns_per_bar_figure(r)
    (bars,) = fig.axes[0].collections
    tops = np.array([seg[1][1] for seg in bars.get_segments()])
    np.testing.assert_allclose(tops, r.to_numpy())  # one bar per trading day, no zeros between


def test_rolling_ratios_match_quantstats() -> None:
    qs = pytest.importorskip("quantstats")
    r = _returns("2015-01-02", "2016-12-30")
    np.testing.assert_allclose(qs_charts.rolling_ratio(r, 126, 252, "sharpe").dropna(),
                               qs.stats.rolling_sharpe(r, rolling_period=126,
                                                       periods_per_year=252).dropna(), rtol=1e-9)
    ours = qs_charts.rolling_ratio(r, 126, 252, "sortino").dropna()
    theirs = qs.stats.rolling_sortino(r, rolling_period=126, periods_per_year=252).dropna()
    np.testing.assert_allclose(ours, theirs.loc[ours.index], rtol=1e-9)


def test_rolling_volatility_keeps_both_lines_visible_when_they_coincide() -> None:
    r = _returns("2015-01-02", "2016-12-30")
    fig = qs_charts.rolling_volatility_figure(-r, r, 126, 252, "Strategy", "Buy & hold")
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    strat, bench = lines["Strategy"], lines["Buy & hold"]
    np.testing.assert_allclose(strat.get_ydata(), bench.get_ydata())  # a long/short twin
    assert strat.get_linewidth() > 2 * bench.get_linewidth()  # a band ...
    assert bench.get_zorder() > strat.get_zorder() and bench.get_linestyle() == "--"  # ... a line on it


def test_log_scaled_returns_have_distinct_ticks_for_a_short_run() -> None:
    fig = qs_charts.log_returns_figure(_short() - 0.002, _short() * 0.5)
    ax = fig.axes[0]
    fig.canvas.draw()
    low, high = ax.get_ylim()
    shown = [t.get_text() for t, v in zip(ax.get_yticklabels(), ax.get_yticks(), strict=True)
             if low <= v <= high]
    assert len(shown) >= 3 and len(set(shown)) == len(shown) and "0%" in shown
