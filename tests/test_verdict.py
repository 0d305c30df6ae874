"""The forecast verdict in words: one function on the summary dict, for the page and the CLI."""

from __future__ import annotations

import copy

import pytest

from lstmknn.reports.verdict import forecast_verdict

MSE = {"fused": 1.0e-4, "zero": 1.01e-4, "train_mean": 1.0e-4, "persistence": 2.0e-4,
       "lstm": 1.02e-4, "knn": 0.99e-4}


def _summary(p_zero: float, dm_fused_zero: float = -0.2) -> dict:
    return {
        "forecast": {m: {"mse": v, "n": 1000} for m, v in MSE.items()},
        "diebold_mariano": {
            "zero": {"dm_stat": dm_fused_zero, "p_value": p_zero},
            "train_mean": {"dm_stat": 0.0, "p_value": 1.0},
            "persistence": {"dm_stat": -11.0, "p_value": 1e-30},
            "lstm": {"dm_stat": -2.5, "p_value": 0.01},
            "knn": {"dm_stat": 0.4, "p_value": 0.7},
        },
    }


def test_a_fused_forecast_that_does_not_beat_zero_significantly_has_no_edge() -> None:
    v = forecast_verdict(_summary(p_zero=0.83))
    assert v["edge"] is False
    assert v["headline"].startswith("No edge: the fused forecast does not beat the zero forecast")
    assert "MSE 0.99 % lower, DM p = 0.830" in v["headline"]
    assert v["lines"][0] == v["headline"]


def test_each_baseline_and_component_gets_its_mse_change_and_dm_p_value() -> None:
    v = forecast_verdict(_summary(p_zero=0.001))
    assert v["edge"] is True and v["headline"].startswith("Edge: the fused forecast beats the zero")
    by = {c["against"]: c for c in v["comparisons"]}
    assert set(by) == {"zero", "train_mean", "persistence", "lstm", "knn"}
    assert by["persistence"]["mse_change_pct"] == pytest.approx(-50.0)
    assert by["persistence"]["outcome"] == "better"
    assert by["knn"]["mse_change_pct"] == pytest.approx((1.0 / 0.99 - 1) * 100)
    assert by["knn"]["outcome"] == "not significant"
    assert by["lstm"]["outcome"] == "better"
    baselines, components = v["lines"][1], v["lines"][2]
    assert "beats persistence (MSE 50.00 % lower, DM p < 0.001)" in baselines
    assert "does not beat the training mean significantly (MSE equal" in baselines
    assert "beats the LSTM" in components and "does not beat the KNN significantly" in components


def test_a_significantly_worse_fused_forecast_says_so() -> None:
    s = _summary(p_zero=1e-6, dm_fused_zero=5.0)
    s["forecast"]["fused"]["mse"] = 1.1e-4
    v = forecast_verdict(s)
    assert v["edge"] is False
    assert v["headline"].startswith("No edge: the fused forecast is significantly worse than the zero")


def test_a_universe_verdict_gives_the_fused_ic_and_t_stat_beside_the_baselines() -> None:
    s = _summary(p_zero=0.5)
    s["cross_section"] = {
        "fused": {"ic": 0.023, "ic_tstat": 1.57}, "train_mean": {"ic": -0.017, "ic_tstat": -1.23},
        "persistence": {"ic": -0.02, "ic_tstat": -1.22}, "lstm": {"ic": 0.03, "ic_tstat": 2.5},
    }
    line = forecast_verdict(s)["lines"][-1]
    assert "mean IC is +0.0230 (t = 1.57), not significantly different from 0" in line
    assert "train_mean -0.0170 (t = -1.23)" in line
    assert "fused is higher than train_mean, persistence" in line and "lstm" in line


def test_missing_statistics_give_no_verdict_rather_than_numbers() -> None:
    s = copy.deepcopy(_summary(p_zero=0.5))
    s["diebold_mariano"]["zero"]["p_value"] = None
    assert "DM p n/a" in forecast_verdict(s)["headline"]
    del s["forecast"]["zero"]
    assert forecast_verdict(s)["headline"].startswith("No verdict")


def test_the_cli_prints_the_same_verdict_after_the_forecast_table() -> None:
    from lstmknn.engine.cli.backtest import forecast_lines

    s = _summary(p_zero=0.83)
    out = forecast_lines(s).splitlines()
    assert out[-len(forecast_verdict(s)["lines"]):] == forecast_verdict(s)["lines"]
