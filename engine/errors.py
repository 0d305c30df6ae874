"""User-facing errors: the CLI prints them as one line and exits non-zero."""

from lstmknn.data.errors import DataError
from lstmknn.engine.config import ConfigError


class UserError(ValueError):
    """A request that cannot be carried out as given (bad path, missing run files, ...)."""


class NonFiniteForecastError(ValueError):
    """A model forecast NaN or inf for some bars of a fold: such forecasts are never traded."""


USER_ERRORS = (DataError, ConfigError, UserError)
