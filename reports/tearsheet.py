"""One self-contained HTML tearsheet: quantstats page + a "Models" section."""

from __future__ import annotations

import html
import logging
import re
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import pandas as pd

from lstmknn.reports.offline import make_offline
from lstmknn.reports.periods import resolve_periods_per_year
from lstmknn.reports.qs_charts import replace_quantstats_charts
from lstmknn.reports.qs_tables import replace_quantstats_tables
from lstmknn.reports.sections import models_section

log = logging.getLogger(__name__)
_TITLE = re.compile(r"<title>.*?</title>", re.I | re.S)

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{margin:30px;font:13px/1.4 Arial,Helvetica,sans-serif}}
.container{{max-width:960px;margin:auto}}</style></head>
<body><div class="container"><h1>{title}</h1><p>{subtitle}</p></div>
</body></html>
"""


def prepare_returns(series: pd.Series | pd.DataFrame, name: str = "Strategy") -> pd.Series:
    """Float Series on a sorted, unique, tz-naive DatetimeIndex (NaN dropped).

    quantstats 0.0.86 compares the strategy index with a tz-naive benchmark index and
    raises ``TypeError: Cannot compare dtypes datetime64[.., UTC] and datetime64[..]``
    for tz-aware input, so time zones are converted to UTC and dropped.
    """
    if isinstance(series, pd.DataFrame):
        series = series.iloc[:, 0]
    s = pd.to_numeric(series, errors="coerce").astype(float)
    idx = pd.DatetimeIndex(pd.to_datetime(s.index))
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    s = pd.Series(s.to_numpy(), index=idx, name=name)
    s = s[~s.index.duplicated(keep="last")].sort_index()
    return s.dropna()


def align_benchmark(
    benchmark: pd.Series | None, index: pd.DatetimeIndex, label: str | None = None
) -> pd.Series | None:
    """Benchmark returns on exactly ``index`` (missing bars are 0), named ``label``
    (default: the series' own name, else "Benchmark").

    Passing an identical index keeps quantstats off its re-alignment path, which
    resamples to calendar days and would zero out an intraday benchmark.
    """
    if benchmark is None:
        return None
    name = label or str(getattr(benchmark, "name", None) or "Benchmark")
    b = prepare_returns(benchmark, name=name)
    return b.reindex(index).fillna(0.0)


def quantstats_html(
    returns: pd.Series,
    benchmark: pd.Series | None,
    periods_per_year: float,
    title: str,
    rf: float = 0.0,
) -> str:
    """The quantstats 0.0.86 HTML tearsheet as a string (PNG figures, no display).

    quantstats runs with ``match_dates=False``: its default starts both series at
    the later of their first non-zero returns, which drops the strategy's flat
    first bars and the benchmark's returns over them, so its buy-and-hold figures
    would cover a shorter span than ``summary.json``'s and the models section's.
    Here every figure covers the same bars: ``returns.index`` (the decision span).

    Runs with warnings silenced (pandas 3 ``Pandas4Warning`` on ``rename(inplace=)``,
    matplotlib 3.11 deprecations), the ``Arial`` font-fallback log muted, rcParams
    restored afterwards (quantstats sets ``font.family='Arial'`` at import) and any
    pyplot figure it leaves open closed. Then the page is corrected: the charts
    quantstats draws wrongly are redrawn (:mod:`reports.qs_charts`), its wrong
    tables and metric rows replaced (:mod:`reports.qs_tables`), the header
    shows the benchmark's name as given (quantstats upper-cases it) and the
    "CAGR﹪" label loses the U+FE6A glyph no page font has.
    """
    fm_log = logging.getLogger("matplotlib.font_manager")
    old_level = fm_log.level
    fm_log.setLevel(logging.ERROR)
    try:
        with mpl.rc_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import matplotlib.pyplot as plt
            import quantstats as qs

            before = set(plt.get_fignums())
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "qs.html"
                qs.reports.html(
                    returns,
                    benchmark,
                    rf=rf,
                    title=html.escape(title),
                    output=str(out),
                    periods_per_year=int(round(periods_per_year)),
                    figfmt="png",
                    match_dates=False,  # one span: see the docstring
                    strategy_title=returns.name or "Strategy",
                    benchmark_title=None if benchmark is None else benchmark.name,
                )
                page = out.read_text(encoding="utf-8")
            for num in set(plt.get_fignums()) - before:
                plt.close(num)
    finally:
        fm_log.setLevel(old_level)
    strategy_label = str(returns.name or "Strategy")
    if benchmark is not None:
        label = html.escape(str(benchmark.name))
        page = page.replace(f"Benchmark: {str(benchmark.name).upper()}", f"Benchmark: {label}", 1)
    page = page.replace("\ufe6a", "")
    bench_label = str(benchmark.name) if benchmark is not None else "Benchmark"
    page = replace_quantstats_charts(page, returns, benchmark, strategy_label, bench_label,
                                     periods_per_year)
    return replace_quantstats_tables(page, returns, benchmark, strategy_label, bench_label,
                                     periods_per_year)


def _insert_before_body_end(page: str, fragment: str) -> str:
    pos = page.lower().rfind("</body>")
    if pos < 0:
        return page + fragment
    return page[:pos] + fragment + "\n" + page[pos:]


def _returns_from_equity(equity: pd.DataFrame | None) -> pd.Series:
    if equity is None or equity.empty:
        raise ValueError("returns or equity with a 'return' column is required")
    frame = equity.set_index("date") if "date" in equity.columns else equity
    return frame["return"]


def write_tearsheet(
    path: str | Path,
    returns: pd.Series | None,
    benchmark: pd.Series | None,
    predictions: pd.DataFrame,
    models: Sequence[str],
    trades: pd.DataFrame | None,
    positions: pd.DataFrame | None,
    equity: pd.DataFrame | None,
    periods_per_year: float | None,
    title: str,
    extra_tables: Mapping[str, pd.DataFrame] | None = None,
    *,
    use_quantstats: bool = True,
    target_model: str = "fused",
    y: str = "y_true",
    rf: float = 0.0,
    n_trials: int = 1,
    benchmark_label: str = "Benchmark",
    verdict: Sequence[str] | None = None,
) -> Path:
    """Write one offline HTML file and return its path.

    The page is the quantstats tearsheet (``use_quantstats``) with a "Models"
    section inserted before ``</body>``; without quantstats (or if it raises, with a
    logged warning and a note in the page) a plain page carries the same section.
    ``returns`` None -> ``equity['return']``; ``periods_per_year`` None -> inferred
    from the returns index. All images are base64 PNG data URIs and every external
    URL is removed (:func:`reports.offline.make_offline`).

    ``n_trials`` is the number of configurations tried (``report.n_trials``), used
    by the deflated Sharpe ratio exactly as in ``summary.json``. ``benchmark_label``
    names the benchmark everywhere on the page (e.g. "Buy & hold sp500").
    ``verdict``: the sentences of :func:`reports.verdict.forecast_verdict`, shown
    at the top of the models section.
    """
    path = Path(path)
    raw = returns if returns is not None else _returns_from_equity(equity)
    r = prepare_returns(raw, name="Strategy")
    if r.empty:
        raise ValueError("no finite returns to report")
    b = align_benchmark(benchmark, r.index, label=benchmark_label)
    ppy = resolve_periods_per_year(periods_per_year, r.index)
    source = "given by the caller" if periods_per_year is not None else "inferred from bar spacing"
    page = None
    note = "quantstats tearsheet skipped (fast path)."
    if use_quantstats:
        try:
            page = quantstats_html(r, b, ppy, title, rf=rf)
        except Exception as exc:  # noqa: BLE001 - report must still be written
            log.warning("quantstats tearsheet failed, writing models report only: %r", exc)
            note = f"quantstats tearsheet failed: {type(exc).__name__}: {exc}"
    if page is None:
        page = _PAGE.format(
            title=html.escape(title),
            subtitle=html.escape(f"{r.index[0]:%Y-%m-%d} – {r.index[-1]:%Y-%m-%d} · {note}"),
        )
    preds = predictions.copy() if predictions is not None else pd.DataFrame(columns=[y])
    section = models_section(
        r,
        b,
        preds,
        models,
        trades,
        positions,
        equity,
        ppy,
        source,
        target_model=target_model,
        y=y,
        extra_tables=extra_tables,
        n_trials=n_trials,
        benchmark_label=benchmark_label,
        verdict=verdict,
    )
    page = _TITLE.sub(f"<title>{html.escape(title)}</title>", page, count=1)
    page = make_offline(_insert_before_body_end(page, section))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def write_model_report(
    path: str | Path,
    returns: pd.Series | None,
    benchmark: pd.Series | None,
    predictions: pd.DataFrame,
    models: Sequence[str],
    trades: pd.DataFrame | None = None,
    positions: pd.DataFrame | None = None,
    equity: pd.DataFrame | None = None,
    periods_per_year: float | None = None,
    title: str = "lstmknn report",
    extra_tables: Mapping[str, pd.DataFrame] | None = None,
    **kwargs: object,
) -> Path:
    """Fast path: :func:`write_tearsheet` without the quantstats part."""
    return write_tearsheet(
        path,
        returns,
        benchmark,
        predictions,
        models,
        trades,
        positions,
        equity,
        periods_per_year,
        title,
        extra_tables,
        use_quantstats=False,
        **kwargs,
    )


__all__ = [
    "write_tearsheet",
    "write_model_report",
    "prepare_returns",
    "quantstats_html",
    "align_benchmark",
]
