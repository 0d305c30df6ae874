"""lstmknn: walk-forward LSTM + KNN forecasts, one strategy, backtests and signals.

The public Python API (everything else is internal and may change):

>>> import lstmknn
>>> run = lstmknn.backtest(df)            # an OHLCV DataFrame, a dict, a path or "sp500"
>>> run.stats                             # a Series of the strategy's figures

See the README's "Python" section for the whole surface.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from data.errors import DataError
from engine.api import Run, audit, backtest, load, signal
from engine.api import make_config as make_config
from engine.audit import AuditReport
from engine.config import Config, ConfigError
from engine.errors import UserError
from strategies.params import StrategyParams
from strategies.strategy import FunctionStrategy, Strategy, StrategyError

try:
    __version__ = _metadata.version("lstmknn")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "AuditReport",
    "Config",
    "ConfigError",
    "DataError",
    "FunctionStrategy",
    "Run",
    "Strategy",
    "StrategyError",
    "StrategyParams",
    "UserError",
    "__version__",
    "audit",
    "backtest",
    "load",
    "make_config",
    "signal",
]
