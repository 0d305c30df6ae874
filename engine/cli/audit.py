"""``lstmknn audit``: proof that a configuration cannot see the future (wired when engine.audit lands)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    return None
