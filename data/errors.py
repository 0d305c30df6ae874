"""Errors raised for bad user input (reported as one line by the CLI)."""


class DataError(ValueError):
    """The price data is unusable; the message says what is wrong and where."""


class TooLittleDataError(DataError):
    """Too few bars for a forecast under the configuration (the message says how many it needs)."""
