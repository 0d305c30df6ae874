"""The forecast verdict in words, from a run's ``summary.json`` (pure: a dict in, a dict out).

One function, :func:`forecast_verdict`, decides what the tearsheet's models section
and the CLI's forecast table say about the fused forecast: whether it beats each
baseline (zero, training mean, persistence) and each component (lstm, knn) in
mean squared error, by how much and how significantly (Diebold-Mariano), and in a
universe how its cross-sectional IC compares with the baselines'. It is stored in
``summary.json`` as ``verdict``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

TARGET = "fused"
BASELINES = ("zero", "train_mean", "persistence")
COMPONENTS = ("lstm", "knn")
ALPHA = 0.05  # significance level of every test named here
T_CRIT = 1.96  # |t| of a two-sided 5 % test (normal approximation, many dates)
NAMES = {"zero": "the zero forecast", "train_mean": "the training mean",
         "persistence": "persistence", "lstm": "the LSTM", "knn": "the KNN"}


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "DM p n/a"
    return "DM p < 0.001" if p < 0.001 else f"DM p = {p:.3f}"


def compare(summary: Mapping[str, Any], other: str) -> dict[str, Any] | None:
    """The fused forecast against ``other``: MSE change in percent of ``other``'s MSE
    (negative: fused is better), the DM statistic and p-value, and the outcome
    ``"better"``, ``"worse"`` (significant at :data:`ALPHA`) or ``"not significant"``.
    None when either MSE is missing."""
    forecast = summary.get("forecast") or {}
    mine = _num((forecast.get(TARGET) or {}).get("mse"))
    theirs = _num((forecast.get(other) or {}).get("mse"))
    if not (math.isfinite(mine) and math.isfinite(theirs)) or theirs <= 0:
        return None
    dm = (summary.get("diebold_mariano") or {}).get(other) or {}
    stat, p = _num(dm.get("dm_stat")), _num(dm.get("p_value"))
    change = (mine / theirs - 1.0) * 100.0
    if math.isfinite(p) and p < ALPHA and change != 0:
        outcome = "better" if change < 0 else "worse"
    else:
        outcome = "not significant"
    return {"against": other, "mse_change_pct": change, "dm_stat": stat, "p_value": p,
            "outcome": outcome}


def _sentence(c: Mapping[str, Any]) -> str:
    name = NAMES.get(c["against"], c["against"])
    change = c["mse_change_pct"]
    size = f"MSE {abs(change):.2f} % {'lower' if change < 0 else 'higher'}"
    if change == 0:
        size = "MSE equal"
    verb = {"better": f"beats {name}", "worse": f"is significantly worse than {name}",
            "not significant": f"does not beat {name} significantly"}[c["outcome"]]
    return f"{verb} ({size}, {_p(c['p_value'])})"


def _ic_part(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    cs = summary.get("cross_section")
    if not isinstance(cs, Mapping) or TARGET not in cs:
        return None
    ic, t = _num(cs[TARGET].get("ic")), _num(cs[TARGET].get("ic_tstat"))
    if not math.isfinite(ic):
        return None
    significant = math.isfinite(t) and abs(t) >= T_CRIT
    others = []
    for m in (*BASELINES, *COMPONENTS):
        row = cs.get(m)
        if isinstance(row, Mapping) and math.isfinite(_num(row.get("ic"))):
            others.append({"model": m, "ic": _num(row.get("ic")), "ic_tstat": _num(row.get("ic_tstat")),
                           "fused_higher": ic > _num(row.get("ic"))})
    tt = f"t = {t:.2f}" if math.isfinite(t) else "t n/a"
    sign = "positive" if ic > 0 else "negative"
    text = (f"Cross-section: the fused forecast's mean IC is {ic:+.4f} ({tt}), "
            + (f"significantly {sign} at 5 %" if significant else "not significantly different from 0"))
    if others:
        text += "; baselines and components: " + ", ".join(
            f"{o['model']} {o['ic']:+.4f} (t = {o['ic_tstat']:.2f})" if math.isfinite(o["ic_tstat"])
            else f"{o['model']} {o['ic']:+.4f}" for o in others)
        higher = [o["model"] for o in others if o["fused_higher"]]
        text += (f"; fused is higher than {', '.join(higher)}" if higher
                 else "; fused is higher than none of them")
    horizon = _num(((summary.get("config") or {}).get("walk_forward") or {}).get("horizon"))
    if math.isfinite(horizon) and horizon > 1:
        text += (f" (the t-statistic treats overlapping {int(horizon)}-bar returns as "
                 "independent and overstates significance)")
    return {"ic": ic, "ic_tstat": t, "significant": significant, "others": others,
            "sentence": text + "."}


def forecast_verdict(summary: Mapping[str, Any]) -> dict[str, Any]:
    """What the fused forecast is worth, from a run's summary dict.

    Returns ``{"edge": bool, "headline": str, "lines": [str, ...], "comparisons":
    [...], "cross_section": {...} | None}``. ``edge`` is True only when the fused
    forecast's MSE is lower than the zero forecast's with a Diebold-Mariano p-value
    below :data:`ALPHA`; otherwise the headline says "No edge". ``lines`` are the
    headline, one sentence for the baselines, one for the components and, in a
    universe, one on the IC; the page and the CLI print them as they are.
    """
    comparisons = [c for c in (compare(summary, m) for m in (*BASELINES, *COMPONENTS)) if c]
    by = {c["against"]: c for c in comparisons}
    zero = by.get("zero")
    edge = bool(zero and zero["outcome"] == "better")
    if zero is None:
        headline = "No verdict: the fused or the zero forecast has no MSE in this run."
    elif edge:
        headline = f"Edge: the fused forecast {_sentence(zero)}."
    else:
        headline = f"No edge: the fused forecast {_sentence(zero)}."
    lines = [headline]
    for group, label in ((BASELINES, "baselines"), (COMPONENTS, "components")):
        parts = [_sentence(by[m]) for m in group if m in by and m != "zero"]
        if parts:
            lines.append(f"Against the {label}, the fused forecast " + "; ".join(parts) + ".")
    ic = _ic_part(summary)
    if ic is not None:
        lines.append(ic["sentence"])
    return {"edge": edge, "headline": headline, "lines": lines, "comparisons": comparisons,
            "cross_section": ic, "alpha": ALPHA}


__all__ = ["forecast_verdict", "compare", "ALPHA"]
