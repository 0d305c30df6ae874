"""Positional walk-forward folds (start inclusive, end exclusive)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fold:
    """One retrain: fit on samples ``[train_start, train_end)``, predict ``[test_start, test_end)``.

    Positions index the bars of the price frame. Every training sample's label
    (known at the close of ``i + horizon``) is known at the close of
    ``test_start``, when the fold's model is fitted and its first decision made.
    """

    index: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int

    @property
    def train_size(self) -> int:
        return self.train_end - self.train_start


def make_folds(
    n_bars: int,
    first_sample: int,
    train_window: int,
    step: int,
    *,
    mode: str = "rolling",
    gap: int = 0,
    horizon: int = 1,
) -> list[Fold]:
    """Folds over ``n_bars`` bars whose first usable sample is ``first_sample``.

    The purge between the last training sample and the first decision is
    ``horizon - 1 + gap`` bars, so no training label is unknown at decision time.
    Fold boundaries depend only on the data's start and the settings, never on
    how many bars follow: the last fold is simply cut at ``n_bars``.
    """
    if step < 1 or train_window < 1:
        raise ValueError("step and train_window must be >= 1")
    purge = horizon - 1 + gap
    first_test = first_sample + train_window + purge
    folds: list[Fold] = []
    start = first_test
    while start < n_bars:
        train_end = start - purge
        train_start = train_end - train_window if mode == "rolling" else first_sample
        folds.append(Fold(len(folds), train_start, train_end, start, min(start + step, n_bars)))
        start += step
    return folds


def bars_needed(first_sample: int, train_window: int, gap: int = 0, horizon: int = 1) -> int:
    """Bars required for at least one out-of-sample decision with a known label."""
    return first_sample + train_window + horizon - 1 + gap + 1 + horizon
