"""Every command decides as the backtest does: ``signal`` at several dates equals the backtest's
``predictions.csv`` rows (``fused`` and ``target``) and the weights it holds, for every scope,
sizing and cost rule on a universe with staggered starts; the audit of the same configuration
is clean; one configuration is refused the same way by every command."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from lstmknn.data.synthetic import make_universe, to_price_data
from lstmknn.engine.asof import signal_records
from lstmknn.engine.audit import run_audit
from lstmknn.engine.backtest import run_backtest
from lstmknn.engine.cache import FoldCache
from lstmknn.engine.config import ConfigError, from_dict
from tests.helpers import TINY

SIZINGS = ("threshold", "proportional", "vol_target", "rank")
MATRIX = [(scope, sizing, aware) for scope in ("per_symbol", "pooled") for sizing in SIZINGS
          for aware in (True, False)]


def config(scope: str, sizing: str, cost_aware: bool, **extra: dict):
    raw = copy.deepcopy(TINY)
    raw["walk_forward"] = {"train_window": 80, "step": 20}
    raw["model"] = {"scope": scope}
    raw["signal"] = {"sizing": sizing, "cost_aware": cost_aware, "top_k": 2, "bottom_k": 1,
                     "scale": 0.004, "min_change": 0.02}
    for section, values in extra.items():
        raw.setdefault(section, {}).update(values)
    return from_dict(raw)


@pytest.fixture(scope="module")
def universe():
    """Four symbols, staggered listing and delisting dates, a weak planted signal."""
    frame = make_universe(4, 330, ic=0.1, seed=3, staggered=True)
    return to_price_data(frame)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return FoldCache(tmp_path_factory.mktemp("agree-cache"))


def decision_dates(pred: pd.DataFrame) -> list[pd.Timestamp]:
    dates = sorted(pred["date"].unique())
    return [dates[len(dates) // 3], dates[(2 * len(dates)) // 3], dates[-1]]


def assert_signal_is_the_backtest(datas, cfg, cache, pred: pd.DataFrame) -> None:
    for when in decision_dates(pred):
        records = {r["symbol"]: r for r in signal_records(datas, cfg, when, cache=cache)}
        upto = pred[pred["date"] <= when]
        assert set(records) == set(upto["symbol"]), when
        for symbol, rows in upto.groupby("symbol"):
            row, rec = rows.iloc[-1], records[symbol]
            assert rec["asof"] == row["date"].strftime("%Y-%m-%d"), (when, symbol)
            assert rec["fused"] == row["fused"], (when, symbol)
            assert rec["target"] == row["target"], (when, symbol)
            # the weight held after the decision: the last target, 0 once the exchange closed
            # the symbol out (its bars ended before the others')
            held = row["target"] if np.isfinite(row["target"]) else 0.0
            assert rec["weight"] == (0.0 if row["date"] < upto["date"].max() else held)
            assert rec["stale"] == (row["date"] < when)


@pytest.mark.parametrize(("scope", "sizing", "cost_aware"), MATRIX)
def test_the_signal_at_several_dates_is_the_backtests_decision(universe, cache, scope, sizing,
                                                               cost_aware):
    cfg = config(scope, sizing, cost_aware)
    run = run_backtest(universe, cfg, engine="vectorized", cache_dir=cache.root)
    pred = run.predictions
    assert pred["target"].abs().sum() > 0  # the rule trades
    if sizing == "rank":
        assert (pred.groupby("date")["target"].apply(lambda t: (t > 0).sum()) <= 2).all()
    assert_signal_is_the_backtest(universe, cfg, cache, pred)


@pytest.mark.parametrize(("scope", "feature"), [
    ("per_symbol", "tests.feature_examples:momentum_3"),
    ("pooled", "tests.feature_examples:relative_to_market"),
])
def test_a_custom_feature_gives_the_same_decisions_in_signal_and_backtest(universe, cache, scope,
                                                                          feature):
    cfg = config(scope, "rank", True, features={"custom": [feature]})
    run = run_backtest(universe, cfg, engine="vectorized", cache_dir=cache.root)
    assert_signal_is_the_backtest(universe, cfg, cache, run.predictions)


@pytest.mark.parametrize(("scope", "sizing", "cost_aware"), [
    ("per_symbol", "threshold", True), ("per_symbol", "vol_target", False),
    ("pooled", "rank", True), ("pooled", "proportional", True),
])
def test_the_audit_of_the_traded_target_is_clean(universe, cache, scope, sizing, cost_aware):
    report = run_audit(universe, config(scope, sizing, cost_aware), cuts=2, cache=cache,
                       trims=())
    assert report.clean, report.leaks
    assert "target" in report.decision_columns


def test_a_leaky_feature_is_caught_in_the_target_of_a_rank_universe(universe, cache):
    cfg = config("pooled", "rank", True, features={"custom": ["tests.feature_examples:next_return"]})
    report = run_audit(universe, cfg, cuts=2, cache=cache, trims=())
    assert not report.clean and report.first_stage == "feature"
    assert any(leak["column"] == "target" for leak in report.leaks)


@pytest.mark.parametrize(("extra", "message"), [
    ({"model": {"scope": "pooled"}}, "needs two or more symbols"),
    ({"signal": {"sizing": "rank", "top_k": 1}}, "needs two or more symbols"),
])
def test_a_universe_rule_on_one_symbol_is_refused_by_every_command(universe, extra, message):
    cfg = from_dict({**copy.deepcopy(TINY), **extra})
    one = universe[:1]
    with pytest.raises(ConfigError, match=message):
        run_backtest(one, cfg)
    with pytest.raises(ConfigError, match=message):
        signal_records(one, cfg)
    with pytest.raises(ConfigError, match=message):
        run_audit(one, cfg, cuts=1)


def test_more_rank_slots_than_symbols_is_refused_with_the_gross_exposure_it_would_give(universe):
    cfg = config("per_symbol", "rank", True)
    cfg = from_dict({"signal": {"top_k": 4, "bottom_k": 2}}, base=cfg)
    with pytest.raises(ConfigError, match=r"top_k.*bottom_k.*gross exposure of 0\.6667"):
        run_backtest(universe, cfg)


def test_shorting_the_bottom_names_of_a_long_only_book_is_refused():
    with pytest.raises(ConfigError, match="bottom_k` must be 0 when `signal.long_only"):
        from_dict({"signal": {"sizing": "rank", "long_only": True, "bottom_k": 2}})
