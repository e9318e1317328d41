"""Training jobs that outlive the API server: records in the state folder's database, a server killed with
SIGKILL and restarted, cancel, timeout, resume, the state-folder lock, the log tail.

The slow tests run the real server (``python -m splineforecast.api``) and real ``data=tiny`` trainings in
a folder with a migrated, empty tracking store; the fast ones drive the store and the manager directly.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import AUTH, TestClient, assert_refused, client_for, settings_for, wait_healthy
from conftest import Cli, find_free_port

from splineforecast.api.jobprocess import LOG_LINE_CHARS, is_job_process, log_tail
from splineforecast.api.jobs import JobManager, TrainRequest, build_overrides
from splineforecast.api.jobstore import JobRecord, JobStore, NotResumable, QueueFull
from splineforecast.api.settings import Settings, SettingsError
from splineforecast.artifacts import RunPaths

LONG = {"dataset": "tiny", "hidden_size": 8, "epochs": 8}  # still training seconds after its first epoch
SHORT = {"dataset": "tiny", "hidden_size": 4, "epochs": 1}
TOO_LONG = {"dataset": "tiny", "lookback": 2000, "horizon": 500}  # more than the data holds: fails at its checks


# --- the server, in a folder of its own ---------------------------------------------------------


class Server:
    """``python -m splineforecast.api`` (dev mode, loopback) in ``root``, its state in ``root/state``."""

    def __init__(self, root: Path) -> None:
        self.root, self.state = root, root / "state"
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""
        self.log = root / "server.log"
        self.http = httpx.Client(timeout=30)  # one client: each httpx.request() builds a TLS context (~70 ms CPU)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPLINE_", "MLFLOW_"))}
        env.update(
            SPLINE_ARTIFACT_ROOT=str(self.root / "artifacts"),
            SPLINE_TRACKING_URI=f"sqlite:///{self.root}/mlruns/mlflow.db",
            SPLINE_API_STATE_DIR=str(self.state),
            OMP_NUM_THREADS="1",  # the server and its jobs: no idle torch threads spinning on a shared CPU
            **extra,
        )
        return env

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "splineforecast.api", "--host", "127.0.0.1", "--port", str(port)]

    def start(self, **extra: str) -> Server:
        port = find_free_port()
        if self.http.is_closed:
            self.http = httpx.Client(timeout=30)
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                self.command(port), cwd=self.root, env=self.env(**extra), stdout=log, stderr=log
            )
        self.base = f"http://127.0.0.1:{port}"
        proc = self.proc
        wait_healthy(self.base, lambda: None if proc.poll() is None else self.log.read_text())
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.http.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, f"{self.base}/api/v1{path}", **kw)

    def submit(self, body: dict[str, Any]) -> str:
        response = self.call("POST", "/jobs", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.call("GET", f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def resume(self, job_id: str) -> dict[str, Any]:
        response = self.call("POST", f"/jobs/{job_id}/resume", json={})
        assert response.status_code == 202, response.text
        return dict(response.json())

    def wait(self, job_id: str, *statuses: str, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            view = self.job(job_id)
            if view["status"] in statuses:
                return view
            assert time.monotonic() < deadline, (view, self.log.read_text()[-3000:])
            time.sleep(0.2)

    def run_status(self, run_id: str) -> str:
        response = self.call("GET", f"/runs/{run_id}")
        assert response.status_code == 200, response.text
        return str(response.json()["status"])

    def pid(self, job_id: str) -> int:
        """The recorded process of a running job (read from the state folder's database)."""
        record = JobStore(self.state / "jobs.db").get(job_id)
        assert record is not None and record.pid is not None, record
        return record.pid

    def wait_for_checkpoint(self, job_id: str, timeout: float = 180) -> None:
        """Until the running job saved its first last.ckpt: it is training, and a stop leaves it resumable."""
        last = RunPaths(self.root / "artifacts", job_id).last_ckpt
        deadline = time.monotonic() + timeout
        while not last.is_file():
            assert time.monotonic() < deadline, (self.job(job_id), self.log.read_text()[-3000:])
            time.sleep(0.05)


@contextmanager
def _stopping(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


def _gone(pid: int, run_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while is_job_process(pid, run_id):
        assert time.monotonic() < deadline, f"job process {pid} still alive"
        time.sleep(0.05)


@pytest.fixture
def server_in(tmp_path: Path, migrated_store: Path) -> Iterator[Callable[[], Server]]:
    """``server_in()``: a Server in a fresh folder (with a migrated store); servers and job processes are
    stopped at the end."""
    made: list[Server] = []

    def make() -> Server:
        root = tmp_path / f"server{len(made)}"
        root.mkdir()
        Cli(root).seed_store(migrated_store)
        made.append(Server(root))
        return made[-1]

    yield make
    for server in made:
        server.stop()
        db = server.state / "jobs.db"
        for record in JobStore(db).recent() if db.is_file() else []:
            if record.pid is not None and is_job_process(record.pid, record.run_id):
                os.killpg(record.pid, signal.SIGKILL)


# --- slow: the real server ----------------------------------------------------------------------


def _crash_with_one_running_and_two_waiting(server: Server) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """One job trains and two wait (the second fails fast, at its data check: it runs all the same); a fourth,
    cancelled while queued, never starts. Then the server and the training die at once, as in a crash of
    the machine. Returns the job_ids (running, waiting, waiting, cancelled) and their views before."""
    jobs = [server.submit(LONG), server.submit(SHORT), server.submit(TOO_LONG), server.submit(SHORT)]
    assert server.call("DELETE", f"/jobs/{jobs[3]}").json()["status"] == "cancelled"
    server.wait_for_checkpoint(jobs[0])
    child = server.pid(jobs[0])
    os.killpg(child, signal.SIGSTOP)  # frozen: what is read now is what the kill leaves
    before = {j: server.job(j) for j in jobs}
    assert [before[j]["status"] for j in jobs] == ["running", "queued", "queued", "cancelled"]
    server.kill()
    os.killpg(child, signal.SIGKILL)
    _gone(child, jobs[0])
    return jobs, before


def _cancel_while_training(server: Server, job_id: str, attempt: int) -> None:
    """DELETE once ``attempt`` of the job trained an epoch: ``cancelled`` with exit 143, its run KILLED."""
    log = server.state / "jobs" / f"{job_id}.log"
    deadline = time.monotonic() + 180
    while not re.search(
        rf"^--- attempt {attempt} .*^epoch \d+/", log.read_text() if log.is_file() else "", re.S | re.M
    ):
        assert time.monotonic() < deadline, server.job(job_id)
        time.sleep(0.05)
    asked = server.call("DELETE", f"/jobs/{job_id}")
    assert asked.status_code == 202 and asked.json()["stopping"] == "cancel", asked.text
    cancelled = server.wait(job_id, "cancelled", "finished", "failed")
    assert cancelled["status"] == "cancelled" and cancelled["exit_code"] == 143, cancelled
    assert cancelled["error"]["error"]["code"] == "INTERRUPTED" and cancelled["resumable"] is True
    assert server.run_status(job_id) == "KILLED"
    assert_refused(server.call("DELETE", f"/jobs/{job_id}"), 409, "JOB_NOT_ACTIVE")


@pytest.mark.slow
def test_a_server_killed_with_sigkill_loses_no_job_and_interrupted_or_cancelled_jobs_resume(
    server_in: Callable[[], Server],
) -> None:
    server = server_in().start(SPLINE_MAX_JOBS="1")
    jobs, before = _crash_with_one_running_and_two_waiting(server)
    running, waiting, dropped = jobs[0], jobs[1:3], jobs[3]

    server.start(SPLINE_MAX_JOBS="3")  # the restarted server may run more at once
    interrupted = server.job(running)
    assert interrupted["status"] == "interrupted" and interrupted["resumable"] is True
    assert interrupted["error"]["error"]["code"] == "INTERRUPTED" and interrupted["exit_code"] is None
    assert f"/api/v1/jobs/{running}/resume" in interrupted["error"]["error"]["message"]
    assert any(line.startswith("epoch 1/") for line in interrupted["log_tail"])  # the first attempt's log is kept
    assert server.resume(running)["resumable"] is False
    _cancel_while_training(server, running, attempt=2)  # the resumed attempt, cancelled: KILLED again
    server.resume(running)

    ended = {j: server.wait(j, "finished", "failed", "cancelled", "interrupted") for j in (*waiting, running)}
    for job_id, view in ended.items():
        assert view["request"] == before[job_id]["request"] and view["created"] == before[job_id]["created"]
    assert [ended[j]["status"] for j in (waiting[0], running)] == ["finished", "finished"]
    assert ended[waiting[1]]["status"] == "failed" and ended[waiting[1]]["exit_code"] == 26
    assert ended[waiting[1]]["error"]["error"]["code"] == "INSUFFICIENT_DATA_ERROR"
    assert ended[running]["attempts"] == 3 and server.run_status(running) == "FINISHED"
    resuming = f"resuming run_id {running} from "
    assert any(line.startswith(resuming) for line in ended[running]["log_tail"])
    log = (server.state / "jobs" / f"{running}.log").read_text()
    assert log.count(f"\n{resuming}") == 2 and log.count("\n--- attempt ") == 2  # 2 and 3 went on from last.ckpt
    never = server.job(dropped)
    assert never == {**before[dropped], "log_tail": []} and never["started"] is None and never["attempts"] == 0
    listed = server.call("GET", "/jobs").json()["jobs"]
    assert [j["job_id"] for j in listed] == [dropped, *reversed(waiting), running]  # newest first, none lost
    names = [r["run_id"] for r in server.call("GET", "/runs").json()["runs"]]
    assert sorted(names) == sorted([running, waiting[0]])  # the resumed job is one MLflow run; none of `dropped`


def _wait(client: TestClient, job_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = client.get(f"/api/v1/jobs/{job_id}", headers=AUTH).json()
        if view["status"] in statuses:
            return dict(view)
        assert time.monotonic() < deadline, view
        time.sleep(0.1)


def test_a_job_past_its_time_limit_is_stopped_and_timed_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    client = client_for(tmp_path, job_timeout_s=1)
    job_id = client.post("/api/v1/jobs", json=LONG, headers=AUTH).json()["job_id"]
    view = _wait(client, job_id, "timed_out", "finished", "failed", timeout=60)
    assert view["status"] == "timed_out" and view["exit_code"] == 143, view  # SIGTERM
    error = view["error"]
    assert error["ok"] is False and error["exit_code"] == 143 and error["error"]["code"] == "JOB_TIMEOUT"
    assert "SPLINE_JOB_TIMEOUT_S=1 s" in error["error"]["message"] and view["resumable"] is True
    assert 1 <= view["ended"] - view["started"] < 30


def test_a_server_shutdown_interrupts_running_jobs_and_keeps_queued_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with client_for(tmp_path, max_jobs=1) as client:  # its lifespan: the app's shutdown when the block ends
        running = client.post("/api/v1/jobs", json=LONG, headers=AUTH).json()["job_id"]
        waiting = client.post("/api/v1/jobs", json=SHORT, headers=AUTH).json()["job_id"]
        deadline = time.monotonic() + 30
        while getattr(JobStore(tmp_path / "state" / "jobs.db").get(running), "pid", None) is None:  # spawned yet?
            assert time.monotonic() < deadline
            time.sleep(0.02)
    store = JobStore(tmp_path / "state" / "jobs.db")
    stopped, kept = store.get(running), store.get(waiting)
    assert stopped is not None and stopped.status == "interrupted" and stopped.exit_code == 143
    assert stopped.error is not None and stopped.error["error"]["type"] == "ServerShutdown"
    assert kept is not None and kept.status == "queued" and kept.started is None and kept.attempts == 0


@pytest.mark.slow  # a new interpreter imports the app: seconds
def test_a_second_server_on_the_same_state_folder_is_refused(tmp_path: Path) -> None:
    client_for(tmp_path)  # this process holds the state folder now
    server = Server(tmp_path)
    began = time.monotonic()
    refused = subprocess.run(
        server.command(find_free_port()), cwd=tmp_path, env=server.env(), capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2 and time.monotonic() - began < 20, refused
    assert f"another API server (pid {os.getpid()}) uses the state folder {server.state}" in refused.stderr
    assert "SPLINE_API_STATE_DIR" in refused.stderr and "Uvicorn running" not in refused.stderr


@pytest.mark.slow
def test_the_job_page_resumes_and_cancels_and_shows_the_log_as_text(tmp_path: Path, migrated_store: Path) -> None:
    """An interrupted job (recorded by a server that is gone) on the job page: its log as text, Resume, then
    Cancel while it runs (its run fails fast at its data check, were it let run)."""
    from gui_helpers import XSS, assert_inert, chromium, look, new_page

    cli = Cli(tmp_path)
    cli.seed_store(migrated_store)
    state = tmp_path / "state"
    settings = Settings(artifact_root=cli.artifacts, tracking_uri=cli.tracking_uri, state_dir=state)
    job_id = "api-gui-job"
    overrides = build_overrides(TrainRequest.model_validate(TOO_LONG), settings, job_id)
    record = _record(job_id, "running", time.time() - 60, started=time.time() - 50, attempts=1, server="1-gone")
    JobStore(state / "jobs.db").insert(replace(record, overrides=overrides), limit=10)
    lines = [f"--- attempt 1 of {job_id}", "epoch 1/12  train/loss 0.41", XSS]
    (state / "jobs").mkdir()
    (state / "jobs" / f"{job_id}.log").write_text("\n".join(lines) + "\n")
    server = Server(tmp_path).start()
    with chromium() as browser, _stopping(server):
        page, errors = new_page(browser)
        page.goto(f"{server.base}/#/jobs/{job_id}")
        page.locator("#job-status", has_text="interrupted").wait_for()
        assert page.locator("#job-log").text_content() == "\n".join(lines)  # text, never markup
        assert "the API server stopped while it ran" in str(page.locator("#job-stopped-words").text_content())
        assert page.locator("#job-resume").is_visible() and page.locator("#job-cancel").is_hidden()
        look(page, tmp_path, "job-interrupted")
        page.click("#job-resume")
        page.locator("#job-cancel").wait_for(state="visible")
        page.click("#job-cancel")
        page.locator("#job-status", has_text="cancelled").wait_for(timeout=60_000)
        assert page.locator("#job-resume").is_visible() and page.locator("#job-cancel").is_hidden()
        assert page.locator("#job-stopped-words").text_content().startswith("Cancelled (exit code 143): cancelled")
        assert page.locator("#job-action-error").is_hidden()
        assert_inert(page, errors)
        page.close()
    job = JobStore(state / "jobs.db").get(job_id)
    assert job is not None and job.status == "cancelled" and job.attempts == 2


# --- fast: the store, the manager's restart, the routes, the log tail ---------------------------


def _record(job_id: str, status: str, created: float, **kw: Any) -> JobRecord:
    fields: dict[str, Any] = {
        "started": None, "ended": None, "exit_code": None, "error": None, "attempts": 0,
        "pid": None, "server": None, "stop": None,
    }  # fmt: skip
    fields.update(kw)
    return JobRecord(job_id, job_id, status, {"epochs": 1}, ["run_id=" + job_id], created, created, **fields)


def _sleeper(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv], start_new_session=True)


def test_a_restarted_manager_interrupts_what_was_running_and_stops_only_job_processes(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    store = JobStore(settings.state_dir / "jobs.db")
    job = _sleeper("-m", "splineforecast", "run_id=api-live")  # looks like the job it is recorded as
    other = _sleeper("-m", "splineforecast", "run_id=api-other")  # a process of another run_id
    # a pid beyond Linux's largest (2**22) stands for a process that is gone
    records = [("api-live", job.pid), ("api-reused", other.pid), ("api-gone", 2**22 + 7), ("api-nopid", None)]
    try:
        for i, (job_id, pid) in enumerate(records):
            store.insert(_record(job_id, "running", 100.0 + i, pid=pid, server="1-dead", attempts=1), limit=10)
        store.insert(_record("api-done", "finished", 99.0, exit_code=0), limit=10)
        manager = JobManager(settings)
        assert sorted(manager.recovered) == sorted(job_id for job_id, _ in records)
        assert job.wait(timeout=30) == -signal.SIGTERM  # SIGTERM: a real job would save last.ckpt
        assert other.poll() is None  # its command line names another run_id: never signalled
        views = {j.job_id: j.view() for j in manager.recent()}
        statuses = {j: v["status"] for j, v in views.items()}
        assert statuses == {**dict.fromkeys(views, "interrupted"), "api-done": "finished"}
        assert views["api-live"]["error"]["error"]["type"] == "ServerRestart" and views["api-live"]["resumable"]
        assert views["api-done"]["exit_code"] == 0 and views["api-done"]["error"] is None
    finally:
        for proc in (job, other):
            proc.kill()
            proc.wait()


def test_state_changes_check_the_state_they_leave(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    store.insert(_record("api-a", "queued", 1.0), limit=2)
    store.insert(_record("api-b", "queued", 2.0), limit=2)
    with pytest.raises(QueueFull, match="2 jobs are queued or running"):
        store.insert(_record("api-c", "queued", 3.0), limit=2)
    claimed = store.claim_next(1, "me")
    assert claimed is not None and claimed.job_id == "api-a" and claimed.attempts == 1  # oldest first
    assert store.claim_next(1, "me") is None  # one running at most
    assert store.move("api-a", ("queued",), "cancelled") is None  # it is not queued any more
    assert store.ask_stop("api-a", "cancel") is not None and store.ask_stop("api-a", "timeout") is not None
    assert store.set_pid("api-a", 123) == "cancel"  # the first reason stays
    ended = store.move("api-a", ("running",), "cancelled", exit_code=143, error={"ok": False})
    assert ended is not None and ended.error == {"ok": False} and ended.exit_code == 143
    again = store.requeue("api-a", limit=2)
    assert again.status == "queued" and again.stop is None and again.error is None and again.attempts == 1
    with pytest.raises(NotResumable, match="is queued; only interrupted, cancelled, timed_out"):
        store.requeue("api-b", limit=5)
    assert [r.job_id for r in JobStore(tmp_path / "jobs.db").recent()] == ["api-b", "api-a"]


def test_job_routes_list_cancel_and_resume_refusals(tmp_path: Path) -> None:
    client: TestClient = client_for(tmp_path, max_jobs=1, max_queue=1)
    store: JobStore = client.app.state.jobs.store  # type: ignore[attr-defined]
    store.insert(_record("api-old", "finished", 1.0, exit_code=0), limit=10)
    store.insert(_record("api-new", "interrupted", 2.0, attempts=1), limit=10)
    listed = client.get("/api/v1/jobs", headers=AUTH).json()["jobs"]
    assert [j["job_id"] for j in listed] == ["api-new", "api-old"] and listed[0]["resumable"] is True
    assert "log_tail" not in listed[0]
    assert client.get("/api/v1/jobs?limit=1", headers=AUTH).json()["jobs"] == listed[:1]
    assert_refused(client.delete("/api/v1/jobs/api-old", headers=AUTH), 409, "JOB_NOT_ACTIVE")
    assert_refused(client.delete("/api/v1/jobs/api-none", headers=AUTH), 404, "NOT_FOUND")
    assert_refused(client.post("/api/v1/jobs/api-old/resume", json={}, headers=AUTH), 409, "JOB_NOT_RESUMABLE")
    assert_refused(client.post("/api/v1/jobs/api-none/resume", json={}, headers=AUTH), 404, "NOT_FOUND")
    assert_refused(client.post("/api/v1/jobs/-x/resume", json={}, headers=AUTH), 422, "CONFIG_ERROR")
    store.insert(_record("api-busy", "running", 3.0), limit=10)
    store.insert(_record("api-wait", "queued", 4.0), limit=10)  # the queue is full: max_jobs + max_queue = 2
    assert_refused(client.post("/api/v1/jobs/api-new/resume", json={}, headers=AUTH), 429, "TOO_MANY_JOBS")
    assert client.get("/api/v1/jobs/api-new", headers=AUTH).json()["status"] == "interrupted"
    dropped = client.delete("/api/v1/jobs/api-wait", headers=AUTH)
    assert dropped.status_code == 202 and dropped.json()["status"] == "cancelled"


def test_the_log_tail_is_bounded_and_masks_credentials(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    assert log_tail(log) == []
    lines = [f"line {i}" for i in range(300)] + ["x" * 5000, "uri http://ann:s3cret@mlflow.example/x"]
    log.write_text("\n".join(lines) + "\n")
    tail = log_tail(log)
    assert len(tail) == 50 and tail[0] == "line 252" and tail[-2] == "x" * LOG_LINE_CHARS
    assert tail[-1] == "uri http://***@mlflow.example/x"
    assert log_tail(log, limit=100) == ["uri http://***@mlflow.example/x"]  # a line cut at the start is left out


def test_the_job_time_limit_setting() -> None:
    assert Settings.from_env({"SPLINE_JOB_TIMEOUT_S": "90"}).job_timeout_s == 90
    assert Settings.from_env({"SPLINE_JOB_TIMEOUT_S": "0"}).job_timeout_s is None
    assert Settings.from_env({}).job_timeout_s is None
    for bad in ("-1", "ten"):
        with pytest.raises(SettingsError, match="SPLINE_JOB_TIMEOUT_S"):
            Settings.from_env({"SPLINE_JOB_TIMEOUT_S": bad})
