"""Typed, frozen run configuration, loadable from TOML and validated in one place."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


@dataclass(frozen=True)
class WalkForwardConfig:
    train_window: int = 1000
    step: int = 21
    mode: Literal["rolling", "expanding"] = "rolling"
    gap: int = 0
    horizon: int = 1


@dataclass(frozen=True)
class LSTMConfig:
    lookback: int | list[int] = 20
    hidden_size: int = 32
    num_layers: int = 1
    head_size: int = 16
    dropout: float = 0.1
    epochs: int = 40
    batch_size: int = 128
    lr: float = 0.001
    weight_decay: float = 0.01
    patience: int = 5
    val_fraction: float = 0.15
    warm_start: bool = True
    warm_epochs: int = 1
    mc_passes: int = 10
    device: Literal["cpu", "cuda", "auto"] = "auto"
    threads: int = 1
    # per-symbol scope: train fold k of every symbol as one batched computation (grouped
    # weights, CPU, one intra-op thread per process); close to, not bit-identical with, the
    # unbatched models, and independent of which symbols share a batch
    batched_symbols: bool = False


@dataclass(frozen=True)
class KNNConfig:
    n_neighbors: int | list[int] = 50
    validation_fraction: float = 0.2


@dataclass(frozen=True)
class FeaturesConfig:
    """Which features the models see: built-in names and ``module:function`` extras."""

    include: list[str] | None = None  # None: every built-in feature the data's shape allows
    custom: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelConfig:
    """How symbols share a model and what it is trained to predict."""

    scope: Literal["per_symbol", "pooled"] = "per_symbol"
    label: Literal["raw", "cs_rank", "cs_zscore"] = "raw"
    cs_features: Literal["none", "rank", "zscore"] = "none"
    regime_source: Literal["symbol", "market"] = "symbol"


@dataclass(frozen=True)
class FusionConfig:
    method: Literal["fixed", "regime", "regime_learned", "stacking"] = "regime"
    alpha: float = 0.6
    min_history: int = 252
    meta_model: Literal["ridge", "logistic"] = "ridge"
    ridge_alpha: float = 100.0


@dataclass(frozen=True)
class RegimeConfig:
    vol_window: int = 20
    quantile: float = 0.75
    alpha_calm: float = 0.7
    alpha_volatile: float = 0.4


@dataclass(frozen=True)
class SignalConfig:
    sizing: Literal["threshold", "proportional", "vol_target", "rank"] = "threshold"
    threshold: float = 0.0
    scale: float = 0.005
    target_vol: float = 0.15
    max_leverage: float = 1.0
    long_only: bool = False
    min_change: float = 0.05
    allocation: Literal["equal", "strength"] = "equal"
    top_k: int = 10
    bottom_k: int = 0  # 0: long only
    buffer: int = 0
    max_replace: int = 0  # 0: no limit
    weighting: Literal["equal", "forecast"] = "equal"
    max_weight: float = 1.0  # per name, fraction of equity
    max_gross: float = 1.0
    cost_aware: bool = True  # change a position only when the forecast beats the cost rate


@dataclass(frozen=True)
class ExecutionConfig:
    cash: float = 100_000.0
    commission: float = 0.0005
    commission_fixed: float = 0.0
    slippage: float = 0.0005
    volume_cap: float | None = None


@dataclass(frozen=True)
class ReportConfig:
    tearsheet: bool = True
    benchmark: bool = True
    n_trials: int = 1


@dataclass(frozen=True)
class Config:
    seed: int = 42
    walk_forward: WalkForwardConfig = field(default_factory=WalkForwardConfig)
    lstm: LSTMConfig = field(default_factory=LSTMConfig)
    knn: KNNConfig = field(default_factory=KNNConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    regime: RegimeConfig = field(default_factory=RegimeConfig)
    signal: SignalConfig = field(default_factory=SignalConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def __post_init__(self) -> None:
        for name in SECTIONS:  # a section given as a dict: ``Config(lstm={"epochs": 5})``
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, _section(name, value, _default_sections()[name]))
        validate(self)

    @property
    def lookbacks(self) -> list[int]:
        lb = self.lstm.lookback
        return list(lb) if isinstance(lb, (list, tuple)) else [lb]

    @property
    def max_lookback(self) -> int:
        return max(self.lookbacks)

    @property
    def cost_rate(self) -> float:
        """Proportional cost of trading one unit of value: commission plus slippage."""
        return self.execution.commission + self.execution.slippage

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self, sections: tuple[str, ...] | None = None) -> str:
        """Stable short hash of the config (or of some sections of it)."""
        d = self.to_dict()
        if sections is not None:
            d = {k: d[k] for k in sections}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


SECTIONS = {f.name: f.type for f in fields(Config) if f.name != "seed"}
# List fields where an empty list is meaningful (no built-in features, no custom ones).
EMPTY_LIST_OK = frozenset({"features.include", "features.custom"})
# Inclusive upper bounds of resource-like integers: a typo must not exhaust the machine.
INT_BOUNDS = {
    "lstm.hidden_size": (1, 4096), "lstm.num_layers": (1, 16), "lstm.head_size": (0, 4096),
    "lstm.epochs": (1, 10_000), "lstm.warm_epochs": (1, 10_000), "lstm.batch_size": (1, 65_536),
    "lstm.patience": (0, 10_000), "lstm.mc_passes": (0, 1000), "lstm.threads": (0, 256),
    "report.n_trials": (1, 1_000_000), "fusion.min_history": (10, 1_000_000),
    "regime.vol_window": (2, 100_000), "signal.top_k": (1, 100_000),
    "signal.bottom_k": (0, 100_000), "signal.buffer": (0, 100_000),
    "signal.max_replace": (0, 100_000),
    "walk_forward.train_window": (2, 10_000_000), "walk_forward.step": (1, 10_000_000),
    "walk_forward.gap": (0, 10_000_000), "walk_forward.horizon": (1, 100_000),
}
MAX_LOOKBACK = 100_000
_CUSTOM_REF = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")


def _section_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


class _Mismatch(ConfigError):
    """A value of the wrong type (a union tries its next member); other errors propagate."""


def _check_value(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against annotation ``tp``; return it (ints widened to float)."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            opts = ", ".join(repr(a) for a in allowed)
            raise _Mismatch(f"`{key}` must be one of {opts} (got {value!r})")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check_value(key, value, arg)
            except _Mismatch as exc:
                errors.append(str(exc))
        names = " or ".join(_type_name(a) for a in typing.get_args(tp))
        raise _Mismatch(f"`{key}` must be {names} (got {value!r})")
    if origin is list:
        (inner,) = typing.get_args(tp)
        if key in EMPTY_LIST_OK:
            if not isinstance(value, (list, tuple)):
                raise _Mismatch(f"`{key}` must be a list (got {value!r})")
        elif not isinstance(value, (list, tuple)) or not value:
            raise _Mismatch(f"`{key}` must be a non-empty list (got {value!r})")
        return [_check_value(f"{key}[{i}]", v, inner) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise _Mismatch(f"`{key}` must be true or false (got {value!r})")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Mismatch(f"`{key}` must be an integer (got {value!r})")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Mismatch(f"`{key}` must be a number (got {value!r})")
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            number = math.inf
        if not math.isfinite(number):
            shown = f"{value!r}" if len(repr(value)) <= 40 else "a number too large for a float"
            raise ConfigError(f"`{key}` must be a finite number (got {shown})")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise _Mismatch(f"`{key}` must be a string (got {value!r})")
        return value
    raise ConfigError(f"`{key}`: unsupported type {tp}")  # pragma: no cover


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is list:
        inner = typing.get_args(tp)[0]
        return "a list of " + {int: "integers", float: "numbers", str: "strings"}.get(inner, str(inner))
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string",
            type(None): "none"}.get(tp, str(tp))


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(cfg: Config) -> None:
    """All cross-field rules, in one place. Raises :class:`ConfigError`."""
    for name, cls in SECTIONS.items():
        section = getattr(cfg, name)
        for fname, tp in _section_types(cls if isinstance(cls, type) else type(section)).items():
            _check_value(f"{name}.{fname}", getattr(section, fname), tp)
    _check_value("seed", cfg.seed, int)
    wf, lstm, knn = cfg.walk_forward, cfg.lstm, cfg.knn
    _require(wf.step >= 1, f"`walk_forward.step` must be >= 1 (got {wf.step})")
    _require(wf.gap >= 0, f"`walk_forward.gap` must be >= 0 (got {wf.gap})")
    _require(wf.horizon >= 1, f"`walk_forward.horizon` must be >= 1 (got {wf.horizon})")
    for lb in cfg.lookbacks:
        _require(1 <= lb <= MAX_LOOKBACK, f"`lstm.lookback` must be in [1, {MAX_LOOKBACK}] (got {lb})")
        _require(
            wf.train_window > lb,
            f"`walk_forward.train_window` must be > `lstm.lookback` (got {wf.train_window} <= {lb})",
        )
    _require(len(set(cfg.lookbacks)) == len(cfg.lookbacks), "`lstm.lookback` has duplicates")
    for dotted, (lo, hi) in INT_BOUNDS.items():
        section, _, key = dotted.partition(".")
        v = getattr(getattr(cfg, section), key)
        _require(lo <= v <= hi, f"`{dotted}` must be in [{lo}, {hi}] (got {v})")
    _require(0 <= lstm.dropout < 1, f"`lstm.dropout` must be in [0, 1) (got {lstm.dropout})")
    _require(lstm.lr > 0, f"`lstm.lr` must be > 0 (got {lstm.lr})")
    _require(lstm.weight_decay >= 0, f"`lstm.weight_decay` must be >= 0 (got {lstm.weight_decay})")
    _require(0 < lstm.val_fraction < 0.5,
             f"`lstm.val_fraction` must be in (0, 0.5) (got {lstm.val_fraction})")
    ks = knn.n_neighbors if isinstance(knn.n_neighbors, list) else [knn.n_neighbors]
    for k in ks:
        _require(k >= 1, f"`knn.n_neighbors` must be >= 1 (got {k})")
        _require(k < wf.train_window,
                 f"`knn.n_neighbors` must be < `walk_forward.train_window` (got {k} >= {wf.train_window})")
    _require(0 < knn.validation_fraction < 0.5,
             f"`knn.validation_fraction` must be in (0, 0.5) (got {knn.validation_fraction})")
    fu, rg, sg, ex = cfg.fusion, cfg.regime, cfg.signal, cfg.execution
    for key, v in (("fusion.alpha", fu.alpha), ("regime.alpha_calm", rg.alpha_calm),
                   ("regime.alpha_volatile", rg.alpha_volatile)):
        _require(0 <= v <= 1, f"`{key}` must be in [0, 1] (got {v})")
    _require(fu.ridge_alpha >= 0, f"`fusion.ridge_alpha` must be >= 0 (got {fu.ridge_alpha})")
    _require(0 < rg.quantile < 1, f"`regime.quantile` must be in (0, 1) (got {rg.quantile})")
    _require(sg.threshold >= 0, f"`signal.threshold` must be >= 0 (got {sg.threshold})")
    _require(sg.scale > 0, f"`signal.scale` must be > 0 (got {sg.scale})")
    _require(sg.target_vol > 0, f"`signal.target_vol` must be > 0 (got {sg.target_vol})")
    _require(0 < sg.max_leverage <= 10,
             f"`signal.max_leverage` must be in (0, 10] (got {sg.max_leverage})")
    _require(0 <= sg.min_change < 1, f"`signal.min_change` must be in [0, 1) (got {sg.min_change})")
    _require(ex.cash > 0, f"`execution.cash` must be > 0 (got {ex.cash})")
    for key in ("commission", "slippage"):
        v = getattr(ex, key)
        _require(0 <= v < 0.1, f"`execution.{key}` must be in [0, 0.1) (got {v})")
    _require(ex.commission_fixed >= 0,
             f"`execution.commission_fixed` must be >= 0 (got {ex.commission_fixed})")
    _require(ex.volume_cap is None or 0 < ex.volume_cap <= 1,
             f"`execution.volume_cap` must be in (0, 1] (got {ex.volume_cap})")
    _require(0 < sg.max_weight <= 10, f"`signal.max_weight` must be in (0, 10] (got {sg.max_weight})")
    _require(0 < sg.max_gross <= 10, f"`signal.max_gross` must be in (0, 10] (got {sg.max_gross})")
    _require(not (sg.long_only and sg.bottom_k > 0),
             f"`signal.bottom_k` must be 0 when `signal.long_only` = true: the bottom names would "
             f"be sold short and a long-only broker never shorts (got bottom_k = {sg.bottom_k})")
    if sg.sizing == "rank":
        per_name = min(sg.max_gross / (sg.top_k + sg.bottom_k), sg.max_weight)
        _require(sg.min_change < per_name,
                 f"`signal.min_change` must be < the rank weight per name, min(max_gross / "
                 f"(top_k + bottom_k), max_weight) = {per_name:.4g} (got {sg.min_change}); "
                 "otherwise no rank order is ever placed")
    _validate_features(cfg.features)
    md = cfg.model
    _require(not lstm.batched_symbols or md.scope == "per_symbol",
             f"`lstm.batched_symbols` = true batches per-symbol models and needs `model.scope` = "
             f"'per_symbol' (got {md.scope!r})")
    _require(not lstm.batched_symbols or lstm.device != "cuda",
             "`lstm.batched_symbols` = true trains on the CPU (\"auto\" means the CPU for it); "
             "got `lstm.device` = 'cuda'")
    for key, value, neutral in (("label", md.label, "raw"), ("cs_features", md.cs_features, "none")):
        _require(value == neutral or md.scope == "pooled",
                 f"`model.{key}` = {value!r} needs `model.scope` = 'pooled' (got {md.scope!r})")


def validate_universe(cfg: Config, symbols: Sequence[str]) -> None:
    """The rules that depend on the universe a config is run on, for every command.

    Pooled models and rank sizing need two or more symbols; rank sizing must be able to
    fill its book (``top_k + bottom_k`` names at most the number of symbols).
    """
    n = len(symbols)
    shown = ", ".join(list(symbols)[:5]) + (", ..." if n > 5 else "")
    md, sg = cfg.model, cfg.signal
    _require(md.scope != "pooled" or n >= 2,
             f"`model.scope` = \"pooled\" needs two or more symbols (got {n}: {shown})")
    _require(sg.sizing != "rank" or n >= 2,
             "`signal.sizing` = \"rank\" ranks symbols against each other and needs two or more "
             f"symbols (got {n}: {shown})")
    if sg.sizing == "rank" and sg.top_k + sg.bottom_k > n:
        per_name = min(sg.max_gross / (sg.top_k + sg.bottom_k), sg.max_weight)
        _require(False, f"`signal.top_k` + `signal.bottom_k` must be <= the number of symbols "
                        f"(got {sg.top_k} + {sg.bottom_k} > {n}): each name gets "
                        f"{per_name:.4g} of equity, so at most {n} names would hold a gross "
                        f"exposure of {n * per_name:.4g} instead of `signal.max_gross` = "
                        f"{sg.max_gross:.4g}")


def _validate_features(fc: FeaturesConfig) -> None:
    for key in ("include", "custom"):
        names = getattr(fc, key) or []
        for i, name in enumerate(names):
            _require(name.strip() == name and name != "",
                     f"`features.{key}[{i}]` must be a non-empty name without spaces (got {name!r})")
        dupes = sorted({n for n in names if names.count(n) > 1})
        _require(not dupes, f"`features.{key}` has duplicates (got {dupes})")
    for i, ref in enumerate(fc.custom):
        _require(_CUSTOM_REF.fullmatch(ref) is not None,
                 f"`features.custom[{i}]` must be a 'module:function' reference (got {ref!r})")
    _require(fc.include != [] or bool(fc.custom),
             "`features.include` is empty and `features.custom` names none: the models would see "
             "no features (got include = [], custom = [])")


def _section(name: str, value: dict[str, Any], default: Any) -> Any:
    """Section ``name`` from a dict of its keys over ``default``; unknown keys are listed."""
    hints = _section_types(type(default))
    for key in value:
        if key not in hints:
            raise ConfigError(f"unknown key `{name}.{key}` (known: {', '.join(hints)})")
    checked = {k: _check_value(f"{name}.{k}", v, hints[k]) for k, v in value.items()}
    return replace(default, **checked)


def _default_sections() -> dict[str, Any]:
    return {f.name: f.default_factory() for f in fields(Config)  # type: ignore[misc]
            if f.name != "seed"}


def from_dict(raw: dict[str, Any], base: Config | None = None) -> Config:
    """Build a Config from nested dicts (TOML layout); unknown keys are errors."""
    base = base or Config()
    updates: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "seed":
            updates["seed"] = _check_value("seed", value, int)
            continue
        if name not in SECTIONS:
            raise ConfigError(f"unknown section `{name}` (known: seed, {', '.join(SECTIONS)})")
        if not isinstance(value, dict):
            raise ConfigError(f"`{name}` must be a table of keys")
        updates[name] = _section(name, value, getattr(base, name))
    return replace(base, **updates)


def with_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Apply dotted overrides such as ``{"lstm.lookback": 10, "seed": 3}``."""
    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        if dotted == "seed":
            nested["seed"] = value
            continue
        section, _, key = dotted.partition(".")
        if not key:
            raise ConfigError(f"`{dotted}`: expected `section.key`")
        nested.setdefault(section, {})[key] = value
    return from_dict(nested, base=cfg)


def read_toml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed file is a one-line :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: {what} file not found")
    try:
        return tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: invalid TOML ({exc})") from None


def load_config(path: str | Path | None = None, base: Config | None = None) -> Config:
    """Load a TOML config file (missing keys keep their defaults)."""
    if path is None:
        return base or Config()
    p = Path(path)
    raw = read_toml(p)
    try:
        return from_dict(raw, base=base)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
