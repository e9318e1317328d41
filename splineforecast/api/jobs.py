"""Training jobs: the API builds Hydra overrides from an allow-listed body and runs the CLI.

A job is a subprocess ``python -m splineforecast <overrides>``; the CLI returns SPEC exit codes and
prints one JSON error line on stderr, which becomes the failed job's ``error``. At most
``max_jobs`` run at once, ``max_queue`` more wait; beyond that :class:`QueueFull` (429).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from splineforecast.api.datasets import DatasetStore, upload_overrides
from splineforecast.api.settings import Settings
from splineforecast.artifacts import check_run_id
from splineforecast.bounds import BOUNDS
from splineforecast.data.splines import KINDS
from splineforecast.models.registry import MODEL_NAMES

_STDERR_TAIL = 20_000  # characters of stderr kept to find the JSON error line

if TYPE_CHECKING:  # mypy cannot read a Literal built from a tuple; to it they are strings
    ModelName = str
    SplineKind = str
else:  # Literal[("a", "b")] is Literal["a", "b"]: pydantic checks it and lists it as an enum in OpenAPI
    ModelName = Literal[MODEL_NAMES]
    SplineKind = Literal[KINDS]


class TrainRequest(BaseModel):
    """The only things a client may choose for a training run (no overrides, paths or Hydra keys)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field("tiny", pattern=r"^[a-z0-9_]{1,32}$", description="a configured data set, by name")
    model: ModelName = "lstm"
    # the bounds of the API in splineforecast/bounds.py, tighter than the command line's
    hidden_size: int = Field(32, ge=BOUNDS["model.hidden_size"].low, le=BOUNDS["model.hidden_size"].api_high)
    num_layers: int = Field(1, ge=BOUNDS["model.num_layers"].low, le=BOUNDS["model.num_layers"].api_high)
    lookback: int | None = Field(
        None,
        ge=BOUNDS["data.lookback"].low,
        le=BOUNDS["data.lookback"].api_high,
        description="null: the data set's default",
    )
    horizon: int | None = Field(
        None,
        ge=BOUNDS["data.horizon"].low,
        le=BOUNDS["data.horizon"].api_high,
        description="null: the data set's default",
    )
    epochs: int = Field(1, ge=BOUNDS["trainer.max_epochs"].low, le=BOUNDS["trainer.max_epochs"].api_high)
    spline: SplineKind = "cubic"


class QueueFull(Exception):
    """More jobs than ``max_jobs + max_queue`` would be waiting or running."""


class UnknownDataset(ValueError):
    pass


def new_job_id() -> str:
    return "api-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)


def _data_overrides(name: str, settings: Settings, uploads: DatasetStore | None) -> list[str]:
    """The data overrides of the configured data set ``name``, else of the uploaded one."""
    if name in settings.datasets:
        return [f"data={settings.datasets[name]}"]
    upload = None if uploads is None else uploads.get(name)
    if uploads is None or upload is None:
        uploaded = [] if uploads is None else [u.name for u in uploads.list()]
        raise UnknownDataset(f"unknown dataset {name!r}; configured: {sorted(settings.datasets)}, uploaded: {uploaded}")
    return upload_overrides(upload, uploads.path(upload))


def build_overrides(
    body: TrainRequest, settings: Settings, run_id: str, uploads: DatasetStore | None = None
) -> list[str]:
    """The Hydra overrides of a job: every value is typed and bounded by ``TrainRequest``, or read from the
    checked record of an uploaded data set in ``uploads``."""
    overrides = [
        *_data_overrides(body.dataset, settings, uploads),
        f"model={body.model}",
        f"model.hidden_size={body.hidden_size}",
        f"model.num_layers={body.num_layers}",
        f"trainer.max_epochs={body.epochs}",
        f"spline={body.spline}",
    ]
    if body.dataset in settings.dataset_paths:  # set by the operator, never by the request
        overrides.append(f"data.path={json.dumps(settings.dataset_paths[body.dataset])}")
    if body.lookback is not None:
        overrides.append(f"data.lookback={body.lookback}")
    if body.horizon is not None:
        overrides.append(f"data.horizon={body.horizon}")
    return [
        *overrides,
        f"run_id={check_run_id(run_id)}",
        f"tracking.uri={settings.tracking_uri}",
        f"paths.artifacts={settings.artifact_root}",
        f"hydra.run.dir={settings.state_dir / 'hydra' / run_id}",
        "trainer.enable_progress_bar=false",
    ]


def parse_error(stderr: str, returncode: int) -> dict[str, Any]:
    """The SPEC payload of a failed CLI run: its last JSON error line, else a generic one."""
    for line in reversed(stderr.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                payload = json.loads(line)
            except ValueError:
                continue
            if isinstance(payload, dict) and payload.get("ok") is False and isinstance(payload.get("error"), dict):
                return payload
    message = f"the training process exited with {returncode}"
    error = {"code": "RUNNER_EXEC_ERROR", "message": message, "type": "ProcessError"}
    return {"ok": False, "exit_code": returncode, "error": error}


@dataclass
class Job:
    job_id: str
    request: dict[str, Any]
    status: str = "queued"  # queued | running | finished | failed
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    error: dict[str, Any] | None = None

    def view(self) -> dict[str, Any]:
        return {
            "ok": True,
            "job_id": self.job_id,
            "run_id": self.job_id,
            "status": self.status,
            "request": self.request,
            "created": self.created,
            "started": self.started,
            "ended": self.ended,
            "exit_code": self.exit_code,
            "error": self.error,
        }


class JobManager:
    """Runs training jobs in worker threads, ``settings.max_jobs`` at a time."""

    def __init__(self, settings: Settings, uploads: DatasetStore | None = None) -> None:
        self.settings, self.uploads = settings, uploads
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(settings.max_jobs)
        self._procs: dict[str, subprocess.Popen[str]] = {}
        self._closed = False

    def shutdown(self) -> None:
        """Stop running jobs (SIGTERM: the CLI saves last.ckpt and marks the run KILLED); start no more."""
        self._closed = True
        for proc in list(self._procs.values()):
            proc.terminate()
        for proc in list(self._procs.values()):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def active(self) -> int:
        return sum(job.status in ("queued", "running") for job in self.jobs.values())

    def submit(self, body: TrainRequest) -> Job:
        job_id = new_job_id()
        overrides = build_overrides(body, self.settings, job_id, self.uploads)
        with self._lock:
            if self.active() >= self.settings.max_jobs + self.settings.max_queue:
                raise QueueFull(f"{self.active()} jobs are queued or running; try again later")
            job = Job(job_id, body.model_dump())
            self.jobs[job_id] = job
        threading.Thread(target=self._run, args=(job, overrides), name=f"job-{job_id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def _run(self, job: Job, overrides: list[str]) -> None:
        with self._slots:
            job.status, job.started = "running", time.time()
            env = {**os.environ, "MLFLOW_TRACKING_URI": self.settings.tracking_uri}
            env.pop("SPLINE_API_TOKEN", None)  # the child needs no secret of the API
            try:
                if self._closed:
                    raise RuntimeError("the server is shutting down")
                proc = subprocess.Popen(
                    [sys.executable, "-m", "splineforecast", *overrides],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    env=env,
                    text=True,
                    errors="replace",
                )
                self._procs[job.job_id] = proc
                _, stderr = proc.communicate()
                self._procs.pop(job.job_id, None)
                job.exit_code = proc.returncode
                if proc.returncode == 0:
                    job.status = "finished"
                else:
                    job.status, job.error = "failed", parse_error(stderr[-_STDERR_TAIL:], proc.returncode)
            except Exception as exc:  # noqa: BLE001 - a job that cannot start is failed, never lost
                error = {
                    "code": "RUNNER_EXEC_ERROR",
                    "message": f"could not start: {type(exc).__name__}",
                    "type": "OSError",
                }
                job.status, job.exit_code = "failed", 24
                job.error = {"ok": False, "exit_code": 24, "error": error}
            job.ended = time.time()
