"""Feature sets: built-in features chosen by name, plus user functions ``module:function``.

A user feature is a function ``f(prices)`` or ``f(prices, panel)`` returning a
DataFrame (or a named Series) of new columns on the same index as ``prices``
(the OHLCV frame of one symbol). ``panel`` is a dict ``symbol -> price frame``
of every symbol in a universe run (None outside one). Modules are imported
from the current directory or ``PYTHONPATH``. A function may declare how many
leading bars its values need to stop depending on where the data starts with
an attribute ``warmup`` (an int, or a dict column -> int); the audit's
recursive check compares values only after it.

What comes back is validated: same index, unique column names, numeric, no
infinities, within +-1e15 (the float32 training must not overflow), finite after
each column's warm-up (its first finite row), no constant column. A problem is
one line naming the function and the column. Whatever a user's module prints goes
to stderr, and ``sys.exit()`` inside it is a failure like any other.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmknn.data.errors import DataError
from lstmknn.data.features import FEATURE_NAMES, SETTLE_WARMUP, build_features, warmup_rows
from lstmknn.engine.config import ConfigError, FeaturesConfig
from lstmknn.engine.runio import format_timestamp

Panel = Mapping[str, pd.DataFrame]
# Largest |value| of a feature: the LSTM's scaler squares deviations in float32 (max 3.4e38)
# and sums them over every training row, so values stay far below 1e19.
MAX_ABS = 1e15
OWNER_ATTR = "feature_owner"  # frame.attrs key: custom column -> the reference that made it
_LENIENT: ContextVar[bool] = ContextVar("lenient_features", default=False)


@contextmanager
def lenient() -> Iterator[None]:
    """Within this block user features are validated leniently (see :func:`validate`).

    The audit uses it: a look-ahead feature computed on truncated data ends in
    NaN, which the audit must report as a difference rather than refuse.
    """
    token = _LENIENT.set(True)
    try:
        yield
    finally:
        _LENIENT.reset(token)


@dataclass(frozen=True)
class CustomFeature:
    """A resolved user feature function."""

    ref: str
    func: Callable[..., Any]
    wants_panel: bool
    source_sha256: str
    warmup: int | dict[str, int] | None


def _import(module: str, ref: str) -> Any:
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        with user_code():
            return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"`features.custom` {ref}: cannot import {module} ({exc}); modules are "
                          "looked up in the current directory and PYTHONPATH") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the user's module failed (or exited) while importing
        raise ConfigError(f"`features.custom` {ref}: importing {module} {_failure(exc)}") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _source_sha(module: Any, func: Callable[..., Any]) -> str:
    """Hash of the module's source file (helpers it calls included), else of the function."""
    path = getattr(module, "__file__", None)
    if path and Path(path).is_file():
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    try:
        return hashlib.sha256(inspect.getsource(func).encode()).hexdigest()
    except (OSError, TypeError):
        return hashlib.sha256(repr(func).encode()).hexdigest()


def _bars(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0


def _valid_warmup(warmup: Any) -> bool:
    """An int >= 0, or a dict of column names to ints >= 0."""
    if isinstance(warmup, dict):
        return all(isinstance(c, str) and _bars(v) for c, v in warmup.items())
    return _bars(warmup)


@contextmanager
def user_code() -> Iterator[None]:
    """Around every call into a user's module: what it prints goes to stderr, so the
    machine-readable output on stdout (``audit --json``, ``signal --format json``) stays
    clean."""
    with redirect_stdout(sys.stderr):
        yield


def _failure(exc: BaseException) -> str:
    """One line on what a user's code raised (``sys.exit(3)`` included)."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    return f"failed: {_one_line(exc)}{_where(exc)}"


@lru_cache(maxsize=256)
def resolve_one(ref: str) -> CustomFeature:
    """Import ``module:function`` and check it is a callable of one or two arguments."""
    module_name, sep, name = ref.partition(":")
    if not sep or not module_name or not name:
        raise ConfigError(f"`features.custom` {ref!r}: expected \"module:function\"")
    module = _import(module_name, ref)
    func = getattr(module, name, None)
    if func is None or not callable(func):
        raise ConfigError(f"`features.custom` {ref}: {module_name} has no function {name}")
    try:
        params = [p for p in inspect.signature(func).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    required = [p for p in params if p.default is p.empty]
    if not params or len(required) > 2:
        raise ConfigError(f"`features.custom` {ref}: must take (prices) or (prices, panel)")
    warmup = getattr(func, "warmup", None)
    if warmup is not None and not _valid_warmup(warmup):
        raise ConfigError(f"`features.custom` {ref}: attribute warmup must be a number of bars "
                          f"(an int >= 0) or a dict column name -> int >= 0 (got {warmup!r:.80})")
    return CustomFeature(ref, func, len(params) >= 2, _source_sha(module, func), warmup)


def resolve_custom(refs: Iterable[str]) -> tuple[CustomFeature, ...]:
    """Resolve every reference (``ConfigError`` on the first that cannot be used)."""
    return tuple(resolve_one(r) for r in refs)


def _one_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0]}" if msg else type(exc).__name__


def _where(exc: BaseException) -> str:
    """``file:line`` of the deepest frame of the exception (the user's code)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""


def validate(out: Any, prices: pd.DataFrame, ref: str, *, strict: bool = True) -> pd.DataFrame:
    """Check what a user feature returned; a float64 frame, or one clear ``DataError``.

    ``strict=False`` (used by the audit) allows non-finite values after the
    warm-up (the truncated data of a look-ahead feature ends in NaN); every
    other check still applies.
    """
    if isinstance(out, pd.Series):
        if out.name is None:
            out = out.rename(ref.partition(":")[2])
        out = out.to_frame()
    if not isinstance(out, pd.DataFrame):
        raise DataError(f"custom feature {ref} returned {type(out).__name__}, expected a "
                        "DataFrame of new columns on the price frame's index")
    if out.shape[1] == 0:
        raise DataError(f"custom feature {ref} returned no columns")
    if not out.index.equals(prices.index):
        if len(out.index) != len(prices.index):
            detail = f"{len(out.index)} rows, the price frame has {len(prices.index)}"
        else:
            pos = int(np.flatnonzero(out.index != prices.index)[0])
            detail = (f"row {pos} is {out.index[pos]}, the price frame has "
                      f"{format_timestamp(prices.index[pos])}")
        raise DataError(f"custom feature {ref}: index does not match the price frame's ({detail})")
    cols: dict[str, np.ndarray] = {}
    for col in out.columns:
        if not isinstance(col, str) or not col:
            raise DataError(f"custom feature {ref}: column {col!r} must be named by a non-empty string")
        if col in cols or (out.columns == col).sum() > 1:
            raise DataError(f"custom feature {ref}: column {col} appears twice")
        series = out[col]
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            raise DataError(f"custom feature {ref}: column {col} is not numeric ({series.dtype})")
        values = series.to_numpy(dtype=float, na_value=np.nan)
        if np.isinf(values).any():
            pos = int(np.flatnonzero(np.isinf(values))[0])
            raise DataError(f"custom feature {ref}: column {col} is infinite at "
                            f"{format_timestamp(prices.index[pos])}")
        huge = np.flatnonzero(np.abs(np.nan_to_num(values)) > MAX_ABS)
        if huge.size:
            pos = int(huge[0])
            raise DataError(f"custom feature {ref}: column {col} is {values[pos]:.3g} at "
                            f"{format_timestamp(prices.index[pos])}; feature values must stay within "
                            f"+-{MAX_ABS:g} to be scaled and trained in float32 (rescale it, e.g. "
                            "take a log or a ratio)")
        finite = np.isfinite(values)
        if not finite.any():
            raise DataError(f"custom feature {ref}: column {col} has no finite value")
        first = int(np.argmax(finite))
        if strict and not finite[first:].all():
            pos = first + int(np.argmin(finite[first:]))
            raise DataError(f"custom feature {ref}: column {col} is NaN at "
                            f"{format_timestamp(prices.index[pos])}, after its warm-up ended at "
                            f"{format_timestamp(prices.index[first])} (a value that is missing "
                            "at the end usually reads rows after the bar)")
        rest = values[first:][finite[first:]]
        if strict and rest.size > 1 and np.all(rest == rest[0]):
            raise DataError(f"custom feature {ref}: column {col} is constant ({rest[0]!r})")
        cols[col] = values
    return pd.DataFrame(cols, index=prices.index, dtype="float64")


def frozen_panel(frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """A universe's frames as a panel for custom features: copies whose arrays are read-only,
    so no feature can alter the engine's prices (each call gets its own shallow copies)."""
    out = {}
    for symbol, frame in frames.items():
        copy = frame.copy()
        for block in copy._mgr.blocks:  # pandas has no public read-only flag
            block.values.flags.writeable = False
        out[symbol] = copy
    return out


def compute_custom(prices: pd.DataFrame, refs: Iterable[str], panel: Panel | None = None, *,
                   strict: bool = True) -> pd.DataFrame:
    """Every user feature's columns on ``prices`` (validated), in reference order."""
    parts = []
    seen: dict[str, str] = {name: "the built-in features" for name in FEATURE_NAMES}
    for feature in resolve_custom(refs):
        if feature.wants_panel:  # fresh copies per call: one feature cannot alter another's input
            view = {s: f.copy(deep=False) for s, f in (panel or {}).items()}
            args: tuple = (prices.copy(), view)
        else:
            args = (prices.copy(),)
        try:
            with user_code():
                out = feature.func(*args)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # the user's code failed or exited: one line, with where
            raise DataError(f"custom feature {feature.ref} {_failure(exc)}") from None
        frame = validate(out, prices, feature.ref, strict=strict and not _LENIENT.get())
        for col in frame.columns:
            if col in seen:
                raise ConfigError(f"custom feature {feature.ref}: column {col} is already "
                                  f"defined by {seen[col]}")
            seen[col] = feature.ref
        parts.append(frame)
    out = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=prices.index, dtype="float64")
    out.attrs[OWNER_ATTR] = {c: r for c, r in seen.items() if r != "the built-in features"}
    return out


def feature_frame(prices: pd.DataFrame, features: FeaturesConfig,
                  available: Iterable[str] | None = None, *, custom: pd.DataFrame | None = None,
                  panel: Panel | None = None, strict: bool = True) -> pd.DataFrame:
    """Built-in features chosen by ``features.include``, then the custom ones.

    ``custom`` passes the custom columns already computed (for instance with
    the universe's panel); otherwise they are computed here.
    """
    built = build_features(prices, features.include, available)
    if custom is None:
        custom = compute_custom(prices, features.custom, panel, strict=strict)
    clash = set(built.columns) & set(custom.columns)
    if clash:
        raise ConfigError(f"custom feature column(s) {', '.join(sorted(clash))} clash with built-ins")
    frame = pd.concat([built, custom], axis=1) if custom.shape[1] else built
    frame.attrs[OWNER_ATTR] = dict(custom.attrs.get(OWNER_ATTR, {}))
    if frame.shape[1] == 0:
        raise ConfigError("`features`: no feature selected (include is empty and custom is empty)")
    return frame


def feature_set_id(features: FeaturesConfig) -> dict[str, Any]:
    """What identifies a feature set in a cache key: names, custom refs and their source hashes."""
    return {"include": None if features.include is None else list(features.include),
            "custom": [[f.ref, f.source_sha256] for f in resolve_custom(features.custom)]}


def declared_warmups(frame: pd.DataFrame, features: FeaturesConfig | None = None) -> dict[str, int]:
    """Bars after which each column must not depend on where the data starts.

    The first finite row, or later where a built-in (EMA-seeded) or a user
    function (attribute ``warmup``) declares more.
    """
    out = warmup_rows(frame)
    declared: dict[str, int] = dict(SETTLE_WARMUP)
    owners = frame.attrs.get(OWNER_ATTR, {})
    for feature in resolve_custom(features.custom if features else ()):
        if isinstance(feature.warmup, int):
            declared.update({c: feature.warmup for c, ref in owners.items() if ref == feature.ref})
        elif isinstance(feature.warmup, dict):
            declared.update({str(c): int(v) for c, v in feature.warmup.items()})
    return {c: max(n, declared.get(c, 0)) for c, n in out.items()}
