"""The one progress display: a tqdm bar on stderr when it is a terminal, nothing otherwise."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Progress = Callable[[int, int], None]


@contextmanager
def progress_bar(enabled: bool, desc: str, unit: str = "fold") -> Iterator[Progress | None]:
    """Yield a ``progress(done, total)`` callback drawing a bar, or ``None`` when disabled
    or when stderr is not a terminal (logs and pipes get no control characters).

    The bar is drawn from the first call on, so its first frame already shows the total
    (callers report ``progress(0, total)`` before the first step)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bars: list[tqdm] = []

    def update(done: int, total: int) -> None:
        if not bars:
            # a terminal that reports no size (e.g. `script ... /dev/null`) gets 80 x 24:
            # tqdm would read 0 x 0 as "no room" and draw nothing
            size = shutil.get_terminal_size((80, 24))
            bars.append(tqdm(total=total, initial=done, desc=desc, unit=unit, file=sys.stderr,
                             leave=False, ncols=size.columns or 80, nrows=size.lines or 24))
        bar = bars[0]
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()
