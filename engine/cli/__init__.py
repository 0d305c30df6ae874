"""The ``lstmknn`` command line: one module per command, parsing and printing only.

Building the parser imports no heavy dependency (torch, scikit-learn, pandas, ...): each
command imports what it runs inside its ``cmd_*`` function, so ``--help`` and
``--version`` answer at once."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from importlib import metadata

from lstmknn.engine.cli import audit, backtest, bench, paper, report, signal, sweep
from lstmknn.engine.errors import USER_ERRORS, NonFiniteForecastError

COMMANDS = (backtest, report, signal, paper, sweep, audit, bench)
DESCRIPTION = ("Walk-forward LSTM + KNN fusion backtests, as-of signals and paper trading. "
               "Run `lstmknn COMMAND --help` for a command's options.")


def version() -> str:
    try:
        return metadata.version("lstmknn")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lstmknn", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"lstmknn {version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"lstmknn: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; user errors print one line and return 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"lstmknn: error: {exc}", file=sys.stderr)
        return 2
    except NonFiniteForecastError as exc:  # a model produced NaN/inf: never traded silently
        print(f"lstmknn: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `lstmknn ... | head -1`: the reader left; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:  # unwritable output folder, full disk, ...
        print(f"lstmknn: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lstmknn: interrupted", file=sys.stderr)
        return 130
