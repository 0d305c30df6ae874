"""On-disk cache of fitted fold models.

An entry is keyed by the model configuration, the seed, the fold's
boundaries and a hash of every price row the fold could have seen. A file
holds a magic tag, the SHA-256 of its payload and the payload, written
atomically and read with ``torch.load(weights_only=True)`` after the checksum
matches. Anything unexpected (bad checksum, foreign key, non-finite tensors,
a ``check`` the caller supplies failing, a folder or link where the entry
should be, an unreadable file) is a miss with a one-line :class:`CacheWarning`;
the entry is rebuilt and overwritten. A cache folder that cannot be written
costs one warning and the run goes on without saving entries.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lstmknn.engine.defaults import DEFAULT_CACHE  # noqa: F401 - re-exported
from lstmknn.engine.runio import write_atomic

MAGIC = b"LSTMKNN-FOLD-1\n"
SUFFIX = ".fold"  # entries of the older, checksum-less ``.pt`` format are never read
_DIGEST = hashlib.sha256().digest_size

Check = Callable[[dict[str, Any]], str | None]


class CacheWarning(UserWarning):
    """A cache entry was not used, or the cache cannot be written."""


def fold_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def non_finite(entry: Any, where: str = "") -> str | None:
    """Where the first NaN/inf floating tensor or float of ``entry`` is, else None."""
    if isinstance(entry, dict):
        for k, v in entry.items():
            if (found := non_finite(v, f"{where}/{k}")) is not None:
                return found
    elif isinstance(entry, (list, tuple)):
        for i, v in enumerate(entry):
            if (found := non_finite(v, f"{where}/{i}")) is not None:
                return found
    elif isinstance(entry, torch.Tensor):
        if entry.is_floating_point() and not bool(torch.isfinite(entry).all()):
            return where or "/"
    elif isinstance(entry, float) and not math.isfinite(entry):
        return where or "/"
    return None


class FoldCache:
    """A folder of ``<key[:2]>/<key>.fold`` entries; counts its ``hits`` and ``misses``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.writable = True

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{SUFFIX}"

    def _warn(self, message: str) -> None:
        warnings.warn(message, CacheWarning, stacklevel=3)

    def get(self, key: str, check: Check | None = None) -> dict[str, Any] | None:
        """The entry stored under ``key``, or None (a miss) if absent or not trustworthy.

        ``check(entry)`` returns why an otherwise valid entry must not be used
        (e.g. tensor shapes that do not fit the model), or None.
        """
        path = self._path(key)
        if not os.path.lexists(path):
            self.misses += 1
            return None
        try:
            entry = self._read(path, key)
            problem = non_finite(entry)
            if problem is not None:
                raise ValueError(f"non-finite values at {problem}")
            if check is not None and (problem := check(entry)) is not None:
                raise ValueError(problem)
        except Exception as exc:  # never trusted: rebuilt and overwritten by the next put
            self._warn(f"fold cache entry {path} is unusable ({_first_line(exc)}); rebuilding it")
            self.misses += 1
            return None
        self.hits += 1
        return entry

    @staticmethod
    def _read(path: Path, key: str) -> dict[str, Any]:
        if path.is_symlink() or not path.is_file():
            raise ValueError("not a regular file")
        entry = decode_entry(path.read_bytes())
        if entry.get("key") != key:
            raise ValueError("stored under another key")
        return entry

    def put(self, key: str, entry: dict[str, Any]) -> bool:
        """Store ``entry`` atomically under ``key``; False if it was not stored.

        An entry with non-finite values is not stored. The first failure to
        write warns once and turns writing off for this cache object.
        """
        if not self.writable or non_finite(entry) is not None:
            return False
        blob = encode_entry(key, entry)
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)  # a folder squatting on the entry's name
            write_atomic(path, blob)
        except OSError as exc:
            self.writable = False
            self._warn(f"fold cache {self.root} cannot be written ({_first_line(exc)}); "
                       "running without saving fitted folds")
            return False
        return True


def encode_entry(key: str, entry: dict[str, Any]) -> bytes:
    """The bytes of a cache file: magic tag, SHA-256 of the payload, payload (``entry`` + key)."""
    buf = io.BytesIO()
    torch.save({**entry, "key": key}, buf)
    payload = buf.getvalue()
    return MAGIC + hashlib.sha256(payload).digest() + payload


def decode_entry(blob: bytes) -> dict[str, Any]:
    """The entry in a cache file's bytes; ``ValueError`` if the tag or checksum is wrong."""
    head = len(MAGIC) + _DIGEST
    if not blob.startswith(MAGIC) or len(blob) < head:
        raise ValueError("not a fold cache file")
    if hashlib.sha256(blob[head:]).digest() != blob[len(MAGIC):head]:
        raise ValueError("checksum mismatch")
    entry = torch.load(io.BytesIO(blob[head:]), map_location="cpu", weights_only=True)
    if not isinstance(entry, dict):
        raise ValueError("not a fold cache entry")
    return entry


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
