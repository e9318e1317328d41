"""File mechanics under the artifact layer: atomic writes, JSON reads and file locks.

Writes go to a temp file in the same folder, then ``os.replace``: a kill never leaves half a file.
Files get the permissions of an ordinary ``open`` (``0o666`` less the umask), not the temp file's 0600.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would create it: teammates may read a run's files
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""

    def write(fh: IO[bytes]) -> None:
        fh.write(data)

    _atomic(path, write)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_bytes(path, (json.dumps(obj, indent=2, allow_nan=True) + "\n").encode())


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` to ``path`` atomically (through a file handle: no ``.npz`` appended)."""
    _atomic(path, lambda fh: np.savez(fh, **arrays))  # type: ignore[arg-type]


def read_json(path: Path) -> Any:
    """Parse a JSON file (UTF-8)."""
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


@contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[int]:
    """Hold an exclusive ``flock`` on ``path`` (created when missing); yields its file descriptor.

    The kernel releases the lock when the holder dies.

    Raises:
        BlockingIOError: ``blocking`` is false and another process holds the lock.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
