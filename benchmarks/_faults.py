"""What the fault harness (``benchmarks/faults.py``) runs faults with: the CLI in a folder of its own, a small
tmpfs, an ``mlflow server`` that can be killed and started again, and checks of a run's local files.

A full disk is real where the machine lets this process mount a tmpfs (root, or CAP_SYS_ADMIN); elsewhere
:data:`INJECT_ENOSPC` runs the CLI with ``OSError(ENOSPC)`` raised at the write of one named file, after
part of it reached its temp file, as a full disk raises it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FAST = ("data=tiny", "trainer=smoke")
TRAINED = ("processed_npz", "meta_json", "split_contract_json", "preprocessor_json", "best_ckpt", "last_ckpt")
TRAINED += ("config_yaml", "metrics_json", "report_md", "forecast_png", "serving_json")  # a finished run's files
MLFLOW_ARTIFACTS = {"config", "processed", "preprocessor", "checkpoints", "metrics.json", "report.md", "model"}

# the CLI with a full disk at the write of the file named by argv[1] (its temp file gets 4 KiB first)
INJECT_ENOSPC = """
import errno, os, sys
from pathlib import Path
from lightning_fabric.plugins.io import torch_io
from splineforecast import files
target = sys.argv.pop(1)

def _full(path):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

def _fail_at_write(fh):
    fh.write(bytes(4096))
    fh.flush()
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

_atomic, _save = files._atomic, torch_io._atomic_save
files._atomic = lambda path, write: _atomic(path, _fail_at_write if path.name == target else write)

def _save_ckpt(checkpoint, path):
    if Path(path).name.startswith(f".{target}."):  # AtomicCheckpointIO's temp file of the target
        Path(path).write_bytes(bytes(4096))
        _full(path)
    _save(checkpoint, path)

torch_io._atomic_save = _save_ckpt
from splineforecast.__main__ import main
sys.argv = ["splineforecast", *sys.argv[1:]]
sys.exit(main())
"""


def migrated_store(folder: Path) -> Path:
    """An MLflow sqlite store with its schema and no run, to copy into each fault's folder (``Cli(seed=)``)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder.mkdir(parents=True, exist_ok=True)
    store = SqlAlchemyStore(f"sqlite:///{folder}/mlflow.db", str(folder / "artifacts"))
    store.engine.dispose()
    return folder / "mlflow.db"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def failure(stderr: str) -> dict[str, Any] | None:
    """The last SPEC §3 JSON line on ``stderr``, or None."""
    lines = [line for line in stderr.splitlines() if line.startswith('{"ok": false')]
    return json.loads(lines[-1]) if lines else None


def message(stderr: str) -> str:
    """The error message of the JSON line on ``stderr`` ("" when there is none)."""
    found = failure(stderr)
    return "" if found is None else str(found["error"]["message"])


class Cli:
    """``python -m splineforecast`` run in ``root`` with a clean MLflow environment and one torch thread.

    ``store`` (default: a sqlite store in ``root/mlruns``, a copy of ``seed`` when given) and the artifact
    root ``root/artifacts`` are added to every command.
    """

    def __init__(self, root: Path, store: str | None = None, seed: Path | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.store = store or f"sqlite:///{root}/mlruns/mlflow.db"
        if seed is not None and store is None:  # a migrated empty store: the run skips MLflow's migrations
            (root / "mlruns").mkdir(exist_ok=True)
            shutil.copyfile(seed, root / "mlruns" / "mlflow.db")
        self.artifacts = root / "artifacts"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        self.env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")

    def argv(self, overrides: Sequence[str], inject: str | None = None) -> list[str]:
        head = [sys.executable, "-c", INJECT_ENOSPC, inject] if inject else [sys.executable, "-m", "splineforecast"]
        return [*head, *overrides, f"tracking.uri={self.store}", f"paths.artifacts={self.artifacts}"]

    def __call__(
        self, *overrides: str, inject: str | None = None, timeout: float = 1800
    ) -> subprocess.CompletedProcess[str]:
        argv = self.argv(overrides, inject)
        return subprocess.run(argv, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout)

    def start(self, *overrides: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(overrides), cwd=self.root, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def paths(self, run_id: str) -> Any:
        from splineforecast.artifacts import RunPaths

        return RunPaths(self.artifacts, run_id)


def wait_for(ready: Callable[[], bool], proc: subprocess.Popen[str] | None, timeout: float, poll: float) -> bool:
    """Poll ``ready()`` until true (True), or ``proc`` ended or ``timeout`` passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(poll)
    return False


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[bool]:
    """Mount a tmpfs of ``size`` (``mount -o size=``) on ``where``; yields whether it is mounted (not: no right)."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield False
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def grow(where: Path, size: str) -> None:
    """Give the tmpfs on ``where`` more room (a disk freed)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True, capture_output=True)


def temp_files(root: Path) -> list[str]:
    """Temp files of atomic writes left under ``root`` (``.<name>.<suffix>.tmp``): half files."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*.tmp"))


def intact(paths: Any, names: Sequence[str]) -> list[str]:
    """Which of the run's files ``names`` (RunPaths attributes) are missing or do not read back: [] when none."""
    from splineforecast.data.processed import read_processed

    bad = []
    for name in names:
        path = getattr(paths, name)
        try:
            if name == "processed_npz":
                read_processed(path)
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".ckpt":
                import torch

                torch.load(path, map_location="cpu", weights_only=True)
            elif path.stat().st_size == 0:
                raise ValueError("empty")
        except Exception:  # noqa: BLE001 - any failure to read back is what is reported
            bad.append(name)
    return bad


class MlflowServer:
    """``mlflow server`` on loopback with its own sqlite store (a copy of ``seed``) and proxied artifacts under
    ``root``; started again, it keeps its port and store."""

    def __init__(self, root: Path, seed: Path | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        if seed is not None:  # a migrated empty store: the server skips MLflow's migrations
            shutil.copyfile(seed, root / "srv.db")
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        argv = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--workers", "1", "--backend-store-uri", f"sqlite:///{self.root}/srv.db"]
        argv += ["--artifacts-destination", str(self.root / "art")]
        log = (self.root / "server.log").open("ab")
        self.proc = subprocess.Popen(argv, cwd=self.root, env=env, stdout=log, stderr=log, start_new_session=True)
        log.close()
        if not wait_for(self.healthy, None, timeout, 0.25):
            self.kill()
            raise RuntimeError(f"mlflow server did not start: {(self.root / 'server.log').read_text()[-2000:]}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server and its workers (its process group)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


def runs(store: str, run_id: str) -> list[Any]:
    """The MLflow runs tagged with our ``run_id`` in ``store`` (any experiment)."""
    import mlflow

    from splineforecast.tracking import RUN_ID_TAG

    client = mlflow.MlflowClient(store)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'")


def artifact_names(store: str, mlflow_run_id: str) -> set[str]:
    import mlflow

    return {a.path for a in mlflow.MlflowClient(store).list_artifacts(mlflow_run_id)}


def excerpt(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."
