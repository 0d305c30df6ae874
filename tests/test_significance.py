"""DM, PSR and DSR against straightforward arithmetic from their formulas."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from lstmknn.reports.significance import (
    EULER_GAMMA,
    deflated_sharpe_ratio,
    diebold_mariano,
    dm_table,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
)

E1 = [1.0, -2.0, 3.0, 0.5, -1.0, 2.0, 1.5, -0.5]
E2 = [0.5, -1.0, 1.0, 1.0, -0.5, 1.0, 1.0, -1.0]
R = [0.01, -0.005, 0.02, 0.0, -0.01, 0.015, 0.005, -0.002, 0.007]


def _dm_by_hand(e1: list[float], e2: list[float], h: int, power: float) -> tuple[float, float]:
    n = len(e1)
    d = [abs(a) ** power - abs(b) ** power for a, b in zip(e1, e2, strict=True)]
    mean = sum(d) / n
    gam = []
    for k in range(h):
        s = 0.0
        for t in range(k, n):
            s += (d[t] - mean) * (d[t - k] - mean)
        gam.append(s / n)
    var = (gam[0] + 2 * sum(gam[1:])) / n
    dm = mean / math.sqrt(var)
    stat = dm * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    p = 2 * (1 - student_t.cdf(abs(stat), n - 1))
    return stat, p


@pytest.mark.parametrize(("h", "power"), [(1, 2), (2, 2), (1, 1), (2, 1)])
def test_dm_matches_hand_computation(h: int, power: float) -> None:
    stat, p = diebold_mariano(E1, E2, h=h, power=power)
    exp_stat, exp_p = _dm_by_hand(E1, E2, h, power)
    assert stat == pytest.approx(exp_stat, rel=1e-12)
    assert p == pytest.approx(exp_p, rel=1e-9)


def test_dm_literal_value_h1() -> None:
    # d = e1^2 - e2^2 = [.75, 3, 8, -.75, .75, 3, 1.25, -.75]; mean 1.90625
    # sum (d - mean)^2 = 56.7421875 -> gamma0 = 7.0927734375, V = gamma0 / 8
    # DM = 1.90625 / sqrt(V); HLN factor sqrt((8 + 1 - 2) / 8) = sqrt(7/8)
    stat, _ = diebold_mariano(E1, E2)
    assert stat == pytest.approx(1.90625 / math.sqrt(7.0927734375 / 8) * math.sqrt(7 / 8))


def test_dm_nonpositive_long_run_variance_falls_back_to_gamma0() -> None:
    # for h=3 these errors give gamma0 + 2(gamma1 + gamma2) < 0
    n, h = len(E1), 3
    d = np.array(E1) ** 2 - np.array(E2) ** 2
    gamma0 = np.mean((d - d.mean()) ** 2)
    hln = math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    stat, p = diebold_mariano(E1, E2, h=h)
    assert stat == pytest.approx(d.mean() / math.sqrt(gamma0 / n) * hln)
    assert p == pytest.approx(2 * student_t.sf(abs(stat), n - 1))


def test_dm_antisymmetric_and_degenerate() -> None:
    s12, p12 = diebold_mariano(E1, E2)
    s21, p21 = diebold_mariano(E2, E1)
    assert s12 == pytest.approx(-s21)
    assert p12 == pytest.approx(p21)
    assert diebold_mariano(E1, E1) == (0.0, 1.0)
    assert all(math.isnan(x) for x in diebold_mariano([1.0, 2.0], [0.0, 1.0]))
    with pytest.raises(ValueError):
        diebold_mariano(E1, E2[:-1])


def test_dm_drops_nan_pairs() -> None:
    e1 = [*E1, np.nan]
    e2 = [*E2, 5.0]
    assert diebold_mariano(e1, e2) == pytest.approx(diebold_mariano(E1, E2))


def test_dm_table_sign_and_columns() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=200)
    frame = pd.DataFrame(
        {
            "date": pd.bdate_range("2020-01-01", periods=200),
            "fold": 0,
            "y_true": y,
            "fused": y + rng.normal(scale=0.3, size=200),
            "noisy": y + rng.normal(scale=2.0, size=200),
            "alpha": 0.5,
            "target": 1.0,
        }
    )
    table = dm_table(frame, "fused")
    assert list(table.index) == ["noisy", "zero"]  # meta columns excluded, zero added
    assert list(table.columns) == ["dm_stat", "p_value", "n"]
    assert table.loc["noisy", "dm_stat"] < 0  # fused has the smaller loss
    assert table.loc["noisy", "p_value"] < 0.01
    explicit = dm_table(frame, "fused", against=["noisy", "fused"])
    assert list(explicit.index) == ["noisy"]
    e_f = frame["y_true"] - frame["fused"]
    e_n = frame["y_true"] - frame["noisy"]
    assert explicit.loc["noisy", "dm_stat"] == pytest.approx(diebold_mariano(e_f, e_n)[0])


def _psr_by_hand(r: list[float], sr_star: float) -> float:
    n = len(r)
    mean = sum(r) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / (n - 1))
    m2 = sum((x - mean) ** 2 for x in r) / n
    m3 = sum((x - mean) ** 3 for x in r) / n
    m4 = sum((x - mean) ** 4 for x in r) / n
    skew, kurt = m3 / m2**1.5, m4 / m2**2
    sr = mean / sd
    z = (sr - sr_star) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


@pytest.mark.parametrize("sr_star", [0.0, 0.1, -0.2])
def test_psr_matches_hand_computation(sr_star: float) -> None:
    assert probabilistic_sharpe_ratio(R, sr_star) == pytest.approx(_psr_by_hand(R, sr_star))


def test_psr_edges() -> None:
    r = np.array(R)
    sr = r.mean() / r.std(ddof=1)
    assert probabilistic_sharpe_ratio(r, sr) == pytest.approx(0.5)
    assert math.isnan(probabilistic_sharpe_ratio([0.01, 0.01, 0.01]))
    assert math.isnan(probabilistic_sharpe_ratio([0.01, 0.02]))
    assert probabilistic_sharpe_ratio(pd.Series([*R, np.nan])) == pytest.approx(
        probabilistic_sharpe_ratio(R)
    )


def test_expected_max_sharpe_formula() -> None:
    inv = NormalDist().inv_cdf
    n, v = 10, 0.04
    expected = math.sqrt(v) * (
        (1 - EULER_GAMMA) * inv(1 - 1 / n) + EULER_GAMMA * inv(1 - 1 / (n * math.e))
    )
    assert expected_max_sharpe(n, v) == pytest.approx(expected)
    assert expected_max_sharpe(1, v) == 0.0


def test_dsr() -> None:
    inv = NormalDist().inv_cdf
    v = 0.01
    sr0 = math.sqrt(v) * ((1 - EULER_GAMMA) * inv(0.9) + EULER_GAMMA * inv(1 - 1 / (10 * math.e)))
    assert deflated_sharpe_ratio(R, 10, sr_variance=v) == pytest.approx(_psr_by_hand(R, sr0))
    assert deflated_sharpe_ratio(R, 1) == pytest.approx(probabilistic_sharpe_ratio(R))
    # default variance: the SR's own estimation variance; more trials -> lower DSR
    dsr = [deflated_sharpe_ratio(R, k) for k in (1, 5, 50)]
    assert dsr[0] > dsr[1] > dsr[2] > 0
