"""Point-forecast accuracy tables over out-of-sample predictions.

Definitions (per model, over rows where both the forecast and ``y`` are finite):

* ``mse`` / ``mae``: mean squared / absolute error of ``y - forecast``.
* ``direction_accuracy``: share of rows with ``y != 0`` where
  ``sign(forecast) == sign(y)``. A forecast of exactly 0 predicts no direction and
  is counted as a miss, so the constant ``zero`` baseline scores 0.0 rather than a
  free 50%. NaN when no row has ``y != 0``.
* ``ic``: Spearman rank correlation of forecast and ``y``; NaN (``None`` in
  :func:`forecast_summary`, with the reason under ``ic_undefined``) when either
  side is constant, e.g. the ``zero`` forecast, or fewer than 3 rows remain.
* ``n``: rows used for ``mse``/``mae``/``ic``.

The constant ``zero`` forecast is always reported; when ``predictions`` has no
``zero`` column it is taken as 0 for every row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

METRIC_COLUMNS = ("mse", "mae", "direction_accuracy", "ic", "n")
ZERO = "zero"


def with_zero(models: Sequence[str]) -> list[str]:
    """``models`` (order kept, duplicates dropped) with ``zero`` appended if absent."""
    out = list(dict.fromkeys(models))
    if ZERO not in out:
        out.append(ZERO)
    return out


def forecast_values(predictions: pd.DataFrame, model: str) -> np.ndarray:
    """Forecast column as float array; the missing ``zero`` column is all zeros."""
    if model not in predictions.columns:
        if model == ZERO:
            return np.zeros(len(predictions))
        raise KeyError(f"model column {model!r} not in predictions")
    return pd.to_numeric(predictions[model], errors="coerce").to_numpy(dtype=float)


def ic_undefined_reason(forecast: np.ndarray, outcome: np.ndarray) -> str | None:
    """Why :func:`spearman_ic` is undefined for these finite pairs, or None if it is defined."""
    f = np.asarray(forecast, dtype=float)
    y = np.asarray(outcome, dtype=float)
    if f.size < 3:
        return f"fewer than 3 rows ({f.size})"
    if np.ptp(f) == 0:
        return "constant forecast: a rank correlation is undefined"
    if np.ptp(y) == 0:
        return "constant outcome: a rank correlation is undefined"
    return None


def spearman_ic(forecast: np.ndarray, outcome: np.ndarray) -> float:
    """Spearman rank correlation, NaN for constant inputs or fewer than 3 points."""
    f = np.asarray(forecast, dtype=float)
    y = np.asarray(outcome, dtype=float)
    if ic_undefined_reason(f, y) is not None:
        return math.nan
    rf, ry = rankdata(f), rankdata(y)
    rf -= rf.mean()
    ry -= ry.mean()
    return float(np.dot(rf, ry) / math.sqrt(np.dot(rf, rf) * np.dot(ry, ry)))


def direction_accuracy(forecast: np.ndarray, outcome: np.ndarray) -> float:
    """Share of ``outcome != 0`` rows whose forecast has the same (non-zero) sign."""
    f = np.asarray(forecast, dtype=float)
    y = np.asarray(outcome, dtype=float)
    moving = y != 0
    if not moving.any():
        return math.nan
    return float(np.mean(np.sign(f[moving]) == np.sign(y[moving])))


def error_metrics(forecast: np.ndarray, outcome: np.ndarray) -> dict[str, float | int]:
    """All metrics for one forecast vector against outcomes (NaN pairs dropped)."""
    f = np.asarray(forecast, dtype=float)
    y = np.asarray(outcome, dtype=float)
    ok = np.isfinite(f) & np.isfinite(y)
    f, y = f[ok], y[ok]
    n = int(f.size)
    if n == 0:
        return {
            "mse": math.nan,
            "mae": math.nan,
            "direction_accuracy": math.nan,
            "ic": math.nan,
            "n": 0,
        }
    err = y - f
    return {
        "mse": float(np.mean(err**2)),
        "mae": float(np.mean(np.abs(err))),
        "direction_accuracy": direction_accuracy(f, y),
        "ic": spearman_ic(f, y),
        "n": n,
    }


def forecast_table(
    predictions: pd.DataFrame, models: Sequence[str], y: str = "y_true"
) -> pd.DataFrame:
    """One row per model (``zero`` always included), columns ``mse, mae,
    direction_accuracy, ic, n``; index named ``model``."""
    outcome = pd.to_numeric(predictions[y], errors="coerce").to_numpy(dtype=float)
    rows = {m: error_metrics(forecast_values(predictions, m), outcome) for m in with_zero(models)}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(METRIC_COLUMNS))
    table["n"] = table["n"].astype(int)
    table.index.name = "model"
    return table


def per_group_table(
    predictions: pd.DataFrame,
    models: Sequence[str],
    by: str = "regime",
    y: str = "y_true",
) -> pd.DataFrame:
    """Long table: one row per (group, model) with columns ``[by, model, mse, mae,
    direction_accuracy, ic, n]``; groups sorted, rows with a missing key dropped."""
    columns = [by, "model", *METRIC_COLUMNS]
    if by not in predictions.columns:
        raise KeyError(f"group column {by!r} not in predictions")
    outcome = pd.to_numeric(predictions[y], errors="coerce").to_numpy(dtype=float)
    names = with_zero(models)
    values = {m: forecast_values(predictions, m) for m in names}
    rows = []
    for key, idx in predictions.groupby(by, sort=True, dropna=True).indices.items():
        for m in names:
            rows.append({by: key, "model": m, **error_metrics(values[m][idx], outcome[idx])})
    if not rows:
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame(rows, columns=columns)
    out["n"] = out["n"].astype(int)
    return out


def _json_number(value: float | int) -> float | int | None:
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def forecast_summary(
    predictions: pd.DataFrame, models: Sequence[str], y: str = "y_true"
) -> dict[str, dict[str, float | int | str | None]]:
    """``{model: {mse, mae, direction_accuracy, ic, n}}`` with NaN as ``None``
    (JSON-serialisable with the stdlib ``json`` module). Where ``ic`` is ``None``
    the entry also has ``ic_undefined``: the reason (the ``zero`` forecast is
    constant, so its rank correlation does not exist); print it as "n/a"."""
    table = forecast_table(predictions, models, y=y)
    outcome = pd.to_numeric(predictions[y], errors="coerce").to_numpy(dtype=float)
    out: dict[str, dict[str, float | int | str | None]] = {}
    for model, row in table.astype(object).iterrows():
        entry: dict[str, float | int | str | None] = {
            col: _json_number(row[col]) for col in METRIC_COLUMNS
        }
        if entry["ic"] is None:
            f = forecast_values(predictions, str(model))
            ok = np.isfinite(f) & np.isfinite(outcome)
            entry["ic_undefined"] = ic_undefined_reason(f[ok], outcome[ok]) or "not finite"
        out[str(model)] = entry
    return out


def relative_mse(
    predictions: pd.DataFrame,
    models: Sequence[str],
    y: str = "y_true",
    baseline: str = ZERO,
) -> pd.DataFrame:
    """Each model's MSE divided by ``baseline``'s MSE on the SAME rows.

    Rows are those where ``y``, ``baseline`` and every model in ``models`` are
    finite, so a model that drops rows (a longer lookback) cannot be compared
    with a baseline measured on more, or different, rows. Returns one row per
    model (``baseline`` included, ratio 1) with columns ``mse``,
    ``mse_vs_<baseline>`` and ``n`` (the common row count); index ``model``.
    """
    names = list(dict.fromkeys([*models, baseline]))
    outcome = pd.to_numeric(predictions[y], errors="coerce").to_numpy(dtype=float)
    values = {m: forecast_values(predictions, m) for m in names}
    common = np.isfinite(outcome)
    for v in values.values():
        common &= np.isfinite(v)
    n = int(common.sum())
    mse = {
        m: float(np.mean((outcome[common] - v[common]) ** 2)) if n else math.nan
        for m, v in values.items()
    }
    base = mse[baseline]
    ratio = {m: (v / base if base > 0 else math.nan) for m, v in mse.items()}
    table = pd.DataFrame({"mse": mse, f"mse_vs_{baseline}": ratio, "n": n})
    table.index.name = "model"
    return table


def fusion_counts(predictions: pd.DataFrame) -> pd.DataFrame:
    """How many decisions each fusion method made (``fusion_used``), as a one-column table."""
    return predictions["fusion_used"].value_counts().rename_axis("fusion used").rename("rows") \
        .to_frame()
