"""The public Python API: DataFrames in, objects out; strategies as code; the same numbers as the
command line."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

import lstmknn
from lstmknn.engine.cli import main
from tests.helpers import TINY, write_csv

CFG = {**copy.deepcopy(TINY), "walk_forward": {"train_window": 150, "step": 50}}


@pytest.fixture(scope="module")
def spx(sp500) -> pd.DataFrame:
    """yfinance-shaped: capitalised columns, dates in a ``Date`` index."""
    return sp500.iloc[:420].rename(columns=str.capitalize).rename_axis("Date")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("api-cache")


def test_the_package_exports_its_surface_and_a_version():
    assert set(lstmknn.__all__) <= set(dir(lstmknn))
    assert isinstance(lstmknn.__version__, str) and lstmknn.__version__
    for name in lstmknn.__all__:
        obj = getattr(lstmknn, name)
        if callable(obj):
            assert obj.__doc__, name


def test_a_dataframe_a_dict_a_long_frame_and_a_path_give_identical_predictions(spx, cache,
                                                                               tmp_path):
    runs = {
        "frame": lstmknn.backtest(spx.rename_axis("Date"), CFG, cache=cache),
        "lower": lstmknn.backtest(spx.rename(columns=str.lower), CFG, cache=cache),
        "dict": lstmknn.backtest({"asset": spx}, CFG, cache=cache),
        "long": lstmknn.backtest(spx.reset_index().assign(Symbol="asset"), CFG, cache=cache),
        "path": lstmknn.backtest(f"asset={write_csv(spx.rename(columns=str.lower), tmp_path / 'x.csv')}",
                                 CFG, cache=cache),
    }
    ref = runs.pop("frame").predictions
    for name, run in runs.items():
        pd.testing.assert_frame_equal(run.predictions, ref, check_exact=True, obj=name)


def test_a_bundled_name_and_its_dataframe_give_identical_predictions(cache):
    from lstmknn.data.sources import load_sources

    cfg = {**CFG, "walk_forward": {"train_window": 150, "step": 1000}}
    frame = load_sources(["msft"])[0].frame
    by_name = lstmknn.backtest("msft", cfg, cache=cache, engine="vectorized")
    by_frame = lstmknn.backtest({"msft": frame}, cfg, cache=cache, engine="vectorized")
    pd.testing.assert_frame_equal(by_name.predictions, by_frame.predictions, check_exact=True)


def test_the_run_gives_pandas_objects_indexed_by_date(spx, cache):
    run = lstmknn.backtest(spx, CFG, cache=cache)
    stats = run.stats
    assert stats["Return [%]"] == pytest.approx(100 * run.summary["strategy"]["total_return"])
    assert stats["Start"] == run.equity.index[0] and stats["# Trades"] > 0
    assert isinstance(run.equity.index, pd.DatetimeIndex) and "value" in run.equity
    assert isinstance(run.trades.index, pd.DatetimeIndex)
    assert run.predictions.index.names == ["date", "symbol"]
    table = run.forecasts
    assert {"lstm", "knn", "fused", "zero"} <= set(table.index)
    assert table.loc["zero", "mse_vs_zero"] == 1.0 and "dm_p_value" in table
    assert "Sharpe" in repr(run) and "<img" in run._repr_html_()
    fig = run.plot()
    assert len(fig.axes) == 2


def test_save_and_load_round_trip_every_table(spx, cache, tmp_path):
    run = lstmknn.backtest(spx, CFG, cache=cache)
    folder = run.save(tmp_path / "run")
    assert (folder / "summary.json").is_file() and (folder / ".lstmknn-run").exists()
    back = lstmknn.load(folder)
    pd.testing.assert_frame_equal(back.predictions, run.predictions, check_exact=True)
    pd.testing.assert_frame_equal(back.equity, run.equity, check_exact=True)
    pd.testing.assert_frame_equal(back.trades.reset_index(), run.trades.reset_index(),
                                  check_exact=True, check_dtype=False)
    pd.testing.assert_frame_equal(back.positions, run.positions, check_exact=True,
                                  check_freq=False)
    pd.testing.assert_series_equal(back.benchmark, run.benchmark, check_exact=True,
                                   check_names=False, check_freq=False)
    assert back.stats.equals(run.stats)
    page = back.tearsheet(tmp_path / "page.html")
    assert page.read_text().startswith("<!DOCTYPE html>") or "<html" in page.read_text()[:500]


def test_the_cli_run_folder_loads_as_the_same_run(spx, cache, tmp_path):
    csv = write_csv(spx.rename(columns=str.lower), tmp_path / "asset.csv")
    run = lstmknn.backtest(csv, CFG, cache=cache)
    from tests.helpers import write_config

    toml = write_config(tmp_path / "c.toml", {"walk_forward": CFG["walk_forward"],
                                              "lstm": CFG["lstm"]})
    toml.write_text(toml.read_text().replace("seed = 7", "seed = 11"))
    assert main(["backtest", "--data", str(csv), "--config", str(toml), "--out",
                 str(tmp_path / "cli"), "--cache", str(cache), "--quiet"]) == 0
    cli = lstmknn.load(tmp_path / "cli")
    pd.testing.assert_frame_equal(cli.predictions, run.predictions, check_exact=True)


def test_the_signal_is_the_clis_record(spx, cache, tmp_path, capsys):
    csv = write_csv(spx.rename(columns=str.lower), tmp_path / "asset.csv")
    ours = lstmknn.signal(csv, CFG, cache=cache, asof="2000-06-01")
    from tests.helpers import write_config

    toml = write_config(tmp_path / "c.toml", {"walk_forward": CFG["walk_forward"],
                                              "lstm": CFG["lstm"]})
    toml.write_text(toml.read_text().replace("seed = 7", "seed = 11"))
    capsys.readouterr()
    assert main(["signal", "--data", str(csv), "--config", str(toml), "--cache", str(cache),
                 "--asof", "2000-06-01", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(ours[0]))


def test_config_in_code_overrides_by_section_and_lists_unknown_keys():
    cfg = lstmknn.Config(lstm={"epochs": 5}, signal={"sizing": "rank"}, seed=3)
    assert cfg.lstm.epochs == 5 and cfg.signal.sizing == "rank" and cfg.seed == 3
    with pytest.raises(lstmknn.ConfigError, match=r"unknown key `lstm.epoch` \(known: lookback"):
        lstmknn.Config(lstm={"epoch": 5})
    with pytest.raises(lstmknn.ConfigError, match="unknown section `lstmm`"):
        lstmknn.make_config(None, lstmm={"epochs": 5})


def sign_rule(history: pd.DataFrame, held: pd.Series) -> dict[str, float]:
    today = history[history["date"] == history["date"].iloc[-1]]
    return {s: float(np.sign(f)) for s, f in zip(today["symbol"], today["fused"], strict=True)}


def test_a_function_strategy_and_the_equivalent_built_in_rule_trade_identically(spx, cache):
    rule = {"signal": {"sizing": "threshold", "threshold": 0.0, "cost_aware": False}}
    builtin = lstmknn.backtest(spx, {**CFG, **rule}, cache=cache)
    coded = lstmknn.backtest(spx, {**CFG, **rule}, cache=cache, strategy=sign_rule)
    pd.testing.assert_frame_equal(coded.trades, builtin.trades, check_exact=True)
    pd.testing.assert_frame_equal(coded.predictions, builtin.predictions, check_exact=True)
    assert "written as code" in coded.summary["signal_rule"]


def test_a_strategy_never_sees_the_label_or_a_later_row(spx, cache):
    seen: list[tuple[pd.Timestamp, pd.Timestamp, bool]] = []

    def spy(history, held):
        seen.append((history["date"].max(), history["date"].iloc[-1], "y_true" in history))
        return sign_rule(history, held)

    lstmknn.backtest(spx, CFG, cache=cache, strategy=spy)
    assert seen and all(a == b and not label for a, b, label in seen)


def test_a_subclassed_strategy_drives_the_signal_too(spx, cache):
    class LongWhenConfident(lstmknn.Strategy):
        def decide(self, history, held):
            today = history[history["date"] == history["date"].iloc[-1]]
            conf = history["lstm_conf"]
            cut = conf.quantile(2 / 3) if len(conf) > 20 else np.inf
            return {s: 1.0 if f > 0.001 and c >= cut else 0.0
                    for s, f, c in zip(today["symbol"], today["fused"], today["lstm_conf"],
                                       strict=True)}

    run = lstmknn.backtest(spx, CFG, cache=cache, strategy=LongWhenConfident())
    pred = run.predictions.reset_index()
    when = pred["date"].iloc[len(pred) // 2]
    rec = lstmknn.signal(spx, CFG, cache=cache, asof=when, strategy=LongWhenConfident())[0]
    assert rec["target"] == pred.set_index("date").loc[when, "target"]
    assert set(pred["target"].unique()) <= {0.0, 1.0}


def test_a_strategy_returning_nonsense_is_one_clear_error(spx, cache):
    with pytest.raises(lstmknn.StrategyError, match="finite number"):
        lstmknn.backtest(spx, CFG, cache=cache, strategy=lambda h, held: {"asset": float("nan")})
    with pytest.raises(lstmknn.StrategyError, match="no bar there"):
        lstmknn.backtest(spx, CFG, cache=cache, strategy=lambda h, held: {"XYZ": 1.0})


def test_a_vectorised_strategy_that_looks_ahead_is_caught_by_the_audit(spx, cache):
    class Peeking(lstmknn.Strategy):
        def targets(self, forecasts, held=None):
            out = forecasts.copy()
            out["target"] = np.sign(out["fused"].shift(-1).fillna(0.0))  # tomorrow's forecast
            return out

    report = lstmknn.audit(spx, CFG, strategy=Peeking(), cuts=2, cache=cache)
    assert not report.clean and report.first_stage == "target"
    clean = lstmknn.audit(spx, CFG, strategy=sign_rule, cuts=2, cache=cache)
    assert clean.clean
