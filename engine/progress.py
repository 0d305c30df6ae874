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
    or when stderr is not a terminal (logs and pipes get no control characters)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    # a terminal that reports no size (e.g. `script ... /dev/null`) gets 80 x 24: tqdm would
    # read 0 x 0 as "no room" and draw nothing
    size = shutil.get_terminal_size((80, 24))
    bar = tqdm(total=None, desc=desc, unit=unit, file=sys.stderr, leave=False,
               ncols=size.columns or 80, nrows=size.lines or 24)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
