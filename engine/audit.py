"""``lstmknn audit``: proof, for given data, features and config, that nothing sees the future.

The property checked is the engine's own: nothing decided at bar T changes
when the data after T is removed or altered. For cut dates spread over the
run (``cuts`` of them plus the last bar) every feature column, each model's
forecast and confidence, the regime, alpha, the fused forecast and the target
are rebuilt on (a) the data truncated at T and (b) the data with every row
after T perturbed (seeded multiplicative noise on OHLCV), and compared
exactly with the full run up to T. A difference is reported per column and
stage (feature -> model -> fusion -> target) at the first bar it appears.

Fast by default: fold fits come from the fold cache, keyed by the price and
feature rows they saw, so an unaltered prefix is a cache hit and only the
cut-short last fold is retrained; on perturbed data the folds deciding after
T reuse the full run's fits (their forecasts still change with the perturbed
inputs, so fusion and targets are fully exercised). ``thorough`` retrains
every fold of every run without the cache.

The recursive check recomputes the features on data whose start is trimmed
by ``trims`` bars and reports columns whose values, after their declared
warm-up, differ from the full-data values by more than ``1e-9`` relative
(e.g. an exponential average seeded at the first bar).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lstmknn.data.errors import DataError
from lstmknn.data.loader import PriceData
from lstmknn.engine.cache import FoldCache
from lstmknn.engine.config import Config, validate_universe
from lstmknn.engine.decisions import decide
from lstmknn.engine.feature_set import declared_warmups, feature_frame, frozen_panel, lenient
from lstmknn.engine.runio import format_timestamp
from lstmknn.engine.walk_forward import _fold_cache_key, folds_for, prepare
from lstmknn.strategies.strategy import Strategy

STAGES = ("feature", "model", "fusion", "target")
TRIMS = (50, 200, 500)
RTOL = 1e-9
NOISE = 0.02  # daily log-return noise of the perturbation after T

Progress = Callable[[int, int], None]


@dataclass
class AuditReport:
    """What the audit found; ``clean`` when no column of any stage differs."""

    leaks: list[dict[str, Any]]
    cuts: list[str]
    elapsed_seconds: float
    thorough: bool
    symbols: list[str]
    feature_columns: list[str]
    decision_columns: list[str]
    trims: list[int]
    cache: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.leaks

    @property
    def first_stage(self) -> str | None:
        """The earliest stage a look-ahead difference enters (None when there is none)."""
        found = {leak["stage"] for leak in self.leaks if leak["kind"] == "lookahead"}
        return next((s for s in STAGES if s in found), None)

    def to_json(self) -> dict[str, Any]:
        return {"clean": self.clean, "leaks": self.leaks, "first_stage": self.first_stage,
                "cuts": self.cuts, "trims": self.trims, "thorough": self.thorough,
                "symbols": self.symbols, "feature_columns": self.feature_columns,
                "decision_columns": self.decision_columns, "cache": self.cache,
                "elapsed_seconds": self.elapsed_seconds}


def stage_of(column: str) -> str:
    """Stage of a decision column (features are stage ``feature``)."""
    if column == "target":
        return "target"
    if column in ("alpha", "fused", "regime"):
        return "fusion"
    return "model"


def decision_columns(pred: pd.DataFrame) -> list[str]:
    """The columns the engine decides at each bar (labels and baselines excluded)."""
    models = [c for c in pred.columns if c == "lstm" or c.startswith("lstm_") or c.startswith("knn")]
    return [*models, "regime", "alpha", "fused", "target"]


# ---------------------------------------------------------------- running the engine


def _decide(datas: Sequence[PriceData], cfg: Config, cache: FoldCache | None,
            asof: pd.Timestamp | None = None, strategy: Strategy | None = None) -> pd.DataFrame:
    """Predictions and targets of every symbol, as every command computes them
    (:func:`engine.decisions.decide`); ``asof``: the data cut at that bar, as ``signal``
    and paper accounts see it."""
    with lenient():
        pred = decide(datas, cfg, strategy=strategy, cache=cache, asof=asof,
                      history=True).predictions
    return pred.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)


def _features(datas: Sequence[PriceData], cfg: Config) -> dict[str, pd.DataFrame]:
    """Every symbol's feature columns, with the inputs the engine gives them: custom features
    see the universe's panel in pooled scope only (as :mod:`engine.pooled` computes them)."""
    pooled = cfg.model.scope == "pooled"
    panel = frozen_panel({d.symbol: d.frame for d in datas}) if pooled and cfg.features.custom \
        else ({} if pooled else None)
    with lenient():
        return {d.symbol: feature_frame(d.frame, cfg.features, getattr(d, "available", None),
                                        panel=panel) for d in datas}


def _with_frames(datas: Sequence[PriceData], frames: dict[str, pd.DataFrame]) -> list[PriceData]:
    return [dataclasses.replace(d, frame=frames[d.symbol]) for d in datas if d.symbol in frames]


def truncate(datas: Sequence[PriceData], cut: pd.Timestamp) -> list[PriceData]:
    """Every symbol's data up to and including ``cut`` (symbols starting later are left out)."""
    frames = {d.symbol: d.frame.loc[:cut] for d in datas}
    return _with_frames(datas, {s: f for s, f in frames.items() if len(f)})


def perturb(datas: Sequence[PriceData], cut: pd.Timestamp, seed: int) -> list[PriceData]:
    """Every row after ``cut`` multiplied by seeded noise (one price path per symbol, OHLC alike)."""
    rng = np.random.default_rng(seed)
    frames = {}
    for d in datas:
        f = d.frame.copy()
        after = f.index > cut
        n = int(after.sum())
        shock = np.exp(np.cumsum(rng.normal(0.0, NOISE, n)) + NOISE)
        for col in ("open", "high", "low", "close"):
            f.loc[after, col] = f.loc[after, col].to_numpy() * shock
        f.loc[after, "volume"] = f.loc[after, "volume"].to_numpy() * np.exp(rng.normal(0.0, 0.5, n))
        frames[d.symbol] = f
    return _with_frames(datas, frames)


class _Planted(FoldCache):
    """A fold cache with some entries planted in memory, over a real one."""

    def __init__(self, base: FoldCache, planted: dict[str, dict]) -> None:
        super().__init__(base.root)
        self.base, self.planted = base, planted

    def get(self, key: str, check: Any = None) -> dict[str, Any] | None:
        if key in self.planted:
            self.hits += 1
            return self.planted[key]
        entry = self.base.get(key, check) if check is not None else self.base.get(key)
        self.hits, self.misses = self.hits + (entry is not None), self.misses + (entry is None)
        return entry

    def put(self, key: str, entry: dict[str, Any]) -> bool:
        return bool(self.base.put(key, entry))


def _planted_for(datas: Sequence[PriceData], altered: Sequence[PriceData], cfg: Config,
                 cut: pd.Timestamp, cache: FoldCache) -> dict[str, dict]:
    """Full-run fits of the folds deciding after ``cut``, under the altered data's keys."""
    planted: dict[str, dict] = {}
    with lenient():
        for d, a in zip(datas, altered, strict=True):
            prep, prep_a = prepare(d.frame, cfg), prepare(a.frame, cfg)
            for f, fa in zip(folds_for(prep, cfg), folds_for(prep_a, cfg), strict=True):
                if prep.index[f.test_start] <= cut:
                    continue
                entry = cache.get(_fold_cache_key(prep, f, cfg))
                if entry is not None:
                    planted[_fold_cache_key(prep_a, fa, cfg)] = entry
    return planted


# ---------------------------------------------------------------- comparing


def _first_differences(full: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per column, the first row where two [rows, cols] arrays differ exactly (-1: none)."""
    same = (full == other) | (np.isnan(full) & np.isnan(other))
    bad = ~same
    return np.where(bad.any(axis=0), bad.argmax(axis=0), -1)


def _compare_features(full: pd.DataFrame, other: pd.DataFrame, cut: pd.Timestamp) -> dict[str, pd.Timestamp]:
    a = full.loc[:cut]
    b = other.reindex(columns=a.columns).loc[:cut]
    if len(b) != len(a):
        b = b.reindex(a.index)
    first = _first_differences(a.to_numpy(float), b.to_numpy(float))
    return {c: a.index[i] for c, i in zip(a.columns, first, strict=True) if i >= 0}


def _compare_decisions(full: pd.DataFrame, other: pd.DataFrame, cut: pd.Timestamp,
                       columns: list[str]) -> dict[tuple[str, str], pd.Timestamp]:
    keys = ["symbol", "date"]
    a = full[full["date"] <= cut]
    b = other[other["date"] <= cut]
    m = a[keys + columns].merge(b.reindex(columns=keys + columns), on=keys, how="outer",
                                suffixes=("", "_o"), indicator=True).sort_values(["date", "symbol"])
    out: dict[tuple[str, str], pd.Timestamp] = {}
    for col in columns:
        x, y = m[col], m[f"{col}_o"]
        bad = (~(x.eq(y) | (x.isna() & y.isna()))).to_numpy() | (m["_merge"] != "both").to_numpy()
        for sym in m.loc[bad, "symbol"].unique():
            out[(str(sym), col)] = m.loc[bad & (m["symbol"] == sym).to_numpy(), "date"].iloc[0]
    return out


def _recursive(frame: pd.DataFrame, full: pd.DataFrame, trim: int, cfg: Config,
               symbol: str) -> list[dict[str, Any]]:
    """Columns of ``frame`` (features of data trimmed by ``trim`` bars) that still depend on the start."""
    warm = declared_warmups(frame, cfg.features)
    ref = full.iloc[trim:]
    scale = full.abs().median().to_numpy(float)
    leaks = []
    for j, col in enumerate(frame.columns):
        w = warm[col]
        x, y = frame[col].to_numpy(float)[w:], ref[col].to_numpy(float)[w:]
        if not len(x):
            continue
        tol = RTOL * np.maximum(np.maximum(np.abs(x), np.abs(y)), scale[j])
        diff = np.abs(x - y)
        bad = (diff > tol) | (np.isnan(x) != np.isnan(y))
        if bad.any():
            rows = np.flatnonzero(bad)
            rel = diff[rows] / np.maximum(np.abs(y[rows]), scale[j])
            leaks.append({"column": col, "stage": "feature", "first_bar": frame.index[w + rows[0]],
                          "kind": "recursive", "symbol": symbol, "trim": trim,
                          "last_bar": frame.index[w + rows[-1]], "declared_warmup": w,
                          "needed_warmup": int(w + rows[-1] + 1),
                          "max_relative_difference": float(np.nanmax(rel)) if np.isfinite(rel).any()
                          else None})
    return leaks


def usable_trims(datas: Sequence[PriceData], trims: Sequence[int]) -> list[int]:
    """Trims that leave at least twice as many bars as they remove, for some symbol."""
    return [t for t in trims if t > 0 and any(len(d.frame) - t >= 2 * t for d in datas)]


def recursive_check(datas: Sequence[PriceData], cfg: Config, trims: Sequence[int] = TRIMS, *,
                    full_features: dict[str, pd.DataFrame] | None = None) -> list[dict[str, Any]]:
    """Feature columns whose values after their declared warm-up depend on where the data starts."""
    feats = full_features if full_features is not None else _features(datas, cfg)
    leaks: list[dict[str, Any]] = []
    for trim in usable_trims(datas, trims):
        cut = [dataclasses.replace(d, frame=d.frame.iloc[trim:]) for d in datas
               if len(d.frame) - trim >= 2 * trim]
        for sym, frame in _features(cut, cfg).items():
            leaks += _recursive(frame, feats[sym], trim, cfg, sym)
    return leaks


def _cut_dates(datas: Sequence[PriceData], pred: pd.DataFrame, cfg: Config, n: int) -> list[pd.Timestamp]:
    """``n`` cut dates spread over the decision span, plus the last bar."""
    dates = pd.DatetimeIndex(sorted(pred["date"].unique()))
    last = max(d.frame.index[-1] for d in datas)
    h = cfg.walk_forward.horizon + cfg.walk_forward.gap
    usable = dates[h + 1: -1] if len(dates) > h + 2 else dates[:0]
    if n <= 0 or not len(usable):
        return [last]
    picks = np.unique(np.linspace(0, len(usable) - 1, n).round().astype(int))
    return sorted({*usable[picks], last})


@contextmanager
def _cache_for(cache: FoldCache | None, thorough: bool) -> Iterator[FoldCache | None]:
    if thorough:
        yield None
    elif cache is not None:
        yield cache
    else:
        with tempfile.TemporaryDirectory(prefix="lstmknn-audit-") as tmp:
            yield FoldCache(tmp)


def run_audit(datas: Sequence[PriceData] | PriceData, cfg: Config, *, cuts: int = 8,
              thorough: bool = False, cache: FoldCache | None = None,
              progress: Progress | None = None, trims: Sequence[int] = TRIMS,
              strategy: Strategy | None = None) -> AuditReport:
    """Audit ``datas`` under ``cfg`` (and ``strategy``, a rule written as code; default the
    config's rule) for look-ahead and start dependence; see the module doc."""
    t0 = time.perf_counter()
    datas = [datas] if isinstance(datas, PriceData) else list(datas)
    if not datas:
        raise DataError("audit: no data")
    if cuts < 0:
        raise DataError(f"audit: --cuts must be >= 0 (got {cuts})")
    validate_universe(cfg, [d.symbol for d in datas])
    leaks: dict[tuple, dict[str, Any]] = {}

    def record(leak: dict[str, Any]) -> None:
        key = (leak["symbol"], leak["column"], leak["stage"], leak["kind"])
        old = leaks.get(key)
        if old is None or leak["first_bar"] < old["first_bar"]:
            leaks[key] = leak

    with _cache_for(cache, thorough) as fc:
        feats = _features(datas, cfg)
        full = _decide(datas, cfg, fc, strategy=strategy)
        columns = decision_columns(full)
        cut_dates = _cut_dates(datas, full, cfg, cuts)
        steps = len(cut_dates) * 2 + 1
        done = 0
        if progress is not None:
            progress(0, steps)
        for c, cut in enumerate(cut_dates):
            for mode in ("truncated", "perturbed"):
                asof = None
                if mode == "truncated":
                    altered, asof = truncate(datas, cut), cut
                else:
                    altered = perturb(datas, cut, seed=cfg.seed * 1000 + c)
                alt_feats = _features(altered, cfg)
                for sym, frame in alt_feats.items():
                    for col, bar in _compare_features(feats[sym], frame, cut).items():
                        record(_leak(col, "feature", bar, sym, cut, mode, feats[sym].index))
                run_cache = fc
                if mode == "perturbed" and fc is not None and cfg.model.scope != "pooled":
                    run_cache = _Planted(fc, _planted_for(datas, altered, cfg, cut, fc))
                pred = _decide(altered, cfg, run_cache, asof, strategy)
                for (sym, col), bar in _compare_decisions(full, pred, cut, columns).items():
                    index = feats[sym].index if sym in feats else pd.DatetimeIndex([])
                    record(_leak(col, stage_of(col), bar, sym, cut, mode, index))
                done += 1
                if progress is not None:
                    progress(done, steps)
        for leak in recursive_check(datas, cfg, trims, full_features=feats):
            record(leak)
        if progress is not None:
            progress(steps, steps)
        stats = {"hits": fc.hits, "misses": fc.misses} if fc is not None else {}
    ordered_leaks = sorted(leaks.values(), key=lambda x: (x["kind"] != "lookahead", x["symbol"],
                                                          STAGES.index(x["stage"]), x["first_bar"],
                                                          x["column"]))
    used_trims = usable_trims(datas, trims)
    return AuditReport(leaks=[_jsonable(x) for x in ordered_leaks],
                       cuts=[format_timestamp(c) for c in cut_dates],
                       elapsed_seconds=round(time.perf_counter() - t0, 3), thorough=thorough,
                       symbols=[d.symbol for d in datas],
                       feature_columns=list(next(iter(feats.values())).columns),
                       decision_columns=columns, trims=used_trims, cache=stats)


def _leak(column: str, stage: str, bar: pd.Timestamp, symbol: str, cut: pd.Timestamp, mode: str,
          index: pd.DatetimeIndex) -> dict[str, Any]:
    ahead = None
    if len(index) and bar in index and cut in index:
        ahead = int(index.get_loc(cut) - index.get_loc(bar) + 1)
    return {"column": column, "stage": stage, "first_bar": bar, "kind": "lookahead",
            "symbol": symbol, "cut": cut, "found_by": mode, "bars_ahead": ahead}


def _jsonable(leak: dict[str, Any]) -> dict[str, Any]:
    return {k: format_timestamp(v) if isinstance(v, pd.Timestamp) else v for k, v in leak.items()}


def format_table(report: AuditReport) -> str:
    """The report as a terminal table (one line per leak), with a verdict line."""
    n_cols = len(report.feature_columns) + len(report.decision_columns)
    scope = (f"{len(report.symbols)} symbol(s), {len(report.feature_columns)} feature and "
             f"{len(report.decision_columns)} decision columns, {len(report.cuts)} cuts "
             f"(truncated and perturbed), start trimmed by {'/'.join(map(str, report.trims)) or '-'} bars"
             f"{', thorough' if report.thorough else ''}; {report.elapsed_seconds:.1f} s")
    if report.clean:
        return f"audit: clean ({n_cols} columns unchanged by data after each cut; {scope})"
    head = ["symbol", "column", "stage", "kind", "first bar", "found by"]
    rows = []
    for leak in report.leaks:
        if leak["kind"] == "lookahead":
            how = f"{leak['found_by']} at {leak['cut'][:10]}"
            if leak.get("bars_ahead"):
                how += f", reads >= {leak['bars_ahead']} bar(s) ahead"
        else:
            how = (f"start trimmed {leak['trim']} bars: differs until {leak['last_bar'][:10]} "
                   f"(warm-up {leak['declared_warmup']}, needs {leak['needed_warmup']})")
        rows.append([leak["symbol"], leak["column"], leak["stage"], leak["kind"],
                     leak["first_bar"][:10] if leak["first_bar"].endswith("T00:00:00")
                     else leak["first_bar"], how])
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
             for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    verdict = (f"audit: LEAK: {len(report.leaks)} column(s) differ; look-ahead first enters at "
               f"stage {report.first_stage}" if report.first_stage else
               f"audit: LEAK: {len(report.leaks)} column(s) depend on where the data starts")
    return "\n".join([verdict, *lines, f"({scope})"])
