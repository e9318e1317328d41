"""The durable record of the API's training jobs: a sqlite database in the API's state folder.

Every record is written before its job starts, as plain JSON and numbers (never pickles), and every
change of state is one ``BEGIN IMMEDIATE`` transaction that checks the state it changes from, so two
threads (or a crash between two writes) never leave a job half moved. :class:`StateLock` keeps a
second server process off the same state folder.

Statuses: ``queued`` -> ``running`` -> ``finished`` | ``failed`` | ``cancelled`` | ``timed_out`` |
``interrupted`` (the server stopped while it ran); a queued job may become ``cancelled``; an
``interrupted``, ``cancelled`` or ``timed_out`` one may be queued again (resume, same run_id).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splineforecast.api.settings import SettingsError

STATUSES = ("queued", "running", "finished", "failed", "cancelled", "interrupted", "timed_out")
ACTIVE = ("queued", "running")
RESUMABLE = ("interrupted", "cancelled", "timed_out")
SCHEMA_VERSION = 1

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    request TEXT NOT NULL,
    overrides TEXT NOT NULL,
    created REAL NOT NULL,
    queued REAL NOT NULL,
    started REAL,
    ended REAL,
    exit_code INTEGER,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    server TEXT,
    stop TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, queued);
"""


class StateLocked(SettingsError):
    """Another API server process holds the state folder."""


class QueueFull(Exception):
    """More jobs than ``max_jobs + max_queue`` would be waiting or running."""


class NotResumable(Exception):
    """The job is not interrupted, cancelled or timed out."""


@dataclass(frozen=True)
class JobRecord:
    """One row of the jobs table, decoded."""

    job_id: str
    run_id: str
    status: str
    request: dict[str, Any]
    overrides: list[str]
    created: float
    queued: float
    started: float | None
    ended: float | None
    exit_code: int | None
    error: dict[str, Any] | None
    attempts: int
    pid: int | None
    server: str | None  # the server process that runs it (see jobs.SERVER_ID)
    stop: str | None  # why the server stops it: cancel | timeout | shutdown


def _record(row: sqlite3.Row) -> JobRecord:
    values = dict(row)
    values["request"] = json.loads(values["request"])
    values["overrides"] = json.loads(values["overrides"])
    values["error"] = None if values["error"] is None else json.loads(values["error"])
    return JobRecord(**values)


class JobStore:
    """The jobs table at ``path``; each method is one transaction on its own connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SettingsError(
                    f"{path} was written by a newer splineforecast (job schema {version} > {SCHEMA_VERSION}); "
                    "upgrade, or point SPLINE_API_STATE_DIR at another folder"
                )
            db.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;")

    @contextmanager
    def _tx(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            if immediate:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            else:
                yield db
        finally:
            db.close()

    def insert(self, record: JobRecord, limit: int) -> None:
        """Add ``record`` (queued) unless ``limit`` jobs are queued or running already (QueueFull)."""
        with self._tx(immediate=True) as db:
            self._room(db, limit)
            values = {**record.__dict__, "request": json.dumps(record.request), "error": None}
            values["overrides"] = json.dumps(record.overrides)
            names = ", ".join(values)
            db.execute(f"INSERT INTO jobs ({names}) VALUES ({', '.join(':' + n for n in values)})", values)

    @staticmethod
    def _active(db: sqlite3.Connection) -> int:
        marks = ", ".join("?" * len(ACTIVE))
        return int(db.execute(f"SELECT COUNT(*) FROM jobs WHERE status IN ({marks})", ACTIVE).fetchone()[0])

    def _room(self, db: sqlite3.Connection, limit: int) -> None:
        active = self._active(db)
        if active >= limit:
            raise QueueFull(f"{active} jobs are queued or running (at most {limit}); try again later")

    def active(self) -> int:
        with self._tx() as db:
            return self._active(db)

    def get(self, job_id: str) -> JobRecord | None:
        with self._tx() as db:
            row = db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else _record(row)

    def recent(self, limit: int = 1000, statuses: Sequence[str] = STATUSES) -> list[JobRecord]:
        """Jobs in ``statuses``, newest first."""
        marks = ", ".join("?" * len(statuses))
        query = f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created DESC, rowid DESC LIMIT ?"
        with self._tx() as db:
            return [_record(row) for row in db.execute(query, (*statuses, limit))]

    def move(self, job_id: str, sources: Sequence[str], status: str, **fields: Any) -> JobRecord | None:
        """Set ``status`` and ``fields`` if the job is in one of ``sources``; the new record, else None."""
        if "error" in fields and fields["error"] is not None:
            fields["error"] = json.dumps(fields["error"])
        sets = ", ".join(f"{name} = :{name}" for name in ("status", *fields))
        marks = ", ".join(f":s{i}" for i in range(len(sources)))
        values = {"status": status, **fields, "job_id": job_id, **{f"s{i}": s for i, s in enumerate(sources)}}
        with self._tx(immediate=True) as db:
            moved = db.execute(f"UPDATE jobs SET {sets} WHERE job_id = :job_id AND status IN ({marks})", values)
            row = db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone() if moved.rowcount else None
        return None if row is None else _record(row)

    def requeue(self, job_id: str, limit: int) -> JobRecord:
        """A resumable job queued again (same run_id); NotResumable or QueueFull when it may not be."""
        with self._tx(immediate=True) as db:
            row = db.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None or row["status"] not in RESUMABLE:
                status = "unknown" if row is None else row["status"]
                raise NotResumable(f"job {job_id!r} is {status}; only {', '.join(RESUMABLE)} jobs can be resumed")
            self._room(db, limit)
            db.execute(
                "UPDATE jobs SET status = 'queued', queued = ?, started = NULL, ended = NULL, exit_code = NULL, "
                "error = NULL, pid = NULL, server = NULL, stop = NULL WHERE job_id = ?",
                (time.time(), job_id),
            )
            return _record(db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone())

    def claim_next(self, max_running: int, server: str) -> JobRecord | None:
        """The oldest queued job, moved to running for ``server``, when fewer than ``max_running`` run."""
        with self._tx(immediate=True) as db:
            running = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'running'").fetchone()[0]
            if running >= max_running:
                return None
            oldest = "SELECT job_id FROM jobs WHERE status = 'queued' ORDER BY queued, rowid LIMIT 1"
            row = db.execute(oldest).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = 'running', started = ?, attempts = attempts + 1, server = ?, "
                "pid = NULL, stop = NULL WHERE job_id = ?",
                (time.time(), server, row["job_id"]),
            )
            return _record(db.execute("SELECT * FROM jobs WHERE job_id = ?", (row["job_id"],)).fetchone())

    def set_pid(self, job_id: str, pid: int | None) -> str | None:
        """Record the running job's process; returns the stop asked for meanwhile (cancel, timeout), if any."""
        with self._tx(immediate=True) as db:
            db.execute("UPDATE jobs SET pid = ? WHERE job_id = ? AND status = 'running'", (pid, job_id))
            row = db.execute("SELECT stop FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else row["stop"]

    def ask_stop(self, job_id: str, reason: str) -> JobRecord | None:
        """Mark a running job to be stopped for ``reason`` (the first reason stays); its record, else None."""
        with self._tx(immediate=True) as db:
            db.execute(
                "UPDATE jobs SET stop = COALESCE(stop, ?) WHERE job_id = ? AND status = 'running'", (reason, job_id)
            )
            row = db.execute("SELECT * FROM jobs WHERE job_id = ? AND status = 'running'", (job_id,)).fetchone()
        return None if row is None else _record(row)

    def orphans(self, server: str) -> list[JobRecord]:
        """Jobs recorded as running by another server process (one that is gone: see StateLock)."""
        with self._tx() as db:
            rows = db.execute("SELECT * FROM jobs WHERE status = 'running' AND server IS NOT ?", (server,)).fetchall()
        return [_record(row) for row in rows]


class StateLock:
    """An exclusive ``flock`` on ``<state_dir>/server.lock`` for the life of this process.

    Held once per process and folder: apps made in one process on the same folder share it (tests
    do that); a second process is refused with :class:`StateLocked`. The kernel frees it when the
    holder dies, SIGKILL included.
    """

    _held: dict[Path, int] = {}
    _guard = threading.Lock()

    @classmethod
    def acquire(cls, state_dir: Path) -> None:
        folder = state_dir.resolve()
        with cls._guard:
            if folder in cls._held:
                return
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "server.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by the jobs (PEP 446)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise StateLocked(
                    f"another API server (pid {holder}) uses the state folder {folder} (its lock {path} is "
                    "held); stop that server, or give this one its own folder with SPLINE_API_STATE_DIR"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            cls._held[folder] = fd
