"""Self-contained HTML tearsheet: embedded PNGs only, no external URLs."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmknn.reports import plots
from lstmknn.reports.offline import external_urls, make_offline
from lstmknn.reports.tearsheet import (
    prepare_returns,
    quantstats_html,
    write_model_report,
    write_tearsheet,
)

MODELS = ["lstm", "knn", "fused", "train_mean", "persistence"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
URL = re.compile(r"https?://", re.I)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str | None] = []
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src"))
        for key in ("src", "href"):
            if a.get(key):
                self.refs.append(a[key])
        if tag == "link":
            self.refs.append(a.get("href") or "")


def _check_offline_page(text: str) -> _Collector:
    parser = _Collector()
    parser.feed(text)
    assert parser.imgs, "no images"
    for src in parser.imgs:
        assert src and src.startswith("data:image/png;base64,")
        payload = src.split(",", 1)[1]
        assert payload
        assert base64.b64decode(payload, validate=True).startswith(PNG_MAGIC)
    assert not [r for r in parser.refs if URL.match(r.strip())]
    assert not URL.search(text), URL.findall(text)[:5]
    return parser


def _inputs(n: int = 300, index: pd.DatetimeIndex | None = None) -> dict:
    rng = np.random.default_rng(11)
    idx = index if index is not None else pd.bdate_range("2021-01-04", periods=n)
    n = len(idx)
    y = rng.normal(3e-4, 0.01, n)
    preds = pd.DataFrame(
        {
            "date": idx,
            "fold": np.arange(n) * 4 // n,
            "y_true": y,
            "lstm": 0.2 * y + rng.normal(0, 0.004, n),
            "knn": rng.normal(0, 0.004, n),
            "train_mean": 2e-4,
            "persistence": np.r_[0.0, y[:-1]],
        }
    )
    preds["fused"] = 0.5 * preds["lstm"] + 0.5 * preds["knn"]
    preds["regime"] = np.where(np.arange(n) % 50 < 15, "volatile", "calm")
    preds["alpha"] = 0.5 + 0.3 * (preds["regime"] == "volatile")
    preds["target"] = (preds["fused"] > 0).astype(float)
    held = preds["target"].shift(1, fill_value=0.0).to_numpy()
    returns = pd.Series(held * y, index=idx)
    change = np.flatnonzero(np.diff(preds["target"].to_numpy()) != 0) + 1
    trades = pd.DataFrame(
        {
            "date": idx[change],
            "symbol": "SPY",
            "side": np.where(preds["target"].to_numpy()[change] > 0, "buy", "sell"),
            "size": 10.0,
            "price": 100.0,
            "commission": 0.05,
            "status": "Completed",
        }
    )
    value = 1e4 * (1 + returns).cumprod()
    return {
        "returns": returns,
        "benchmark": pd.Series(y, index=idx, name="SPY"),
        "predictions": preds,
        "models": MODELS,
        "trades": trades,
        "positions": pd.DataFrame({"SPY": 10.0 * preds["target"].to_numpy()}, index=idx),
        "equity": pd.DataFrame({"date": idx, "value": value.to_numpy(), "return": returns}),
    }


@pytest.fixture(scope="module")
def qs_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    pytest.importorskip("quantstats")
    path = tmp_path_factory.mktemp("ts") / "sub" / "tearsheet.html"
    out = write_tearsheet(
        path,
        periods_per_year=252.0,
        title="Synthetic <run>",
        extra_tables={"Config": pd.DataFrame({"key": ["window"], "value": [60]})},
        benchmark_label="Buy & hold SPY",
        **_inputs(),
    )
    assert out == path and path.exists()
    return path.read_text(encoding="utf-8")


def test_tearsheet_is_self_contained(qs_page: str) -> None:
    parser = _check_offline_page(qs_page)
    assert len(parser.imgs) >= 7 + 10  # our figures + quantstats' figures


def test_tearsheet_has_quantstats_and_models_sections(qs_page: str) -> None:
    assert "Key Performance Metrics" in qs_page  # quantstats part
    assert qs_page.count("</body>") == 1
    models_at = qs_page.index('id="lstmknn-models"')
    assert models_at < qs_page.index("</body>")
    section = qs_page[models_at:]
    assert "Annualisation factor: <b>252</b>" in section
    for name in [*MODELS, "zero", "dm_pvalue", "By regime", "MSE per fold", "Trades", "Config"]:
        assert name in section
    assert "Completed" in section and "total commission" in section
    assert "Synthetic &lt;run&gt;" in qs_page
    assert "<title>Synthetic &lt;run&gt;</title>" in qs_page and "<run>" not in qs_page


def test_benchmark_is_labelled_by_its_name_everywhere(qs_page: str) -> None:
    assert "Benchmark: Buy &amp; hold SPY" in qs_page  # quantstats header, not upper-cased
    assert "Equity vs Buy &amp; hold SPY" in qs_page
    assert "BENCHMARK" not in qs_page and ">benchmark<" not in qs_page
    assert "RETURN" not in qs_page
    assert "\ufe6a" not in qs_page  # quantstats' "CAGR" glyph no font has


def test_quantstats_eoy_chart_is_ours(qs_page: str) -> None:
    eoy = re.search(r'<div id="eoy_returns">(.*?)</div>', qs_page, re.S)
    assert eoy and 'alt="end-of-year returns"' in eoy.group(1)


def _table_rows(page: str) -> list[int]:
    return [t.count("<tr") for t in re.findall(r"<table.*?</table>", page, re.S)]


def _dsr(page: str) -> float:
    m = re.search(r"<td>dsr</td>\s*<td>([^<]+)</td>", page) or re.search(
        r"<th>dsr</th>\s*<td>([^<]+)</td>", page
    )
    assert m, "no dsr row"
    return float(m.group(1))


def test_many_folds_give_a_plot_and_the_csv_not_a_wall_of_numbers(tmp_path: Path) -> None:
    inputs = _inputs(600)
    inputs["predictions"]["fold"] = np.arange(600) // 10  # 60 folds
    text = write_model_report(tmp_path / "folds.html", periods_per_year=252.0, title="F",
                              **inputs).read_text(encoding="utf-8")
    assert max(_table_rows(text)) <= 30
    assert "fold_errors.csv" in text and "60 walk-forward folds" in text
    assert 'alt="per-fold MSE relative to zero forecast"' in text


def test_n_trials_is_the_one_used_for_the_deflated_sharpe(tmp_path: Path) -> None:
    from lstmknn.reports.significance import deflated_sharpe_ratio

    inputs = _inputs(400)
    inputs["returns"] = inputs["returns"] + 1e-3  # a Sharpe well above zero
    pages = {
        k: write_model_report(tmp_path / f"n{k}.html", periods_per_year=252.0, title="N",
                              n_trials=k, **inputs).read_text(encoding="utf-8")
        for k in (1, 50)
    }
    one, fifty = _dsr(pages[1]), _dsr(pages[50])
    assert one != fifty and fifty < one
    r = prepare_returns(inputs["returns"])
    assert fifty == pytest.approx(deflated_sharpe_ratio(r, 50), rel=1e-3)  # as summary.json
    assert "<b>50</b> configurations tried" in pages[50]


def test_zero_forecast_ic_reads_n_a(qs_page: str) -> None:
    section = qs_page[qs_page.index('id="lstmknn-models"'):]
    row = re.search(r"<td>zero</td>(.*?)</tr>", section, re.S)
    assert row and "<td>n/a</td>" in row.group(1)


def test_fast_path_and_inferred_periods(tmp_path: Path) -> None:
    hours = pd.DatetimeIndex(
        np.concatenate(
            [
                pd.date_range(f"{d:%Y-%m-%d} 09:30", f"{d:%Y-%m-%d} 15:30", freq="h")
                for d in pd.bdate_range("2024-01-01", periods=30)
            ]
        )
    )
    path = write_model_report(tmp_path / "fast.html", title="Fast", **_inputs(index=hours))
    text = path.read_text(encoding="utf-8")
    parser = _check_offline_page(text)
    assert len(parser.imgs) == 7
    assert "Key Performance Metrics" not in text
    assert "Annualisation factor: <b>1638</b>" in text and "inferred" in text


def test_quantstats_failure_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lstmknn.reports.tearsheet as ts

    def boom(*args: object, **kwargs: object) -> str:
        raise RuntimeError("simulated")

    monkeypatch.setattr(ts, "quantstats_html", boom)
    inputs = _inputs(60)
    inputs["returns"] = None  # taken from equity['return']
    path = write_tearsheet(tmp_path / "fb.html", periods_per_year=None, title="FB", **inputs)
    text = path.read_text(encoding="utf-8")
    assert "quantstats tearsheet failed: RuntimeError: simulated" in text
    _check_offline_page(text)


def test_quantstats_handles_tz_aware_and_misaligned_benchmark() -> None:
    pytest.importorskip("quantstats")
    idx = pd.bdate_range("2022-01-03", periods=120, tz="America/New_York")
    rng = np.random.default_rng(5)
    r = prepare_returns(pd.Series(rng.normal(0, 0.01, 120), index=idx))
    assert r.index.tz is None
    from lstmknn.reports.tearsheet import align_benchmark

    longer = pd.Series(rng.normal(0, 0.01, 200), index=pd.bdate_range("2021-09-01", periods=200))
    b = align_benchmark(longer, r.index)
    assert b.index.equals(r.index)
    page = quantstats_html(r, b, 252, "tz")
    assert "Key Performance Metrics" in page


def test_make_offline() -> None:
    page = (
        '<html><head><link rel="stylesheet" href="https://cdn.example.com/a.css">'
        '<link rel="icon" href="data:image/png;base64,AAAA">'
        '<script src="https://cdn.example.com/x.js"></script>'
        "<style>@import url('https://fonts.example.com/f.css'); "
        "body{background:url(http://x.example.com/b.png)}</style></head>"
        '<body onload="save()"><a href="http://quantstats.io" target="q">QuantStats</a>'
        '<img src="https://x.example.com/i.png"><img src="data:image/png;base64,AAAA">'
        "see https://example.org</body></html>"
    )
    out = make_offline(page)
    assert external_urls(out) == []
    assert "QuantStats" in out and "<a " not in out
    assert 'href="data:image/png;base64,AAAA"' in out
    assert out.count('src="data:image/png;base64,AAAA"') == 1
    assert "onload" not in out and "<script" not in out


def test_plot_functions_return_png_or_note() -> None:
    inp = _inputs(80)
    figures = plots.model_figures(
        inp["returns"],
        inp["benchmark"],
        inp["predictions"],
        MODELS,
        inp["trades"],
        inp["positions"],
    )
    assert len(figures) == 7
    _check_offline_page("".join(figures.values()))
    empty = pd.DataFrame()
    assert "no-data" in plots.plot_alpha_regime(empty)
    assert "no-data" in plots.plot_costs(None)
    assert "no-data" in plots.plot_equity(pd.Series([], dtype=float))
    assert "no-data" in plots.plot_fold_mse(empty, MODELS)
    # positions fall back to the target column
    assert "target position" in plots.plot_positions(None, inp["predictions"])


def _qs_metric(page: str, label: str) -> tuple[str, str]:
    """(benchmark, strategy) cells of a row of quantstats' key-metrics table."""
    m = re.search(rf"<tr><td>{re.escape(label)}</td><td>([^<]*)</td><td>([^<]*)</td></tr>", page)
    assert m, f"no {label} row"
    return m.group(1), m.group(2)


def test_quantstats_shows_the_same_buy_and_hold_span_and_figures_as_the_summary(
    tmp_path: Path,
) -> None:
    from lstmknn.reports.trading_metrics import strategy_metrics

    inputs = _inputs(300)
    inputs["returns"].iloc[:20] = 0.0  # the strategy is flat on its first bars
    page = write_tearsheet(tmp_path / "span.html", periods_per_year=252.0, title="S",
                           benchmark_label="Buy & hold SPY", **inputs).read_text(encoding="utf-8")
    idx = inputs["returns"].index
    assert f"{idx[0]:%d %b, %Y}".lstrip("0") in page.split("</h1>")[0]
    assert "matched dates" not in page
    bench = strategy_metrics(inputs["benchmark"], 252.0)
    assert _qs_metric(page, "Cumulative Return")[0] == f"{bench['total_return'] * 100:.2f}%"
    assert _qs_metric(page, "Sharpe")[0] == f"{bench['sharpe']:.2f}"


def test_the_verdict_opens_the_models_section(tmp_path: Path) -> None:
    lines = ["No edge: the fused forecast does not beat the zero forecast significantly.",
             "Against the baselines, ..."]
    text = write_model_report(tmp_path / "v.html", periods_per_year=252.0, title="V",
                              verdict=lines, **_inputs(120)).read_text(encoding="utf-8")
    section = text[text.index('id="lstmknn-models"'):]
    assert section.index("<b>No edge: the fused forecast") < section.index("<h3>")
    assert "<p>Against the baselines, ...</p>" in section


def test_a_short_run_page_leaves_out_what_it_is_too_short_for_and_has_no_blank_cells(
    tmp_path: Path,
) -> None:
    pytest.importorskip("quantstats")
    page = write_tearsheet(tmp_path / "short.html", periods_per_year=252.0, title="Short",
                           benchmark_label="Buy & hold SPY", **_inputs(83)).read_text("utf-8")
    _check_offline_page(page)
    qs_part = page[:page.index('id="lstmknn-models"')]
    for div in ("rolling_beta", "rolling_vol", "rolling_sharpe", "rolling_sortino",
                "eoy_returns", "monthly_dist"):
        block = re.search(rf'<div id="{div}">(.*?)</div>', qs_part, re.S)
        assert block and "left out" in block.group(1) and "<img" not in block.group(1), div
    assert "Multiplier" not in qs_part and "01-01 00" not in qs_part
    assert not re.search(r"<td>\s*%?\s*</td>", qs_part)  # no "%" or empty metric cells
    assert _qs_metric(page, "1Y") == ("n/a", "n/a")
    assert _qs_metric(page, "Max Drawdown")[1].endswith("%")
    assert _qs_metric(page, "Max Drawdown")[1] != "%"


def test_the_performance_table_reads_in_the_units_quantstats_uses(qs_page: str) -> None:
    from lstmknn.reports.trading_metrics import strategy_metrics

    section = qs_page[qs_page.index('id="lstmknn-models"'):]
    inputs = _inputs()
    total = strategy_metrics(prepare_returns(inputs["returns"]), 252.0)["total_return"]
    row = re.search(r"<th>total_return</th>\s*<td>([^<]+)</td>", section)
    assert row and row.group(1) == f"{total * 100:.2f}%"
    assert float(row.group(1).rstrip("%")) == float(_qs_metric(qs_page, "Cumulative Return")[1]
                                                    .rstrip("%"))  # quantstats drops a 0
    assert re.search(r"<th>total_commission</th>\s*<td>\d[\d,]*\.\d\d</td>", section)
