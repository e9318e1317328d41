"""Where a run's files live on disk, and atomic writes (temp file in the same folder, then rename)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from splineforecast.errors import ContractError, ErrorCode

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a safe name (SPEC §3), else raise CONFIG_ERROR."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id) or ".." in run_id:
        raise ContractError(
            ErrorCode.CONFIG_ERROR,
            f"run_id {run_id!r} is not a safe name: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..'",
        )
    return run_id


@dataclass(frozen=True)
class RunPaths:
    """The local files of one run, under the artifact root (the runbook's layout)."""

    root: Path
    run_id: str

    @property
    def processed_dir(self) -> Path:
        return self.root / "processed" / self.run_id

    @property
    def processed_npz(self) -> Path:
        return self.processed_dir / "processed.npz"

    @property
    def meta_json(self) -> Path:
        return self.processed_dir / "meta.json"

    @property
    def split_contract_json(self) -> Path:
        return self.processed_dir / "split_contract.json"

    @property
    def preprocessor_dir(self) -> Path:
        return self.root / "preprocessor" / self.run_id

    @property
    def preprocessor_json(self) -> Path:
        return self.preprocessor_dir / "preprocessor.json"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints" / self.run_id

    @property
    def config_dir(self) -> Path:
        return self.root / "config" / self.run_id

    @property
    def metrics_json(self) -> Path:
        return self.root / "metrics" / self.run_id / "metrics.json"

    @property
    def report_dir(self) -> Path:
        return self.root / "reports" / self.run_id

    @property
    def best_ckpt(self) -> Path:
        return self.checkpoints_dir / "best.ckpt"

    @property
    def last_ckpt(self) -> Path:
        return self.checkpoints_dir / "last.ckpt"

    @property
    def config_yaml(self) -> Path:
        return self.config_dir / "config.yaml"

    @property
    def overrides_yaml(self) -> Path:
        return self.config_dir / "overrides.yaml"

    @property
    def report_md(self) -> Path:
        return self.report_dir / "report.md"

    @property
    def forecast_png(self) -> Path:
        return self.report_dir / "forecast.png"

    @property
    def serving_json(self) -> Path:
        """What the pyfunc model needs besides the preprocessor and checkpoint (written at train time)."""
        return self.root / "model" / self.run_id / "serving.json"

    @property
    def forecast_csv(self) -> Path:
        """stage=predict's output."""
        return self.root / "predictions" / self.run_id / "forecast.csv"


def _atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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


def read_json_artifact(path: Path, what: str) -> Any:
    """Parse an existing JSON artifact; refuse one that is not valid JSON (ARTIFACT_CONTRACT_ERROR)."""
    try:
        return read_json(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError(ErrorCode.ARTIFACT_CONTRACT_ERROR, f"{what} `{path}` is not valid JSON: {exc}") from exc


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def run_lock(paths: RunPaths) -> Iterator[None]:
    """Hold the run_id for this process, so a second live process is refused (RUN_CONFLICT).

    The lock is an ``flock`` on a file outside the artifact tree (the system temp folder), so the
    kernel releases it when the holder dies; a lock left by a dead process is taken over with a warning.
    """
    digest = hashlib.sha256(str(paths.root.absolute()).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "splineforecast-locks" / digest
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{paths.run_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise ContractError(
                ErrorCode.RUN_CONFLICT,
                f"run_id `{paths.run_id}` is in use by process {holder}; wait for it or choose another run_id",
            ) from None
        previous = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if previous.isdigit() and int(previous) != os.getpid() and not _pid_alive(int(previous)):
            print(
                f"warning: run_id `{paths.run_id}`: taking over the lock of process {previous}, which is gone",
                file=sys.stderr,
                flush=True,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # a clean release leaves no pid behind
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
