"""Tearsheet figures read right for one symbol and for a universe (rows = symbol x date)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lstmknn.reports import plots
from lstmknn.reports.cross_section import (
    plot_cumulative_spread,
    plot_ic,
    plot_quantile_returns,
    quantile_returns,
    spread_series,
)

N_DATES = 60


def _universe(n_symbols: int, n_dates: int = N_DATES, seed: int = 3) -> pd.DataFrame:
    """Long predictions frame, one row per symbol and date, with known per-date values."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2022-01-03", periods=n_dates)
    symbols = [f"S{i:02d}" for i in range(n_symbols)]
    frame = pd.MultiIndex.from_product([dates, symbols], names=["date", "symbol"]).to_frame(index=False)
    n = len(frame)
    frame["y_true"] = rng.normal(5e-4, 0.01, n)
    frame["fused"] = 0.1 * frame["y_true"] + rng.normal(0, 0.002, n)
    sym = frame["symbol"].str[1:].astype(int).to_numpy()
    # symbol i is volatile on date d when i < d % n_symbols: share volatile = (d % n) / n
    day = frame["date"].map({d: k for k, d in enumerate(dates)}).to_numpy()
    frame["regime"] = np.where(sym < day % n_symbols, "volatile", "calm")
    frame["alpha"] = np.where(frame["regime"] == "volatile", 0.4, 0.7)
    # long the first 3 names at 0.2, short the last one at -0.1
    frame["target"] = np.where(sym < 3, 0.2, np.where(sym == n_symbols - 1, -0.1, 0.0))
    return frame


def _rendered(fig: Figure) -> Figure:
    """Lay the figure out and draw it exactly as the tearsheet does."""
    assert plots.fig_to_img(fig).startswith("<img")
    return fig


def _data_lines(fig: Figure) -> list[Line2D]:
    return [ln for ax in fig.axes for ln in ax.get_lines() if not ln.get_label().startswith("_")]


def _legend_clear_of_axes(fig: Figure) -> None:
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 1
    box = legends[0].get_window_extent(renderer)
    for ax in fig.axes:
        assert not box.overlaps(ax.bbox), (box, ax.bbox)
    assert box.y0 >= 0 and box.x0 >= 0 and box.x1 <= fig.bbox.x1  # and it is on the figure


@pytest.mark.parametrize("n", [2, 20])
def test_universe_alpha_is_one_mean_point_per_date_with_the_volatile_share(n: int) -> None:
    preds = _universe(n)
    fig = _rendered(plots.alpha_regime_figure(preds))
    (alpha,) = [ln for ln in _data_lines(fig) if "alpha" in ln.get_label()]
    assert len(alpha.get_xdata()) == N_DATES
    expected = preds.groupby("date")["alpha"].mean().to_numpy()
    np.testing.assert_allclose(alpha.get_ydata(), expected)
    share = next(c for ax in fig.axes for c in ax.collections if "volatile" in c.get_label())
    top = share.get_paths()[0].vertices[:, 1].max()
    assert top == pytest.approx((n - 1) / n)  # the largest share of names volatile on a date
    assert "share of symbols" in share.get_label()
    assert "mean alpha" in alpha.get_label()
    _legend_clear_of_axes(fig)


def test_single_symbol_alpha_keeps_one_point_per_bar() -> None:
    one = _universe(1)
    fig = _rendered(plots.alpha_regime_figure(one))
    (alpha,) = _data_lines(fig)
    assert alpha.get_label() == "alpha"
    assert len(alpha.get_xdata()) == N_DATES
    assert fig.axes[0].get_title() == "Fusion weight alpha and regime"


def test_universe_cumulative_forecast_uses_per_date_cross_sectional_means() -> None:
    preds = _universe(20)
    fig = _rendered(plots.cumulative_forecast_figure(preds, "fused"))
    realised, fused = _data_lines(fig)
    per_date = preds.groupby("date")[["y_true", "fused"]].mean()
    assert len(realised.get_xdata()) == N_DATES
    np.testing.assert_allclose(realised.get_ydata(), per_date["y_true"].cumsum())
    np.testing.assert_allclose(fused.get_ydata(), per_date["fused"].cumsum())
    assert "per-date mean across 20 symbols" in fig.axes[0].get_title()


def test_single_symbol_cumulative_forecast_is_the_plain_cumulative_sum() -> None:
    one = _universe(1)
    fig = _rendered(plots.cumulative_forecast_figure(one, "fused"))
    realised, _ = _data_lines(fig)
    np.testing.assert_allclose(realised.get_ydata(), one["y_true"].cumsum())
    assert fig.axes[0].get_title() == "Cumulative fused forecast vs realised return"


def test_twenty_symbols_show_exposure_and_name_counts_not_twenty_lines() -> None:
    preds = _universe(20)
    fig = _rendered(plots.positions_figure(None, preds))
    lines = _data_lines(fig)
    assert len(lines) <= 4
    by_label = {ln.get_label().split(",")[0].split(" (")[0]: ln for ln in lines}
    assert set(by_label) == {"gross exposure", "net exposure", "names long", "names short"}
    for ln in lines:
        assert len(ln.get_xdata()) == N_DATES
    # constant book: 3 x 0.2 long and 0.1 short every date
    np.testing.assert_allclose(by_label["gross exposure"].get_ydata(), 0.7)
    np.testing.assert_allclose(by_label["net exposure"].get_ydata(), 0.5)
    np.testing.assert_allclose(by_label["names long"].get_ydata(), 3)
    np.testing.assert_allclose(by_label["names short"].get_ydata(), 1)
    _legend_clear_of_axes(fig)


@pytest.mark.parametrize("n", [2, 5])
def test_a_few_symbols_keep_one_line_each_with_the_legend_off_the_data(n: int) -> None:
    fig = _rendered(plots.positions_figure(None, _universe(n)))
    labels = [ln.get_label() for ln in _data_lines(fig)]
    assert labels == [f"S{i:02d} (21-bar mean)" for i in range(n)]
    _legend_clear_of_axes(fig)


def test_single_symbol_position_puts_its_legend_off_the_data() -> None:
    # inside, "upper left" covered the 21-bar mean of a position held at +1 (sp500 run)
    fig = _rendered(plots.positions_figure(None, _universe(1)))
    assert [ln.get_label() for ln in _data_lines(fig)] == ["S00 (21-bar mean)"]
    _legend_clear_of_axes(fig)


@pytest.mark.parametrize("figure", ["equity", "alpha", "cumulative", "costs"])
def test_single_symbol_figures_keep_their_legend_off_the_data(figure: str) -> None:
    one = _universe(1)
    returns = pd.Series(one["y_true"].to_numpy(), index=pd.DatetimeIndex(one["date"]))
    trades = pd.DataFrame({"date": one["date"], "commission": 1.0, "slippage": 1.0})
    fig = {"equity": lambda: plots.equity_figure(returns, returns * 0.5, "bench"),
           "alpha": lambda: plots.alpha_regime_figure(one),
           "cumulative": lambda: plots.cumulative_forecast_figure(one, "fused"),
           "costs": lambda: plots.costs_figure(trades)}[figure]()
    _legend_clear_of_axes(_rendered(fig))


def test_mse_per_fold_plots_each_folds_own_ratio_and_labels_the_cumulative_one() -> None:
    rng = np.random.default_rng(0)
    n = 400
    y = rng.normal(0, 0.01, n)
    fold = np.arange(n) // 10
    shrink = 0.2 * np.sin(fold) ** 2  # each fold its own ratio (1 - shrink)^2, 0.64 to 1
    preds = pd.DataFrame({"fold": fold, "y_true": y, "fused": shrink * y,
                          "persistence": np.r_[0.0, y[:-1]]})
    fig = _rendered(plots.fold_mse_figure(preds, ["fused", "persistence"]))
    top, bottom = fig.axes
    assert top.get_ylabel() == "per fold" and bottom.get_ylabel() == "cumulative"
    per_fold = preds.assign(e=(preds["fused"] - y) ** 2, z=y ** 2).groupby("fold")
    expected = (per_fold["e"].mean() / per_fold["z"].mean()).to_numpy()
    (fused_top,) = [ln for ln in top.get_lines() if ln.get_label() == "fused"]
    np.testing.assert_allclose(fused_top.get_ydata(), expected)  # not a running ratio
    whole = ((preds["fused"] - y) ** 2).sum() / (y ** 2).sum()
    (fused_cum,) = [ln for ln in bottom.get_lines() if ln.get_label().startswith("fused")]
    assert fused_cum.get_ydata()[-1] == pytest.approx(whole)
    assert f"all folds {whole:.3f}" in fused_cum.get_label()
    (pers,) = [ln for ln in bottom.get_lines() if ln.get_label().startswith("persistence")]
    assert "off scale" in pers.get_label()  # about 2: outside the range, said so
    _legend_clear_of_axes(fig)


def test_model_figures_title_says_cross_sectional_mean_only_for_a_universe() -> None:
    returns = pd.Series(0.0, index=pd.bdate_range("2022-01-03", periods=N_DATES))
    many = plots.model_figures(returns, None, _universe(3), ["fused"])
    one = plots.model_figures(returns, None, _universe(1), ["fused"])
    assert "Cumulative fused forecast vs realised (per-date mean across symbols)" in many
    assert "Cumulative fused forecast vs realised" in one


# --- cross-section figures ---------------------------------------------------

def _font_sizes(fig: Figure) -> set[float]:
    ax = fig.axes[0]
    texts = [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.get_yticklabels()]
    return {t.get_fontsize() for t in texts if t.get_text()}


def test_cumulative_spread_is_in_percent_with_a_labelled_axis() -> None:
    spread = pd.Series([0.01, -0.005, 0.02], index=pd.bdate_range("2022-01-03", periods=3))
    fig = _rendered(plot_cumulative_spread(spread))
    (line,) = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata()) == 3]
    np.testing.assert_allclose(line.get_ydata(), [1.0, 0.5, 2.5])
    label = fig.axes[0].get_ylabel()
    assert "top-minus-bottom" in label and "(%)" in label


def test_quantile_bars_share_the_size_and_fonts_of_the_ic_figure() -> None:
    preds = _universe(20)
    ic = pd.Series([0.1, -0.05, 0.2], index=pd.bdate_range("2022-01-03", periods=3))
    quant = plot_quantile_returns(quantile_returns(preds, "fused"))
    ic_fig = plot_ic(ic)
    spread_fig = plot_cumulative_spread(spread_series(preds, "fused"))
    assert tuple(quant.get_size_inches()) == tuple(ic_fig.get_size_inches()) == plots.FIGSIZE
    assert tuple(spread_fig.get_size_inches()) == plots.FIGSIZE
    assert _font_sizes(quant) == _font_sizes(ic_fig) == _font_sizes(spread_fig)
    # the same settings as the models section's figures
    equity = plots._build(lambda ax: (ax.set_title("t"), ax.set_ylabel("y"), ax.plot([0, 1])))
    assert _font_sizes(quant) == _font_sizes(equity)


def test_cumulative_costs_draw_commission_slippage_and_their_total() -> None:
    dates = pd.bdate_range("2022-01-03", periods=4)
    trades = pd.DataFrame({"date": dates, "commission": [1.0, 2.0, 0.0, 3.0],
                           "slippage": [0.5, 0.5, 0.0, 1.0]})
    fig = _rendered(plots.costs_figure(trades))
    final = {ln.get_label().split(" (")[0]: ln.get_ydata()[-1] for ln in _data_lines(fig)}
    assert final == pytest.approx({"total costs": 8.0, "commission": 6.0, "slippage": 2.0})
    only = _rendered(plots.costs_figure(trades.drop(columns="slippage")))
    assert "slippage not recorded" in only.axes[0].get_title()
    assert [ln.get_label().split(" (")[0] for ln in _data_lines(only)] == ["commission"]


def test_the_rank_ic_legend_sits_under_the_axes_not_on_the_first_bars() -> None:
    ic = pd.Series(np.linspace(-0.3, 0.3, 60), index=pd.bdate_range("2022-01-03", periods=60))
    _legend_clear_of_axes(_rendered(plot_ic(ic)))
