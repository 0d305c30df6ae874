import numpy as np
import pandas as pd
import pytest

from lstmknn.engine.backtest import run_backtest
from lstmknn.engine.config import with_overrides
from lstmknn.engine.params import execution_params, strategy_for
from lstmknn.strategies.execution import execute


def test_backtest_trades_the_targets_at_the_next_open_with_costs(small_cfg, small_csv):
    run = run_backtest([str(small_csv)], small_cfg)
    pred, trades = run.predictions, run.result.trades
    prices = pd.read_csv(small_csv, parse_dates=["Date"], index_col="Date")
    filled = trades[trades["status"] == "filled"]
    assert len(filled) > 5
    slip = small_cfg.execution.slippage
    for _, t in filled.head(20).iterrows():
        opened = prices.loc[t["date"], "Open"]
        expected = opened * (1 + slip) if t["side"] == "buy" else opened * (1 - slip)
        assert np.isclose(t["price"], expected)
        assert np.isclose(t["commission"], small_cfg.execution.commission * t["size"] * t["price"])
        # it was decided at the previous decision bar's close
        decided = pred["date"][pred["date"] < t["date"]].iloc[-1]
        assert prices.index.get_loc(t["date"]) == prices.index.get_loc(decided) + 1


def test_precomputed_predictions_can_be_traded_again_and_twin_agrees_with_backtrader(small_cfg, small_csv):
    run = run_backtest([str(small_csv)], small_cfg)
    prices = {"small": pd.read_csv(small_csv, parse_dates=["Date"], index_col="Date")
              .rename(columns=str.lower).rename_axis("date")}
    cfg = with_overrides(small_cfg, {"signal.long_only": True})
    again = strategy_for(cfg, 252).targets(run.predictions)
    bt = execute(prices, again, execution_params(cfg), engine="backtrader")
    vec = execute(prices, again, execution_params(cfg), engine="vectorized")
    assert (again["target"] >= 0).all()
    np.testing.assert_allclose(bt.equity["value"], vec.equity["value"], rtol=1e-9)


def test_portfolio_of_two_symbols_trades_both_in_one_account(small_cfg, sp500, tmp_path):
    from tests.helpers import write_csv

    a = write_csv(sp500.iloc[:420], tmp_path / "aaa.csv")
    b = write_csv(sp500.iloc[:420].drop(sp500.index[[300, 310, 320]]) * [1, 1, 1, 1, 2], tmp_path / "bbb.csv")
    run = run_backtest([str(a), str(b)], small_cfg)
    assert set(run.predictions["symbol"]) == {"aaa", "bbb"}
    assert set(run.result.trades["symbol"]) == {"aaa", "bbb"}
    assert run.predictions.groupby("date")["target"].sum().abs().max() <= 1.0 + 1e-12
    assert "forecast_by_symbol" in run.summary


def test_hourly_bars_are_annualised_as_hourly_not_daily(small_cfg, sp500, tmp_path):

    hours = pd.date_range("2021-01-04 09:30", periods=4000, freq="h")
    hours = hours[(hours.day_of_week < 5) & (hours.hour >= 9) & (hours.hour <= 15)][:420]
    frame = sp500.iloc[:420].copy()
    frame.index = pd.DatetimeIndex(hours, name="date")
    path = tmp_path / "hourly.csv"
    out = frame.rename(columns=str.capitalize).rename_axis("Date").reset_index()
    out.to_csv(path, index=False)
    run = run_backtest([str(path)], small_cfg)
    assert run.summary["periods_per_year"] == pytest.approx(252 * 7, rel=0.1)
    assert run.summary["strategy"]["periods_per_year"] == run.summary["periods_per_year"]


def test_symbols_that_start_and_stop_share_capital_only_while_they_trade(small_cfg, sp500, tmp_path):
    from tests.helpers import write_csv

    early = write_csv(sp500.iloc[:520], tmp_path / "early.csv")   # ends 100 bars before late
    late = write_csv(sp500.iloc[100:620], tmp_path / "late.csv")  # starts 100 bars later
    run = run_backtest([str(early), str(late)], small_cfg)
    pred = run.predictions
    alone = pred.groupby("date")["symbol"].transform("size") == 1
    assert alone.any()
    lone = pred[alone & (pred["fused"].abs() > small_cfg.cost_rate)]
    assert (lone["target"].abs().isin([0.0, 1.0])).all()  # a lone symbol gets all the capital
    spans = {s["symbol"]: s for s in run.summary["symbols"]}
    assert spans["early"]["closed_out"] is not None and spans["late"]["closed_out"] is None
    assert spans["early"]["last_bar"] == sp500.index[519].strftime("%Y-%m-%d")
    positions = run.result.positions
    after = positions.index > sp500.index[519]
    assert (positions.loc[after, "early"].fillna(0) == 0).all()  # not held at a frozen price


def test_close_only_universe_trades_at_the_next_close_and_says_so(small_cfg, tmp_path):
    import gzip

    from lstmknn.data.sources import bundled_path

    with gzip.open(bundled_path("us20"), "rt") as f:
        long = pd.read_csv(f)
    long = long[long["Symbol"].isin(["KO", "PEP", "XOM"])].groupby("Symbol").head(420)
    path = tmp_path / "three.csv"
    long.to_csv(path, index=False)
    run = run_backtest([str(path)], small_cfg)
    assert sorted(run.predictions["symbol"].unique()) == ["KO", "PEP", "XOM"]
    assert {d["fills"] for d in run.summary["data"]} == {"next close"}
    assert {tuple(d["available"]) for d in run.summary["data"]} == {("close",)}
    closes = long.assign(Date=pd.to_datetime(long["Date"])).set_index(["Date", "Symbol"])["Close"]
    filled = run.result.trades[run.result.trades["status"] == "filled"]
    assert len(filled) > 3
    slip = small_cfg.execution.slippage
    for _, t in filled.head(10).iterrows():
        close = closes.loc[(t["date"], t["symbol"])]
        assert np.isclose(t["price"], close * (1 + slip if t["side"] == "buy" else 1 - slip))


def test_a_pooled_rank_traded_universe_keeps_the_contract_and_the_twin_agrees(small_cfg, tmp_path):
    import json

    from lstmknn.data.synthetic import make_universe, to_price_data
    from lstmknn.engine.cli import main

    universe = to_price_data(make_universe(8, 260, ic=0.1, seed=3, staggered=True))
    for d in universe:
        write_csv_frame = d.frame.rename(columns=str.capitalize).rename_axis("Date").reset_index()
        write_csv_frame.to_csv(tmp_path / f"{d.symbol}.csv", index=False)
    cfg = with_overrides(small_cfg, {"walk_forward.train_window": 80, "walk_forward.step": 20,
                                     "model.scope": "pooled", "signal.sizing": "rank",
                                     "signal.top_k": 3, "signal.bottom_k": 1,
                                     "signal.min_change": 0.01})
    run = run_backtest(universe, cfg)
    pred, folds = run.predictions, run.folds
    assert not pred.duplicated(["date", "symbol"]).any()
    assert len(folds) == folds["fold"].nunique()  # one row per fold: one fit serves every symbol
    for model in ("lstm", "knn", "fused", "train_mean"):
        assert {"ic", "rank_ic", "icir", "ic_tstat", "positive_share", "n_dates"} <= set(
            run.summary["cross_section"][model])
    assert {"mean", "spread"} <= set(run.summary["quantiles"])
    gross = pred.groupby("date")["target"].apply(lambda t: t.abs().sum())
    assert gross.max() <= 1.0 + 1e-12 and (pred["target"] < 0).any()
    prices = {d.symbol: d.frame for d in universe}
    twin = execute(prices, pred, execution_params(cfg), engine="vectorized")
    np.testing.assert_allclose(run.result.equity["value"], twin.equity["value"], rtol=1e-9)
    # the same run from the command line on a folder of CSVs, with the contract in summary.json
    toml = tmp_path / "u.toml"
    toml.write_text('seed = 7\n[walk_forward]\ntrain_window = 80\nstep = 20\n'
                    '[lstm]\nlookback = 5\nhidden_size = 8\nhead_size = 4\nepochs = 3\n'
                    'batch_size = 64\ndevice = "cpu"\n[knn]\nn_neighbors = 10\n'
                    '[model]\nscope = "pooled"\n[signal]\nsizing = "rank"\ntop_k = 3\n'
                    'min_change = 0.01\n[report]\ntearsheet = false\n')
    out = tmp_path / "run"
    assert main(["backtest", "--data", str(tmp_path), "--config", str(toml), "--out", str(out),
                 "--quiet", "--no-cache"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_scope"] == "pooled" and "fused" in summary["cross_section"]


def test_symbol_spans_write_daily_bars_as_dates_and_intraday_bars_with_their_time(sp500):
    from lstmknn.data.prices import PriceData
    from lstmknn.engine.backtest import symbol_spans

    early, late = sp500.iloc[:10], sp500.iloc[:12]
    pred = pd.DataFrame({"date": [*early.index[5:], *late.index[5:]],
                         "symbol": ["a"] * 5 + ["b"] * 7})
    spans = symbol_spans([PriceData("a", early, "a.csv", ""), PriceData("b", late, "b.csv", "")],
                         pred)
    assert spans[0] == {"symbol": "a", "first_bar": "1999-01-04", "last_bar": "1999-01-15",
                        "first_decision": "1999-01-11", "last_decision": "1999-01-15",
                        "closed_out": "1999-01-15"}
    hours = pd.DatetimeIndex(pd.date_range("2021-01-04 22:00", periods=4, freq="h"), name="date")
    spans = symbol_spans([PriceData("h", sp500.iloc[:4].set_axis(hours), "h.csv", "")],
                         pd.DataFrame({"date": hours[2:], "symbol": "h"}))
    assert spans[0]["first_decision"] == "2021-01-05T00:00:00"
    assert spans[0]["last_bar"] == "2021-01-05T01:00:00"


def test_costs_in_the_summary_and_trades_csv_are_commission_plus_slippage(small_cfg, small_csv, tmp_path):
    run = run_backtest([str(small_csv)], small_cfg, tmp_path / "run")
    st, res = run.summary["strategy"], run.result
    assert st["commission_paid"] == pytest.approx(res.trades["commission"].sum())
    assert st["slippage_cost"] == pytest.approx(res.slippage_cost) and st["slippage_cost"] > 0
    assert st["costs"] == pytest.approx(st["commission_paid"] + st["slippage_cost"])
    saved = pd.read_csv(tmp_path / "run" / "trades.csv")
    assert saved["slippage"].sum() == pytest.approx(st["slippage_cost"])


def test_the_summary_stores_the_verdict_the_page_and_cli_print(small_cfg, small_csv):
    from lstmknn.reports.verdict import forecast_verdict

    run = run_backtest([str(small_csv)], small_cfg)
    verdict = run.summary["verdict"]
    assert verdict["lines"] == forecast_verdict(run.summary)["lines"]
    assert verdict["headline"].startswith(("Edge:", "No edge:"))
    assert {c["against"] for c in verdict["comparisons"]} == {
        "zero", "train_mean", "persistence", "lstm", "knn"}
