"""File mechanics under the artifact layer: atomic writes, JSON reads, file locks and full disks.

Writes go to a temp file in the same folder, then ``os.replace``: a kill never leaves half a file.
Files get the permissions of an ordinary ``open`` (``0o666`` less the umask), not the temp file's 0600.
A write that finds the disk full removes its temp file and raises ``OSError(ENOSPC)`` naming the file;
:func:`disk_full_message` says which file, how much room is left there and what to do.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from splineforecast.errors import causes

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)  # no space left, quota exceeded
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[^.]+\.tmp$")  # .<name>.<random or pid>.tmp: the temp files of a write


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
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS and not exc.filename:
            raise OSError(exc.errno, os.strerror(exc.errno), str(path)) from exc  # a file handle's error names no file
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


def disk_full(exc: BaseException) -> OSError | None:
    """The ``OSError`` of a full disk (ENOSPC, EDQUOT) that ``exc`` is or was raised from, else None."""
    for seen in causes(exc):
        if isinstance(seen, OSError) and seen.errno in DISK_FULL_ERRNOS:
            return seen
    return None


def _size(n: int) -> str:
    """``n`` bytes for a person: ``512 bytes``, ``268.0 KiB``, ``1.5 GiB``."""
    value, unit = float(n), "bytes"
    for larger in ("KiB", "MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"


def disk_full_message(err: OSError) -> str:
    """What a full disk stopped: the file being written (not its temp name), the room left there, the fix."""
    target = Path(str(err.filename2 or err.filename or ""))  # a copy's error names its source, then its target
    match = _TEMP_NAME.match(target.name)
    if match:
        target = target.with_name(match["name"])
    where = target if str(target) not in ("", ".") else Path.cwd()
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        room = f"{_size(shutil.disk_usage(where).free)} free on its file system"
    except OSError:
        room = "free space unknown"
    named = f"`{target}`" if str(target) not in ("", ".") else "a file"
    return (
        f"disk full: could not write {named} ({room}; {os.strerror(err.errno or errno.ENOSPC)}). Free space "
        "there, or point paths.artifacts (and the tracking store) at a disk with room, then run the same command "
        "again: the files written before are kept"
    )
