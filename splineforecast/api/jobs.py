"""Training jobs: the API builds Hydra overrides from an allow-listed body and runs the CLI.

A job is a subprocess ``python -m splineforecast <overrides>`` in its own session, its output in a log
file (:mod:`splineforecast.api.jobprocess`); the CLI returns SPEC exit codes and prints one JSON error
line on stderr, which becomes the failed job's ``error``. At most ``max_jobs`` run at once, oldest
first, ``max_queue`` more wait; beyond that :class:`QueueFull` (429). Jobs are recorded in the state
folder's database (:mod:`splineforecast.api.jobstore`) before they start, so they outlive the server:
on start it marks the jobs a previous server left running ``interrupted`` (stopping any such process
still alive, SIGTERM) and runs the queued ones. Cancel, a timeout and a server shutdown stop a job with
SIGTERM: the CLI saves last.ckpt and marks its run KILLED, and :meth:`JobManager.resume` re-runs the same
run_id, which resumes it (SPEC §5).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from splineforecast.api import jobprocess
from splineforecast.api.datasets import DatasetStore, upload_overrides
from splineforecast.api.jobstore import ACTIVE, RESUMABLE, JobRecord, JobStore, NotResumable, QueueFull, StateLock
from splineforecast.api.settings import Settings
from splineforecast.artifacts import check_run_id
from splineforecast.bounds import BOUNDS
from splineforecast.data.splines import KINDS
from splineforecast.models.registry import MODEL_NAMES

_STDERR_TAIL = 20_000  # characters of output kept to find the JSON error line

__all__ = ["Job", "JobManager", "NotCancellable", "NotResumable", "QueueFull", "TrainRequest", "UnknownDataset"]

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


class NotCancellable(Exception):
    """The job is neither queued nor running."""


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


SERVER_ID = f"{os.getpid()}-{secrets.token_hex(4)}"  # this server process, in the records of the jobs it runs
_ATTEMPT_MARK = "--- attempt "  # the log line that opens each attempt of a job
_STOPPED = (130, 137, 143)  # exit statuses of a stopped job: SIGINT, SIGKILL, SIGTERM
_STOPS = {  # why the server stopped a job -> its status, error code, type and what happened
    "cancel": ("cancelled", "INTERRUPTED", "JobCancelled", "cancelled (DELETE /api/v1/jobs/{job_id}): {sigterm}"),
    "timeout": ("timed_out", "JOB_TIMEOUT", "JobTimeout", "ran past SPLINE_JOB_TIMEOUT_S={timeout:g} s: {sigterm}"),
    "shutdown": ("interrupted", "INTERRUPTED", "ServerShutdown", "the API server shut down while it ran: {sigterm}"),
    "restart": ("interrupted", "INTERRUPTED", "ServerRestart", "the API server stopped while it ran"),
}
_SIGTERM = "stopped with SIGTERM, its run saved last.ckpt and is KILLED in MLflow"


def stop_error(reason: str, job_id: str, exit_code: int | None, timeout: float | None = None) -> dict[str, Any]:
    """The SPEC-style payload of a job the server stopped for ``reason`` (a key of ``_STOPS``)."""
    _, code, type_name, what = _STOPS[reason]
    message = (
        f"{what.format(job_id=job_id, timeout=timeout or 0, sigterm=_SIGTERM)}; "
        f"POST /api/v1/jobs/{job_id}/resume continues it from its last.ckpt (same run_id)"
    )
    return {"ok": False, "exit_code": exit_code, "error": {"code": code, "message": message, "type": type_name}}


@dataclass
class Job:
    """A job as recorded (see :class:`~splineforecast.api.jobstore.JobRecord`), with the path of its log."""

    job_id: str
    request: dict[str, Any]
    status: str = "queued"  # queued | running | finished | failed | cancelled | interrupted | timed_out
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    error: dict[str, Any] | None = None
    run_id: str = ""
    attempts: int = 0
    stopping: str | None = None  # cancel | timeout | shutdown, while a running job is being stopped
    log: Path | None = None

    @classmethod
    def of(cls, record: JobRecord, log: Path) -> Job:
        stopping = record.stop if record.status == "running" else None
        return cls(
            record.job_id, record.request, record.status, record.created, record.started, record.ended,
            record.exit_code, record.error, record.run_id, record.attempts, stopping, log,
        )  # fmt: skip

    def view(self, tail: bool = True) -> dict[str, Any]:
        """The JSON of the job; with ``tail``, ``log_tail``: the last lines of its output."""
        view = {
            "ok": True,
            "job_id": self.job_id,
            "run_id": self.run_id or self.job_id,
            "status": self.status,
            "request": self.request,
            "created": self.created,
            "started": self.started,
            "ended": self.ended,
            "exit_code": self.exit_code,
            "error": self.error,
            "attempts": self.attempts,
            "stopping": self.stopping,
            "cancellable": self.status in ACTIVE,
            "resumable": self.status in RESUMABLE,
        }
        if tail:
            view["log_tail"] = [] if self.log is None else jobprocess.log_tail(self.log)
        return view


class JobManager:
    """Runs recorded training jobs, ``settings.max_jobs`` at a time, oldest first; see the module's text."""

    def __init__(self, settings: Settings, uploads: DatasetStore | None = None) -> None:
        self.settings, self.uploads = settings, uploads
        StateLock.acquire(settings.state_dir)  # StateLocked (a SettingsError) when another server holds it
        self.store = JobStore(settings.state_dir / "jobs.db")
        self.log_dir = settings.state_dir / "jobs"
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen[str]] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._closed = False
        self.recovered = self._recover()
        self._pump()

    @property
    def jobs(self) -> dict[str, Job]:
        """Every recorded job, by job_id."""
        return {job.job_id: job for job in self.recent(limit=1_000_000)}

    def _job(self, record: JobRecord) -> Job:
        return Job.of(record, self.log_dir / f"{record.job_id}.log")

    def get(self, job_id: str) -> Job | None:
        record = self.store.get(job_id)
        return None if record is None else self._job(record)

    def recent(self, limit: int = 100) -> list[Job]:
        """The jobs, newest first."""
        return [self._job(record) for record in self.store.recent(limit)]

    def active(self) -> int:
        return self.store.active()

    def submit(self, body: TrainRequest) -> Job:
        """Record a new job (queued) and start it when a slot is free; QueueFull when too many wait."""
        job_id = new_job_id()
        overrides = build_overrides(body, self.settings, job_id, self.uploads)
        now = time.time()
        record = JobRecord(
            job_id, job_id, "queued", body.model_dump(), overrides, now, now,
            started=None, ended=None, exit_code=None, error=None, attempts=0, pid=None, server=None, stop=None,
        )  # fmt: skip
        self.store.insert(record, self.settings.max_jobs + self.settings.max_queue)
        self._pump()
        return self._job(self.store.get(job_id) or record)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job (it never starts) or stop a running one (SIGTERM: ``cancelled``, resumable).

        Returns None for an unknown job; NotCancellable when it is neither queued nor running.
        """
        cancelled = self.store.move(job_id, ("queued",), "cancelled", ended=time.time())
        if cancelled is not None:
            return self._job(cancelled)
        record = self.store.ask_stop(job_id, "cancel")
        if record is None:
            current = self.store.get(job_id)
            if current is None:
                return None
            raise NotCancellable(f"job {job_id!r} is {current.status}; only queued or running jobs can be cancelled")
        self._signal(record.job_id)
        return self._job(record)

    def resume(self, job_id: str) -> Job:
        """Queue an interrupted, cancelled or timed-out job again: the same run_id resumes from its last.ckpt.

        Raises NotResumable (unknown jobs too: check with :meth:`get` first) or QueueFull.
        """
        record = self.store.requeue(job_id, self.settings.max_jobs + self.settings.max_queue)
        self._pump()
        return self._job(self.store.get(job_id) or record)

    def shutdown(self) -> None:
        """Stop this server's running jobs (SIGTERM: last.ckpt saved, run KILLED; ``interrupted``, resumable)
        and start no more; queued jobs stay queued for the next server."""
        with self._lock:
            self._closed = True
            threads = dict(self._threads)
        for job_id in threads:
            if self.store.ask_stop(job_id, "shutdown") is not None:
                self._signal(job_id)
        for thread in threads.values():
            thread.join(timeout=jobprocess.STOP_GRACE_S + 10)

    def _recover(self) -> list[str]:
        """Mark the jobs a previous server left running ``interrupted``, stopping any such process still alive
        (SIGTERM, after checking its command line); returns their job_ids."""
        recovered = []
        for record in self.store.orphans(SERVER_ID):
            if record.pid is not None:
                jobprocess.stop_orphan(record.pid, record.run_id)
            error = stop_error("restart", record.job_id, None)
            if self.store.move(record.job_id, ("running",), "interrupted", ended=time.time(), error=error, pid=None):
                recovered.append(record.job_id)
        return recovered

    def _pump(self) -> None:
        """Start queued jobs, oldest first, while fewer than ``max_jobs`` run."""
        with self._lock:
            while not self._closed:
                record = self.store.claim_next(self.settings.max_jobs, SERVER_ID)
                if record is None:
                    return
                thread = threading.Thread(target=self._run, args=(record,), name=f"job-{record.job_id}", daemon=True)
                self._threads[record.job_id] = thread
                thread.start()

    def _signal(self, job_id: str) -> None:
        """SIGTERM to the process group of a running job of this server; SIGKILL if it outlives the grace."""
        proc = self._procs.get(job_id)
        if proc is None or proc.poll() is not None:
            return  # not started yet (it reads its stop when it is) or over
        jobprocess.signal_group(proc.pid, signal.SIGTERM)
        timer = threading.Timer(jobprocess.STOP_GRACE_S, self._kill, args=(proc,))
        timer.daemon = True
        timer.start()

    @staticmethod
    def _kill(proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            jobprocess.signal_group(proc.pid, signal.SIGKILL)

    def _timeout(self, job_id: str) -> None:
        if self.store.ask_stop(job_id, "timeout") is not None:
            self._signal(job_id)

    def _run(self, record: JobRecord) -> None:
        try:
            self._attempt(record)
        finally:
            with self._lock:
                self._threads.pop(record.job_id, None)
            self._pump()

    def _attempt(self, record: JobRecord) -> None:
        env = {**os.environ, "MLFLOW_TRACKING_URI": self.settings.tracking_uri}
        env.pop("SPLINE_API_TOKEN", None)  # the child needs no secret of the API
        env["PYTHONUNBUFFERED"] = "1"  # its lines reach the log as they are printed
        log = self.log_dir / f"{record.job_id}.log"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        header = f"{_ATTEMPT_MARK}{record.attempts} of {record.job_id}, {now}"
        try:
            if self._closed:
                self.store.move(
                    record.job_id, ("running",), "queued", started=None, server=None, attempts=record.attempts - 1
                )
                return
            proc = jobprocess.spawn(record.overrides, env, log, header)
        except Exception as exc:  # noqa: BLE001 - a job that cannot start is failed, never lost
            error = {"code": "RUNNER_EXEC_ERROR", "message": f"could not start: {type(exc).__name__}"}
            failed = {"ok": False, "exit_code": 24, "error": {**error, "type": "OSError"}}
            self.store.move(record.job_id, ("running",), "failed", ended=time.time(), exit_code=24, error=failed)
            return
        self._procs[record.job_id] = proc
        if self.store.set_pid(record.job_id, getattr(proc, "pid", None)):
            self._signal(record.job_id)  # cancelled (or the server shut down) before it had a pid
        timer = None
        if self.settings.job_timeout_s is not None:
            timer = threading.Timer(self.settings.job_timeout_s, self._timeout, args=(record.job_id,))
            timer.daemon = True
            timer.start()
        _, captured = proc.communicate()
        if timer is not None:
            timer.cancel()
        self._procs.pop(record.job_id, None)
        self._settle(record.job_id, jobprocess.exit_status(proc.returncode), captured or "")

    def _settle(self, job_id: str, code: int, captured: str) -> None:
        """Record how the attempt ended: finished, failed, or the status of the stop the server asked for."""
        current = self.store.get(job_id)
        stop = None if current is None else current.stop
        if code == 0:
            status, error = "finished", None
        elif stop in _STOPS and code in _STOPPED:
            status, error = _STOPS[stop][0], stop_error(stop, job_id, code, self.settings.job_timeout_s)
        else:
            text = captured or jobprocess.read_tail(self.log_dir / f"{job_id}.log", _STDERR_TAIL)
            status, error = "failed", parse_error(text[text.rfind(_ATTEMPT_MARK) + 1 :], code)
        self.store.move(job_id, ("running",), status, ended=time.time(), exit_code=code, error=error, pid=None)
