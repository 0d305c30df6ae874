"""Run-folder I/O: atomic writes, JSON cleaning, timestamps, and the swap of a whole run folder.

A run folder (``backtest --out``, ``sweep --out``) carries a marker file,
``.lstmknn-run``, naming what wrote it. A new backtest run is written in full
into a hidden staging folder beside the target and then exchanged with the
old run in one ``renameat2(RENAME_EXCHANGE)`` call (Linux), so a reader sees
either the old run or the new one, never a mix. Where the kernel lacks the
exchange, two renames are used and a run killed between them is repaired by
the next one (the old run is put back). Leftover staging folders of killed
runs are removed. A folder that is not empty and carries no marker is never
written into.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmknn.engine.errors import UserError

MARKER = ".lstmknn-run"
_STAGE = ".lstmknn-staging-"
_OLD = ".lstmknn-old-"


# ----------------------------------------------------------------------------- values

def clean_json(value: Any) -> Any:
    """``value`` with numpy scalars made plain and NaN/inf as ``None`` (strict JSON), recursively."""
    if isinstance(value, Mapping):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return format_timestamp(pd.Timestamp(value))
    if isinstance(value, np.ndarray):
        return clean_json(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(value: Any, indent: int | None = 2) -> str:
    """Strict JSON text (no NaN/Infinity) of ``value`` after :func:`clean_json`."""
    return json.dumps(clean_json(value), indent=indent, allow_nan=False, default=str)


def format_timestamp(ts: pd.Timestamp, daily: bool | None = None) -> str:
    """The one rule for a bar's time in text and JSON: ``YYYY-MM-DD`` for daily bars, full
    ISO ``YYYY-MM-DDTHH:MM:SS`` for intraday ones (round-trips exactly). ``daily`` says which
    the series is; unknown (None), a bar at midnight counts as daily."""
    ts = pd.Timestamp(ts)
    if daily is None:
        daily = ts == ts.normalize()
    return ts.strftime("%Y-%m-%d") if daily and ts == ts.normalize() else ts.isoformat()


def date_format(*columns: Any) -> str | None:
    """``"%Y-%m-%d"`` when every timestamp given is at midnight (daily bars), else ``None``:
    pandas then writes full ISO timestamps, so intraday bars keep their time of day."""
    for col in columns:
        if col is None:
            continue
        idx = pd.DatetimeIndex(pd.Series(col).dropna()) if not isinstance(col, pd.DatetimeIndex) \
            else col
        if len(idx) and not (idx == idx.normalize()).all():
            return None
    return "%Y-%m-%d"


# ----------------------------------------------------------------------------- files

def umask() -> int:
    """The process's file-creation mask (read without changing it where Linux allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, content: str | bytes) -> Path:
    """Write ``content`` to ``path`` through a temporary file in the same folder and a rename.

    The file gets the mode any tool's new file gets (0666 less the umask: 0644 under umask
    022), not the 0600 of a temporary file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# ----------------------------------------------------------------------------- run folders

def is_run_folder(path: Path, kind: str | None = None) -> bool:
    """Whether ``path`` holds an lstmknn run (of ``kind``, when given)."""
    marker = path / MARKER
    if not marker.is_file() or marker.is_symlink():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and (kind is None or info.get("kind") == kind)


def check_out_dir(path: str | Path, kind: str, option: str = "--out") -> str:
    """Refuse an output folder that would lose a user's files; say what will happen.

    Allowed: a path that does not exist, an empty folder, or an lstmknn run
    folder of the same ``kind`` (replaced). Returns ``"new"``, ``"empty"`` or
    ``"replace"``; raises :class:`UserError` otherwise.
    """
    p = Path(path)
    if p.is_symlink():
        raise UserError(f"{option} {p}: is a symbolic link; name a real folder")
    if not p.exists():
        return "new"
    if not p.is_dir():
        raise UserError(f"{option} {p}: exists and is not a folder")
    entries = [e for e in p.iterdir() if not e.name.startswith(_STAGE)]
    if not entries:
        return "empty"
    if is_run_folder(p, kind):
        return "replace"
    other = " of another kind" if is_run_folder(p) else ""
    raise UserError(f"{option} {p}: folder is not empty and is not an lstmknn {kind} run"
                    f"{other}; nothing was written (choose a new or empty folder)")


def mark(folder: Path, kind: str) -> None:
    """Write the run marker (last, so a marked folder is a finished run)."""
    write_atomic(folder / MARKER, json.dumps({"kind": kind, "format": 1}) + "\n")


def _renameat2_exchange() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (both must exist); False where the system cannot."""
    fn = _renameat2_exchange()
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(target: Path, prefix: str) -> list[Path]:
    parent = target.parent
    if not parent.is_dir():
        return []
    stem = f"{prefix}{target.name}"
    return sorted(p for p in parent.glob(f"{stem}-*") if p.name.rsplit("-", 2)[0] == stem)


def _owner(path: Path) -> int | None:
    try:
        return int(path.name.rsplit("-", 2)[-2])
    except (ValueError, IndexError):
        return None


def recover(target: Path) -> None:
    """Repair what a killed run left: put a displaced old run back, remove dead staging folders."""
    for old in _leftovers(target, _OLD):
        pid = _owner(old)
        if pid is not None and pid != os.getpid() and _pid_alive(pid):
            continue
        if not target.exists():
            os.rename(old, target)  # killed between the two renames: the old run comes back
        else:
            shutil.rmtree(old, ignore_errors=True)
    for stage in _leftovers(target, _STAGE):
        pid = _owner(stage)
        if pid is not None and pid != os.getpid() and _pid_alive(pid):
            continue
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def staged_run(target: str | Path, kind: str) -> Iterator[Path]:
    """Yield a staging folder; on success it replaces ``target`` as a whole (see module doc).

    ``target`` must pass :func:`check_out_dir`. On an exception the staging
    folder is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    check_out_dir(target, kind)
    stage = Path(tempfile.mkdtemp(prefix=f"{_STAGE}{target.name}-{os.getpid()}-",
                                  dir=target.parent))
    os.chmod(stage, 0o777 & ~umask())  # a run folder like any new folder, not mkdtemp's 0700
    try:
        yield stage
        mark(stage, kind)
        publish(stage, target, kind)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def publish(stage: Path, target: Path, kind: str) -> None:
    """Make ``stage`` the run at ``target`` (checked again just before the switch)."""
    check_out_dir(target, kind)
    if not target.exists():
        os.rename(stage, target)
        return
    if exchange(stage, target):  # one atomic switch; ``stage`` now holds the old run
        shutil.rmtree(stage, ignore_errors=True)
        return
    old = target.parent / f"{_OLD}{target.name}-{os.getpid()}-{os.urandom(4).hex()}"
    os.rename(target, old)
    os.rename(stage, target)
    shutil.rmtree(old, ignore_errors=True)
