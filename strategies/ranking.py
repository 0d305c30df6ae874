"""Cross-sectional targets: rank symbols by fused forecast, hold the top k (and short the bottom k).

Turnover control as in Qlib's TopkDropout: a holding is kept while its rank
stays within ``top_k + buffer``; at most ``max_replace`` holdings that fell
out of that band are sold per rebalance (worst ranked first; 0 = no limit);
free slots are filled from the top of the ranking. With ``cost_aware`` a
name is newly bought only when its fused forecast exceeds the cost rate of
trading (sold short only below minus the cost rate), so a slot stays in
cash rather than buying a forecast too small to pay for the trade.

Each date uses only that date's forecasts and the holdings decided before it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lstmknn.strategies.params import StrategyParams


def _side(ranked: list[str], held: dict[str, float], present: set[str], k: int, buffer: int,
          max_replace: int, eligible: dict[str, bool], exclude: set[str]) -> list[str]:
    """New book of one side. ``ranked``: present names, best first for this side."""
    rank = {s: i for i, s in enumerate(ranked)}
    band = k + buffer
    keep, out = [], []
    for s in held:
        if s not in present or rank[s] < band:
            keep.append(s)  # absent names cannot trade: they keep their slot
        else:
            out.append(s)
    if max_replace and len(out) > max_replace:
        out.sort(key=lambda s: rank[s])  # best first: the worst ones are sold
        keep += out[:len(out) - max_replace]
    book = set(keep)
    free = k - len(keep)
    for s in ranked:
        if free <= 0:
            break
        if s in book or s in exclude or not eligible[s]:
            continue
        keep.append(s)
        book.add(s)
        free -= 1
    return keep


def _weights(book: list[str], sign: float, fused: dict[str, float], last: dict[str, float],
             base: float, cfg: StrategyParams) -> dict[str, float]:
    """Equal: ``base`` per name. Forecast: ``base * |f| / mean |f|`` over the book's present names.

    A held name without a bar today keeps its last weight (it cannot trade).
    """
    present = [s for s in book if s in fused]
    scale = {s: 1.0 for s in present}
    if cfg.weighting == "forecast" and present:
        mean = float(np.mean([abs(fused[s]) for s in present]))
        scale = {s: abs(fused[s]) / mean if mean > 0 else 1.0 for s in present}
    return {s: sign * base * scale[s] if s in fused else last.get(s, sign * base) for s in book}


def rank_targets(predictions: pd.DataFrame, signal_cfg: StrategyParams, cost_rate: float,
                 previous: dict[str, float] | None = None, column: str = "fused") -> pd.DataFrame:
    """Target weights (fractions of equity) ``date, symbol, target`` for every row with a forecast.

    ``previous``: holdings (symbol -> signed weight) before the first date, to
    continue a live book. Symbols without a row (no bar) on a date get no
    target that day and keep their position. The final book is in
    ``result.attrs["holdings"]``.
    """
    cfg = signal_cfg
    need = {"date", "symbol", column}
    if not need <= set(predictions.columns):
        raise ValueError(f"predictions need columns {sorted(need)}")
    rows = predictions[["date", "symbol", column]]
    rows = rows[np.isfinite(rows[column].to_numpy(float))]
    k_long, k_short = cfg.top_k, cfg.bottom_k
    base = min(cfg.max_gross / (k_long + k_short), cfg.max_weight)
    thr = cost_rate if cfg.cost_aware else -np.inf
    longs = {s: w for s, w in (previous or {}).items() if w > 0}
    shorts = {s: w for s, w in (previous or {}).items() if w < 0}
    out_dates: list[Any] = []
    out_syms: list[str] = []
    out_tgt: list[float] = []
    for date, g in rows.groupby("date", sort=True):
        syms = g["symbol"].astype(str).to_numpy()
        f = g[column].to_numpy(float)
        order = np.lexsort((syms, -f))  # best first, ties by name
        ranked = [str(s) for s in syms[order]]
        fused = dict(zip(ranked, f[order].tolist(), strict=True))
        present = set(ranked)
        new_long = _side(ranked, longs, present, k_long, cfg.buffer, cfg.max_replace,
                         {s: fused[s] > thr for s in ranked}, set())
        new_short: list[str] = []
        if k_short > 0:
            new_short = _side(ranked[::-1], shorts, present, k_short, cfg.buffer, cfg.max_replace,
                              {s: fused[s] < -thr for s in ranked}, set(new_long))
            new_short = [s for s in new_short if s not in set(new_long)]
        wl = _weights(new_long, 1.0, fused, longs, base, cfg)
        ws = _weights(new_short, -1.0, fused, shorts, base, cfg)
        weights = {**{s: float(np.clip(w, -cfg.max_weight, cfg.max_weight)) for s, w in wl.items()},
                   **{s: float(np.clip(w, -cfg.max_weight, cfg.max_weight)) for s, w in ws.items()}}
        gross = sum(abs(w) for w in weights.values())
        if gross > cfg.max_gross > 0:
            weights = {s: w * cfg.max_gross / gross for s, w in weights.items()}
        longs = {s: w for s, w in weights.items() if w > 0}
        shorts = {s: w for s, w in weights.items() if w < 0}
        for s in ranked:
            out_dates.append(date)
            out_syms.append(s)
            out_tgt.append(weights.get(s, 0.0))
    result = pd.DataFrame({"date": pd.DatetimeIndex(out_dates) if out_dates else pd.DatetimeIndex([]),
                           "symbol": out_syms, "target": out_tgt})
    result.attrs["holdings"] = {**longs, **shorts}
    return result
