"""The real server: uvicorn on 127.0.0.1 in prod mode, driven over HTTP through a tiny training run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from api_helpers import wait_healthy
from conftest import Cli, find_free_port

pytestmark = pytest.mark.slow

TOKEN = "server-test-token-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("api")
    Cli(root).seed_store(migrated_store)  # a migrated, empty store: the first job skips the migrations
    port = find_free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPLINE_", "MLFLOW_"))}
    env.update(
        SPLINE_DEV_MODE="0",
        SPLINE_API_TOKEN=TOKEN,
        SPLINE_TRUSTED_HOSTS="127.0.0.1",
        SPLINE_ARTIFACT_ROOT=str(root / "artifacts"),
        SPLINE_TRACKING_URI=f"sqlite:///{root}/mlruns/mlflow.db",
        SPLINE_API_STATE_DIR=str(root / "state"),
        OMP_NUM_THREADS="1",  # the server and its job: no idle torch threads spinning on a shared CPU
    )
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "splineforecast.api", "--host", "127.0.0.1", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, lambda: None if proc.poll() is None else (root / "server.log").read_text())
        yield base, root
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _get(base: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.get(f"{base}{path}", headers={"X-API-Token": TOKEN}, timeout=60, **kw)


def test_train_poll_list_metrics_forecast(server: tuple[str, Path]) -> None:
    base, root = server
    assert httpx.get(f"{base}/api/v1/runs", timeout=10).status_code == 401
    body = {"dataset": "tiny", "model": "gru", "hidden_size": 8, "num_layers": 1, "epochs": 1}
    started = httpx.post(f"{base}/api/v1/jobs", json=body, headers={"X-API-Token": TOKEN}, timeout=10)
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    deadline = time.monotonic() + 240
    with httpx.Client(headers={"X-API-Token": TOKEN}, timeout=60) as client:  # one client: one TLS context
        while True:
            view = client.get(f"{base}/api/v1/jobs/{job_id}").json()
            if view["status"] in ("finished", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert view["status"] == "finished", (view, (root / "server.log").read_text()[-3000:])

    runs = _get(base, "/api/v1/runs").json()["runs"]
    listed = [r for r in runs if r["run_id"] == job_id]
    assert listed and listed[0]["status"] == "FINISHED" and "mae" in listed[0]["metrics"]

    run = _get(base, f"/api/v1/runs/{job_id}").json()
    assert "gru" in run["params"].values() and run["status"] == "FINISHED"
    assert {"mae", "rmse"} <= set(run["metrics"])
    assert any(a["path"].endswith("metrics.json") for a in run["artifacts"])
    assert run["report"] and "mae" in run["report"].lower()

    csv = Path(str(resources.files("splineforecast") / "datasets" / "co2_tiny.csv"))
    history = pd.read_csv(csv, dtype=str, keep_default_na=False).tail(40)
    payload = {"columns": list(history.columns), "data": history.values.tolist()}
    response = httpx.post(
        f"{base}/api/v1/runs/{job_id}/forecast", json=payload, headers={"X-API-Token": TOKEN}, timeout=60
    )
    assert response.status_code == 200, response.text
    forecast = response.json()["forecast"]
    assert len(forecast) == 4 and forecast[0]["step"] == 1 and isinstance(forecast[0]["co2"], float)
    assert response.headers["x-content-type-options"] == "nosniff"


def _refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code and response.json()["ok"] is False
    assert response.headers["x-content-type-options"] == "nosniff" and response.headers["cache-control"] == "no-store"


def test_framework_refusals_are_json_over_http(server: tuple[str, Path]) -> None:
    base, _ = server
    auth = {"X-API-Token": TOKEN}
    _refused(httpx.get(f"{base}/api/v1/health", headers={"Host": "evil.example"}, timeout=10), 400, "INVALID_HOST")
    preflight = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    _refused(httpx.options(f"{base}/api/v1/jobs", headers=preflight, timeout=10), 403, "CORS_REFUSED")
    origin = {**auth, "Origin": "http://evil.example"}
    _refused(httpx.post(f"{base}/api/v1/jobs", json={}, headers=origin, timeout=10), 403, "ORIGIN_REFUSED")
    big = b'{"dataset": "' + b"x" * 1_100_000 + b'"}'  # over the default 1 MB
    chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
    headers = {**auth, "Content-Type": "application/json"}
    _refused(httpx.post(f"{base}/api/v1/jobs", content=chunks, headers=headers, timeout=30), 413, "PAYLOAD_TOO_LARGE")
    _refused(httpx.post(f"{base}/api/v1/jobs", content=big, headers=headers, timeout=30), 413, "PAYLOAD_TOO_LARGE")
    _refused(httpx.delete(f"{base}/api/v1/runs", headers=auth, timeout=10), 405, "METHOD_NOT_ALLOWED")
    _refused(httpx.get(f"{base}/api/v1/docs", timeout=10), 401, "UNAUTHORIZED")
    assert _get(base, "/api/v1/jobs/api-none").status_code == 404


def _schemathesis(base: str, schema: Path, *args: str, max_time: int) -> subprocess.CompletedProcess[str]:
    beside = Path(sys.executable).with_name("schemathesis")
    exe = str(beside) if beside.is_file() else shutil.which("schemathesis")
    if exe is None:
        pytest.skip("the schemathesis command is not installed")
    command = [exe, "run", str(schema), "--url", base, "--phases", "examples,coverage,fuzzing"]
    command += ["--max-time", str(max_time), "--seed", "7", "--request-timeout", "30", "--no-color", *args]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
    # run in the schema's folder: schemathesis keeps its example database (.schemathesis/) in the cwd
    return subprocess.run(
        command, cwd=schema.parent, capture_output=True, text=True, timeout=max_time + 120, env=env, check=False
    )


def test_fuzz_openapi_no_server_errors_and_no_success_without_token(server: tuple[str, Path]) -> None:
    pytest.importorskip("schemathesis")
    base, root = server
    schema = root / "openapi.json"
    schema.write_text(_get(base, "/api/v1/openapi.json").text)
    log = root / "server.log"

    def statuses(start: int) -> list[tuple[str, str]]:
        """(request line, status) of the access log lines written since ``start``."""
        with log.open() as fh:
            fh.seek(start)
            lines = [line.rstrip() for line in fh if 'HTTP/1.1" ' in line]
        return [(line.split('"')[1], line.split('" ')[-1][:3]) for line in lines]

    # with the token: no 5xx anywhere (POST /jobs is left out: it would start real trainings)
    done = _schemathesis(
        base,
        schema,
        "--header",
        f"X-API-Token: {TOKEN}",
        "--checks",
        "not_a_server_error",
        "--exclude-operation-id",
        "start_job_api_v1_jobs_post",
        max_time=10,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    with_token = statuses(0)
    assert not [r for r in with_token if r[1].startswith("5")]
    assert len({r[0].split()[1].split("?")[0] for r in with_token if r[1] == "200"}) >= 4  # the token was used

    # without the token (every operation, POST /jobs included): nothing but health succeeds
    offset = log.stat().st_size
    done = _schemathesis(base, schema, "--checks", "not_a_server_error", max_time=6)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    without = statuses(offset)
    assert len(without) > 20, "the fuzzer sent few requests"
    succeeded = [r for r in without if "/api/v1/health" not in r[0] and r[1][:1] in "23"]
    assert not succeeded, succeeded[:5]
