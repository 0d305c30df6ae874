"""Our own versions of the quantstats tables that quantstats 0.0.86 gets wrong.

* **EOY Returns vs Benchmark**: its "Multiplier" column divides the strategy's
  yearly return by the benchmark's, which prints 1009.73 for a year the
  benchmark ended at -0.00 % (and a meaningless sign whenever the benchmark
  lost); the column is dropped. A run of a year or less gets a sentence instead
  of a one-row table of a partial year.
* **Worst 10 Drawdowns**: "Recovered" holds the last day under water, and for a
  drawdown still open at the last bar that day is printed as its recovery. Ours
  gives the first bar back at the peak, or "not recovered".
* **Key Performance Metrics**: rows whose window is longer than the run (6M, 1Y,
  3Y/5Y/10Y (ann.), YTD, ... and the yearly rows of a run of a year or less)
  silently show the whole run's figure under the window's name; empty cells
  ("", "%") appear where quantstats had nothing. Both read "n/a" here, with a
  sentence under the table.

:func:`replace_quantstats_tables` swaps them into the page.
"""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd

from lstmknn.reports.qs_charts import compounded, longer_than_a_year, span_text, too_short
from lstmknn.reports.trading_metrics import drawdown_series

NA = "n/a"
BLANK_CELLS = {"", "%", "nan", "nan%", "-nan%", "inf%", "-inf%", "inf", "-inf", "nan days"}
YEAR_ROWS = ("Expected Yearly", "Best Year", "Worst Year", "Win Year")
TABLE_CSS = ("<style>#lk-ddinfo table td:nth-of-type(2),#lk-ddinfo table th:nth-of-type(2)"
             "{text-align:left}.lk-short,.lk-note{color:#555;font-size:12px}"
             ".lk-short{margin:8px 0 24px}</style>")


def window_starts(last: pd.Timestamp) -> dict[str, pd.Timestamp]:
    """Where each period row of quantstats' metrics table starts, for a run ending at
    ``last`` (quantstats' own windows: 3Y, 5Y, 10Y are 35, 59, 119 months back)."""
    return {
        "MTD": pd.Timestamp(last.year, last.month, 1),
        "3M": last - pd.DateOffset(months=3),
        "6M": last - pd.DateOffset(months=6),
        "YTD": pd.Timestamp(last.year, 1, 1),
        "1Y": last - pd.DateOffset(years=1),
        "3Y (ann.)": last - pd.DateOffset(months=35),
        "5Y (ann.)": last - pd.DateOffset(months=59),
        "10Y (ann.)": last - pd.DateOffset(months=119),
    }


def uncovered_rows(returns: pd.Series, periods_per_year: float) -> set[str]:
    """Metric rows whose window starts before the run's first bar (so quantstats
    would show a shorter span under the window's name), plus the yearly rows when
    the run is a year or less."""
    idx = returns.index
    if not len(idx):
        return set()
    first = idx[0]
    out = {name for name, start in window_starts(idx[-1]).items() if first > start}
    if not longer_than_a_year(returns, periods_per_year):
        out.update(YEAR_ROWS)
    return out


_ROW = re.compile(r"<tr><td>([^<]*)</td>((?:<td>[^<]*</td>)+)</tr>")
_CELL = re.compile(r"<td>([^<]*)</td>")


def fix_metrics_table(page: str, returns: pd.Series, periods_per_year: float) -> str:
    """The key-metrics rows whose window the run does not cover, and empty cells, as
    "n/a"; a sentence after the table says why when any was changed."""
    start = page.find("Key Performance Metrics")
    if start < 0:
        return page
    end = page.find("</table>", start)
    if end < 0:
        return page
    uncovered = uncovered_rows(returns, periods_per_year)
    changed = {"window": False, "blank": False}

    def row(m: re.Match) -> str:
        label = html.unescape(m.group(1)).strip()
        cells = _CELL.findall(m.group(2))
        if label in uncovered:
            changed["window"] = True
            cells = [NA] * len(cells)
        elif any(c.strip() in BLANK_CELLS for c in cells):
            changed["blank"] = True
            cells = [NA if c.strip() in BLANK_CELLS else c for c in cells]
        return f"<tr><td>{m.group(1)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"

    table = _ROW.sub(row, page[start:end])
    notes = []
    if changed["window"]:
        notes.append(f"n/a: the run ({span_text(returns)}) does not cover the row's period")
    if changed["blank"]:
        notes.append("n/a: quantstats has no value for this run")
    text = html.escape("; ".join(notes), quote=False)
    note = f'<p class="lk-note">{text}.</p>' if notes else ""
    close = end + len("</table>")
    return page[:start] + table + page[end:close] + note + page[close:]


def drawdown_periods(returns: pd.Series) -> pd.DataFrame:
    """One row per spell under water: ``start`` (first bar below the peak), ``valley``,
    ``last`` (last bar below), ``recovered`` (first bar back at the peak; NaT when
    the run ends under water), ``days`` (calendar days start..last, inclusive, as
    quantstats counts them) and ``drawdown`` (deepest, a fraction <= 0)."""
    dd = drawdown_series(returns)
    under = (dd < 0).to_numpy()
    cols = ["start", "valley", "last", "recovered", "days", "drawdown"]
    if not under.any():
        return pd.DataFrame(columns=cols)
    edges = np.diff(np.r_[0, under.astype(int), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # stop: exclusive
    idx = dd.index
    rows = []
    for a, z in zip(starts, stops, strict=True):
        spell = dd.iloc[a:z]
        rows.append({
            "start": idx[a], "valley": spell.idxmin(), "last": idx[z - 1],
            "recovered": idx[z] if z < len(idx) else pd.NaT,
            "days": int((idx[z - 1] - idx[a]).days + 1), "drawdown": float(spell.min()),
        })
    return pd.DataFrame(rows, columns=cols)


def drawdown_table_html(returns: pd.Series, top: int = 10) -> str:
    """The "Worst 10 Drawdowns" block: started, recovered (or "not recovered"),
    depth and days, deepest first."""
    periods = drawdown_periods(returns).sort_values("drawdown").head(top)
    title = f"<h3>Worst {top} Drawdowns</h3>"
    if periods.empty:
        return title + '<p class="lk-note">The strategy never fell below its running peak.</p>'
    body = "".join(
        f"<tr><td>{p.start:%Y-%m-%d}</td>"
        f"<td>{'not recovered' if pd.isna(p.recovered) else f'{p.recovered:%Y-%m-%d}'}</td>"
        f"<td>{p.drawdown * 100:.2f}%</td><td>{p.days}</td></tr>"
        for p in periods.itertuples()
    )
    note = ""
    if periods["recovered"].isna().any():
        note = ('<p class="lk-note">Not recovered: still below its peak at the last bar; its '
                "days run to the last bar.</p>")
    return (title + "<table><thead><tr><th>Started</th><th>Recovered</th><th>Drawdown</th>"
            f"<th>Days</th></tr></thead><tbody>{body}</tbody></table>{note}")


def eoy_table_html(
    returns: pd.Series,
    benchmark: pd.Series | None,
    strategy_label: str = "Strategy",
    benchmark_label: str = "Benchmark",
    periods_per_year: float = 252.0,
) -> str:
    """The end-of-year table: year, benchmark and strategy return, "Won" (+ when the
    strategy did better); no multiplier. A run of a year or less gets a sentence."""
    has_bench = benchmark is not None and len(benchmark) > 0
    title = "<h3>EOY Returns vs Benchmark</h3>" if has_bench else "<h3>EOY Returns</h3>"
    if not longer_than_a_year(returns, periods_per_year):
        return title + too_short("End-of-year table", f"the run covers {span_text(returns)}; "
                                 "yearly returns need more than a year of bars over at least "
                                 "two calendar years")
    strat = compounded(returns, "YE")
    esc = html.escape
    head = ["Year", *([benchmark_label] if has_bench else []), strategy_label,
            *(["Won"] if has_bench else [])]
    rows = []
    bench = compounded(benchmark, "YE").reindex(strat.index) if has_bench else None
    for when, value in strat.items():
        cells = [str(when.year)]
        if bench is not None:
            b = bench.loc[when]
            cells.append("n/a" if pd.isna(b) else f"{b * 100:.2f}%")
        cells.append(f"{value * 100:.2f}%")
        if bench is not None:
            b = bench.loc[when]
            cells.append("n/a" if pd.isna(b) else ("+" if value > b else "-"))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    first, last = returns.index[0], returns.index[-1]
    partial = []
    if (first - pd.Timestamp(first.year, 1, 1)).days > 7:
        partial.append(f"{first.year} from the first bar ({first:%d %b})")
    if (pd.Timestamp(last.year, 12, 31) - last).days > 7:
        partial.append(f"{last.year} up to the last bar ({last:%d %b})")
    note = (f'<p class="lk-note">Part years: {esc(", ".join(partial))}.</p>' if partial else "")
    return (title + "<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>" + note)


def _replace_element(page: str, div_id: str, new_id: str, content: str) -> str:
    """Replace ``<div id="div_id">...</div>`` (no nested divs) with a div ``new_id``
    (a new id: quantstats' CSS appends "%" to cells of ``#eoy`` and ``#ddinfo``)."""
    pattern = re.compile(rf'<div id="{re.escape(div_id)}">.*?</div>', re.S)
    return pattern.sub(lambda _: f'<div id="{new_id}">{content}</div>', page, count=1)


def replace_quantstats_tables(
    page: str,
    returns: pd.Series,
    benchmark: pd.Series | None,
    strategy_label: str = "Strategy",
    benchmark_label: str = "Benchmark",
    periods_per_year: float = 252.0,
) -> str:
    """``page`` with quantstats' EOY and drawdown tables replaced by ours and its key
    metrics corrected (:func:`fix_metrics_table`)."""
    r = pd.to_numeric(returns, errors="coerce").dropna()
    page = fix_metrics_table(page, r, periods_per_year)
    page = _replace_element(page, "eoy", "lk-eoy", eoy_table_html(
        r, benchmark, strategy_label, benchmark_label, periods_per_year))
    page = _replace_element(page, "ddinfo", "lk-ddinfo", drawdown_table_html(r))
    pos = page.lower().find("</head>")
    return page[:pos] + TABLE_CSS + page[pos:] if pos >= 0 else TABLE_CSS + page


__all__ = [
    "window_starts",
    "uncovered_rows",
    "fix_metrics_table",
    "drawdown_periods",
    "drawdown_table_html",
    "eoy_table_html",
    "replace_quantstats_tables",
]
