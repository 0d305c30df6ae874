"""lstmknn: walk-forward LSTM + KNN forecasts, one strategy, backtests and signals.

The public Python API (everything else is internal and may change):

>>> import lstmknn
>>> run = lstmknn.backtest(df)            # an OHLCV DataFrame, a dict, a path or "sp500"
>>> run.stats                             # a Series of the strategy's figures

See the README's "Python" section for the whole surface. Names are imported on first use,
so ``import lstmknn`` (and the command line) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from importlib import metadata as _metadata
from typing import Any

try:
    __version__ = _metadata.version("lstmknn")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

_HOMES = {
    "AuditReport": "lstmknn.engine.audit",
    "Config": "lstmknn.engine.config",
    "ConfigError": "lstmknn.engine.config",
    "DataError": "lstmknn.data.errors",
    "FunctionStrategy": "lstmknn.strategies.strategy",
    "Run": "lstmknn.engine.api",
    "Strategy": "lstmknn.strategies.strategy",
    "StrategyError": "lstmknn.strategies.strategy",
    "StrategyParams": "lstmknn.strategies.params",
    "UserError": "lstmknn.engine.errors",
    "audit": "lstmknn.engine.api",
    "backtest": "lstmknn.engine.api",
    "load": "lstmknn.engine.api",
    "make_config": "lstmknn.engine.api",
    "signal": "lstmknn.engine.api",
}

__all__ = sorted([*_HOMES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lstmknn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
