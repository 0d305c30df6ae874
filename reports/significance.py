"""Forecast-comparison and Sharpe-ratio significance tests."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from lstmknn.reports.forecast_metrics import ZERO, forecast_values

EULER_GAMMA = 0.5772156649015329
_META_COLUMNS = {"date", "fold", "regime", "alpha", "target"}


def _finite_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"error series differ in length: {a.size} vs {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    return a[ok], b[ok]


def diebold_mariano(
    e1: Sequence[float] | np.ndarray | pd.Series,
    e2: Sequence[float] | np.ndarray | pd.Series,
    h: int = 1,
    power: float = 2,
) -> tuple[float, float]:
    """Diebold-Mariano test with the Harvey-Leybourne-Newbold correction.

    Loss differential ``d_t = |e1_t|**power - |e2_t|**power`` (pairs with a NaN
    dropped). ``gamma_k = sum_{t>=k} (d_t - dbar)(d_{t-k} - dbar) / n``;
    ``V = (gamma_0 + 2 sum_{k=1}^{h-1} gamma_k) / n`` (falls back to ``gamma_0 / n``
    if that is not positive); ``DM = dbar / sqrt(V)``;
    ``stat = DM * sqrt((n + 1 - 2h + h(h-1)/n) / n)``; two-sided p-value from
    Student-t with ``n - 1`` degrees of freedom.

    A positive statistic means model 1 has the larger loss (model 2 is better).
    Returns ``(nan, nan)`` for fewer than 3 pairs and ``(0.0, 1.0)`` when the
    loss differential is identically zero.
    """
    if h < 1:
        raise ValueError("h must be >= 1")
    a, b = _finite_pairs(np.asarray(e1), np.asarray(e2))
    n = a.size
    if n < 3:
        return math.nan, math.nan
    d = np.abs(a) ** power - np.abs(b) ** power
    dbar = float(d.mean())
    dc = d - dbar
    gamma = [float(np.dot(dc[k:], dc[: n - k]) / n) for k in range(min(h, n))]
    var = (gamma[0] + 2.0 * sum(gamma[1:])) / n
    if var <= 0:
        var = gamma[0] / n
    if var <= 0:
        if dbar == 0:
            return 0.0, 1.0
        return math.copysign(math.inf, dbar), 0.0
    hln = math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    stat = dbar / math.sqrt(var) * hln
    pvalue = float(2.0 * stats.t.sf(abs(stat), df=n - 1))
    return float(stat), pvalue


def dm_table(
    predictions: pd.DataFrame,
    target_model: str = "fused",
    against: Sequence[str] | None = None,
    y: str = "y_true",
    h: int = 1,
    power: float = 2,
) -> pd.DataFrame:
    """DM test of ``target_model`` versus each model in ``against``.

    ``against`` defaults to every other numeric non-meta column plus ``zero``.
    Errors are ``y - forecast``; the statistic is for ``loss(target) - loss(other)``,
    so a negative ``dm_stat`` favours the target. Columns: ``dm_stat, p_value, n``,
    index ``model``.
    """
    if against is None:
        numeric = predictions.select_dtypes("number").columns
        against = [c for c in numeric if c not in _META_COLUMNS | {y, target_model}]
        if ZERO not in against:
            against.append(ZERO)
    outcome = pd.to_numeric(predictions[y], errors="coerce").to_numpy(dtype=float)
    e_target = outcome - forecast_values(predictions, target_model)
    rows = {}
    for model in dict.fromkeys(against):
        if model == target_model:
            continue
        e_other = outcome - forecast_values(predictions, model)
        stat, p = diebold_mariano(e_target, e_other, h=h, power=power)
        n = int(np.sum(np.isfinite(e_target) & np.isfinite(e_other)))
        rows[model] = {"dm_stat": stat, "p_value": p, "n": n}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["dm_stat", "p_value", "n"])
    table["n"] = table["n"].astype(int)
    table.index.name = "model"
    return table


def _clean_returns(returns: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    r = np.asarray(returns, dtype=float).ravel()
    return r[np.isfinite(r)]


def sharpe_moments(returns: Sequence[float] | np.ndarray | pd.Series) -> dict[str, float]:
    """Per-period Sharpe ``mean / std(ddof=1)``, biased sample skewness and
    (non-excess) kurtosis, and ``n``; the inputs of PSR/DSR."""
    r = _clean_returns(returns)
    n = r.size
    if n < 3:
        return {"sr": math.nan, "skew": math.nan, "kurtosis": math.nan, "n": float(n)}
    mu = r.mean()
    sd = r.std(ddof=1)
    c = r - mu
    m2 = np.mean(c**2)
    if sd == 0 or m2 == 0:
        return {"sr": math.nan, "skew": math.nan, "kurtosis": math.nan, "n": float(n)}
    return {
        "sr": float(mu / sd),
        "skew": float(np.mean(c**3) / m2**1.5),
        "kurtosis": float(np.mean(c**4) / m2**2),
        "n": float(n),
    }


def sharpe_ratio_variance(returns: Sequence[float] | np.ndarray | pd.Series) -> float:
    """Estimation variance of the per-period Sharpe ratio (Mertens / Bailey-LdP):
    ``(1 - skew*SR + (kurt - 1)/4 * SR**2) / (n - 1)``."""
    m = sharpe_moments(returns)
    sr = m["sr"]
    if not math.isfinite(sr):
        return math.nan
    return (1.0 - m["skew"] * sr + (m["kurtosis"] - 1.0) / 4.0 * sr**2) / (m["n"] - 1.0)


def probabilistic_sharpe_ratio(
    returns: Sequence[float] | np.ndarray | pd.Series, sr_benchmark: float = 0.0
) -> float:
    """P(true SR > ``sr_benchmark``) (Bailey & Lopez de Prado 2012), both per period:

    ``Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - skew*SR + (kurt - 1)/4 * SR**2))``.
    NaN for fewer than 3 finite returns or zero variance.
    """
    var = sharpe_ratio_variance(returns)
    if not (math.isfinite(var) and var > 0):
        return math.nan
    sr = sharpe_moments(returns)["sr"]
    return float(stats.norm.cdf((sr - sr_benchmark) / math.sqrt(var)))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Expected maximum of ``n_trials`` per-period SR estimates with true SR 0:
    ``sqrt(V) * ((1 - g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e)))``, ``g`` the
    Euler-Mascheroni constant; 0 for ``n_trials <= 1``."""
    if n_trials <= 1:
        return 0.0
    z1 = stats.norm.ppf(1.0 - 1.0 / n_trials)
    z2 = stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sr_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def deflated_sharpe_ratio(
    returns: Sequence[float] | np.ndarray | pd.Series,
    n_trials: int,
    sr_variance: float | None = None,
) -> float:
    """PSR against the expected maximum SR of ``n_trials`` unskilled trials
    (Bailey & Lopez de Prado 2014).

    ``sr_variance`` is the cross-trial variance of the per-period SR estimates.
    When None, the estimation variance of this series' own SR
    (:func:`sharpe_ratio_variance`) is used, i.e. trials are assumed to differ only
    by sampling noise; pass the variance over the actual trials when known.
    """
    if sr_variance is None:
        sr_variance = sharpe_ratio_variance(returns)
    if not math.isfinite(sr_variance) or sr_variance < 0:
        return math.nan
    return probabilistic_sharpe_ratio(returns, expected_max_sharpe(n_trials, sr_variance))
