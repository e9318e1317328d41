"""The HTTP API's rules (SPEC §7) with FastAPI's TestClient: no server, no training, no tracking store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import types
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from splineforecast.api import Settings, SettingsError, create_app
from splineforecast.api import jobs as jobs_module
from splineforecast.api.__main__ import main as api_main
from splineforecast.api.jobs import TrainRequest, build_overrides, parse_error
from splineforecast.api.runs import under_root
from splineforecast.api.security import token_matches

TOKEN = "s3cret-token-for-tests"
AUTH = {"X-API-Token": TOKEN}
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class FakeStore:
    """Stands in for RunStore: one known run, ``good``, with a model."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def list_runs(self, limit: int = 100) -> list[dict[str, Any]]:
        return [{"run_id": "good", "status": "FINISHED", "metrics": {"mae": 0.5, "r2": float("nan")}}]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        if run_id != "good":
            return None
        return {"run_id": "good", "status": "FINISHED", "metrics": {"mae": float("inf")}, "params": {}, "artifacts": []}

    def trained(self, run_id: str) -> bool:
        return run_id == "good"

    def time_column(self, run_id: str) -> tuple[str, str | None]:
        return "date", None

    def paths(self, run_id: str) -> Any:
        from splineforecast.artifacts import RunPaths

        return RunPaths(self.root, run_id)


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "dev_mode": False,
        "token": TOKEN,
        "artifact_root": tmp_path / "artifacts",
        "tracking_uri": f"sqlite:///{tmp_path}/mlruns/mlflow.db",
        "state_dir": tmp_path / "state",
    }
    return Settings(**{**base, **kw})


def _client(tmp_path: Path, app: FastAPI | None = None, **kw: Any) -> TestClient:
    app = app or create_app(_settings(tmp_path, **kw), store=FakeStore(tmp_path / "artifacts"))  # type: ignore[arg-type]
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def prod(tmp_path: Path) -> TestClient:
    return _client(tmp_path)


@pytest.fixture
def dev(tmp_path: Path) -> TestClient:
    return _client(tmp_path, dev_mode=True, token=None)


def _assert_secure(response: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.status_code)
    assert response.headers["content-type"].startswith("application/json") or response.status_code == 204


# --- every route needs a token in prod mode -------------------------------------------------------


def _concrete(path: str) -> str:
    return path.replace("{run_id}", "good").replace("{job_id}", "api-x")


def test_every_route_but_health_refuses_without_token_in_prod(prod: TestClient) -> None:
    app = prod.app
    assert isinstance(app, FastAPI)
    seen = 0
    for route in app.routes:
        assert isinstance(route, APIRoute | Route), route
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            path = _concrete(route.path)
            for headers in ({}, {"X-API-Token": "wrong"}, {"X-API-Token": ""}):
                response = prod.request(method, path, headers={**headers, "content-type": "application/json"}, json={})
                seen += 1
                if route.path == "/api/v1/health":
                    assert response.status_code == 200
                else:
                    assert response.status_code == 401, (method, path, response.status_code, response.text)
                    assert response.json()["ok"] is False
                _assert_secure(response)
    assert seen >= 8 * 3  # health, runs, run, forecast, jobs, job, datasets, openapi, docs


def test_unknown_paths_and_methods_also_need_a_token_in_prod(prod: TestClient) -> None:
    assert prod.get("/api/v1/nope").status_code == 401
    assert prod.get("/api/v1/nope", headers=AUTH).status_code == 404
    response = prod.delete("/api/v1/runs", headers=AUTH)
    assert response.status_code == 405 and response.json()["ok"] is False
    _assert_secure(response)


def test_with_the_token_routes_answer(prod: TestClient) -> None:
    assert prod.get("/api/v1/runs", headers=AUTH).status_code == 200
    assert prod.get("/api/v1/datasets", headers=AUTH).json()["datasets"] == ["co2", "tiny"]
    assert prod.get("/api/v1/health").json()["ok"] is True


def test_openapi_declares_the_token_scheme(prod: TestClient) -> None:
    schema = prod.get("/api/v1/openapi.json", headers=AUTH).json()
    schemes = schema["components"]["securitySchemes"]
    assert {"type": "apiKey", "in": "header", "name": "X-API-Token"}.items() <= next(iter(schemes.values())).items()
    assert all(p.startswith("/api/v1/") for p in schema["paths"])
    assert "security" in schema["paths"]["/api/v1/runs"]["get"]
    assert "security" not in schema["paths"]["/api/v1/health"]["get"]


# --- tokens ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given", [b"", b"\xff\xfe\x00", "é".encode(), TOKEN.encode() + b"\x00", TOKEN.upper().encode(), b"x" * 10_000]
)
def test_odd_token_bytes_are_refused_never_500(prod: TestClient, given: bytes) -> None:
    assert token_matches(given, TOKEN) is False
    response = prod.get("/api/v1/runs", headers={"X-API-Token": given})  # type: ignore[dict-item]
    assert response.status_code == 401
    _assert_secure(response)


def test_token_matches_uses_bytes() -> None:
    assert token_matches(TOKEN.encode(), TOKEN) is True
    assert token_matches(None, TOKEN) is False


def test_dev_mode_needs_no_token_but_checks_one_when_configured(tmp_path: Path) -> None:
    client = _client(tmp_path, dev_mode=True, token=None)
    assert client.get("/api/v1/runs").status_code == 200
    client = _client(tmp_path, dev_mode=True, token=TOKEN)
    assert client.get("/api/v1/runs").status_code == 200
    assert client.get("/api/v1/runs", headers={"X-API-Token": "wrong"}).status_code == 401


# --- settings: fail closed --------------------------------------------------------------------------


def test_settings_fail_closed() -> None:
    with pytest.raises(SettingsError, match="SPLINE_API_TOKEN"):
        Settings.from_env({"SPLINE_DEV_MODE": "0"})
    for bad in ("2", "true", "", "yes", " 0x"):
        with pytest.raises(SettingsError, match="SPLINE_DEV_MODE"):
            Settings.from_env({"SPLINE_DEV_MODE": bad})
    with pytest.raises(SettingsError, match="wildcard"):
        Settings.from_env({"SPLINE_CORS_ORIGINS": "*"})
    with pytest.raises(SettingsError, match="SPLINE_MAX_JOBS"):
        Settings.from_env({"SPLINE_MAX_JOBS": "0"})
    settings = Settings.from_env({"SPLINE_DEV_MODE": "0", "SPLINE_API_TOKEN": "t", "SPLINE_DATA_ETTH1": "/d/e.csv"})
    assert not settings.dev_mode and settings.datasets["etth1"] == "etth1"
    assert Settings.from_env({}).dev_mode is True


def test_main_refuses_unsafe_starts(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SPLINE_DEV_MODE", "1")
    monkeypatch.delenv("SPLINE_API_TOKEN", raising=False)
    assert api_main(["--host", "0.0.0.0"]) == 2
    assert "loopback" in capsys.readouterr().err
    monkeypatch.setenv("SPLINE_DEV_MODE", "maybe")
    assert api_main([]) == 2
    assert "SPLINE_DEV_MODE" in capsys.readouterr().err


def test_prod_without_token_exits_nonzero_before_binding() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPLINE_")}
    env["SPLINE_DEV_MODE"] = "0"
    done = subprocess.run(
        [sys.executable, "-m", "splineforecast.api", "--port", "1"],  # port 1 would fail to bind as non-root
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "refusing to start" in done.stderr and "SPLINE_API_TOKEN" in done.stderr
    assert "Uvicorn running" not in done.stderr


# --- origins, hosts, CORS ---------------------------------------------------------------------------


def test_cross_origin_post_from_unknown_origin_is_refused_even_in_dev(dev: TestClient) -> None:
    response = dev.post("/api/v1/jobs", json={"dataset": "nope"}, headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    _assert_secure(response)
    allowed = dev.post("/api/v1/jobs", json={"dataset": "nope"}, headers={"Origin": "http://localhost:3000"})
    assert allowed.status_code == 422  # reached the endpoint
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "access-control-allow-credentials" not in allowed.headers


def test_cors_preflight(dev: TestClient) -> None:
    ok = dev.options(
        "/api/v1/jobs", headers={"Origin": "http://127.0.0.1:3000", "Access-Control-Request-Method": "POST"}
    )
    assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    assert "X-API-Token" in ok.headers["access-control-allow-headers"]
    refused = dev.options(
        "/api/v1/jobs", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    _assert_secure(refused)
    get = dev.get("/api/v1/health", headers={"Origin": "http://evil.example"})
    assert get.status_code == 200 and "access-control-allow-origin" not in get.headers


def test_cors_origins_from_env() -> None:
    settings = Settings.from_env({"SPLINE_CORS_ORIGINS": "https://gui.example, https://b.example"})
    assert settings.cors_origins == ("https://gui.example", "https://b.example")


def test_untrusted_host_is_refused(tmp_path: Path) -> None:
    client = _client(tmp_path, trusted_hosts=("api.example",))
    response = client.get("/api/v1/health")  # TestClient sends Host: testserver
    assert response.status_code == 400
    _assert_secure(response)
    assert client.get("/api/v1/health", headers={"Host": "api.example:8000"}).status_code == 200


# --- bodies -----------------------------------------------------------------------------------------


def test_json_content_type_is_required(prod: TestClient) -> None:
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {**AUTH, **({"content-type": ctype} if ctype else {})}
        response = prod.post("/api/v1/jobs", content=b'{"dataset": "tiny"}', headers=headers)
        assert response.status_code == 415, ctype
        _assert_secure(response)


def test_body_limit_holds_for_declared_and_chunked_bodies(tmp_path: Path) -> None:
    client = _client(tmp_path, max_body=1000)
    headers = {**AUTH, "content-type": "application/json"}
    big = b'{"dataset": "' + b"x" * 2000 + b'"}'
    response = client.post("/api/v1/jobs", content=big, headers=headers)
    assert response.status_code == 413
    _assert_secure(response)
    chunked = client.post("/api/v1/jobs", content=(big[i : i + 100] for i in range(0, len(big), 100)), headers=headers)
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    _assert_secure(chunked)


def test_bad_json_is_a_json_4xx(prod: TestClient) -> None:
    response = prod.post("/api/v1/jobs", content=b"{not json", headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 422 and response.json()["ok"] is False
    _assert_secure(response)


# --- errors: shape, 500, NaN ----------------------------------------------------------------------


def test_500_is_generic_json_with_headers(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path), store=FakeStore(tmp_path))  # type: ignore[arg-type]

    @app.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret detail /etc/passwd")

    @app.get("/api/v1/nan")
    def nan() -> dict[str, Any]:
        return {"x": float("nan"), "y": [float("-inf"), 1.5]}

    client = _client(tmp_path, app)
    response = client.get("/api/v1/boom", headers=AUTH)
    assert response.status_code == 500
    assert response.json() == {"ok": False, "error": "internal server error"}
    assert "secret" not in response.text
    _assert_secure(response)
    assert client.get("/api/v1/nan", headers=AUTH).json() == {"x": None, "y": [None, 1.5]}


def test_nan_metrics_are_null(prod: TestClient) -> None:
    runs = prod.get("/api/v1/runs", headers=AUTH)
    assert runs.status_code == 200 and runs.json()["runs"][0]["metrics"] == {"mae": 0.5, "r2": None}
    assert "NaN" not in runs.text
    assert prod.get("/api/v1/runs/good", headers=AUTH).json()["metrics"] == {"mae": None}


def test_404_and_405_are_json(prod: TestClient) -> None:
    response = prod.get("/api/v1/runs/missing", headers=AUTH)
    assert response.status_code == 404 and response.json()["ok"] is False
    _assert_secure(response)


# --- run_ids and paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["..", "a..b", ".hidden", "-x", "a" * 129, "a b", "a%00b", "é"])
def test_unsafe_run_ids_are_refused(prod: TestClient, bad: str) -> None:
    for path in (f"/api/v1/runs/{bad}", f"/api/v1/jobs/{bad}"):
        response = prod.get(path, headers=AUTH)
        assert response.status_code in (404, 422), (path, response.status_code)
        if response.status_code == 422:
            assert response.json()["error"]["code"] == "CONFIG_ERROR"
        _assert_secure(response)
    response = prod.post(f"/api/v1/runs/{bad}/forecast", json={"columns": ["date"], "data": [[1]]}, headers=AUTH)
    assert response.status_code in (404, 422)


def test_encoded_traversal_never_reaches_the_store(prod: TestClient) -> None:
    for path in ("/api/v1/runs/..%2F..%2Fetc", "/api/v1/runs/%2e%2e", "/api/v1/runs/..%5c..%5cx"):
        assert prod.get(path, headers=AUTH).status_code in (404, 422)


def test_under_root(tmp_path: Path) -> None:
    assert under_root(tmp_path, tmp_path / "a" / "b") == (tmp_path / "a" / "b").resolve()
    with pytest.raises(ValueError):
        under_root(tmp_path / "root", tmp_path / "root" / ".." / "x")


# --- training jobs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"overrides": "model=gru"},
        {"hydra.run.dir": "/tmp"},
        {"_target_": "os.system"},
        {"data.path": "/etc/passwd"},
        {"dataset": "../etc"},
        {"dataset": "/etc/passwd"},
        {"dataset": "tiny data.path=/etc/passwd"},
        {"model": "gru hydra.verbose=true"},
        {"hidden_size": "64 +x=1"},
        {"epochs": 0},
        {"epochs": 10_000},
        {"spline": "cubic,pchip"},
        {"model": {"_target_": "os.system"}},
    ],
)
def test_train_body_is_allow_listed(prod: TestClient, body: dict[str, Any]) -> None:
    response = prod.post("/api/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 422, (body, response.text)
    assert response.json()["ok"] is False


def test_overrides_are_built_from_typed_values(tmp_path: Path) -> None:
    settings = _settings(tmp_path, dataset_paths={"tiny": "/data/my file.csv"})
    body = TrainRequest(dataset="tiny", model="gru", hidden_size=8, num_layers=2, lookback=20, horizon=3, epochs=2)
    overrides = build_overrides(body, settings, "api-1")
    assert overrides[:6] == [
        "data=tiny",
        "model=gru",
        "model.hidden_size=8",
        "model.num_layers=2",
        "trainer.max_epochs=2",
        "spline=cubic",
    ]
    assert 'data.path="/data/my file.csv"' in overrides and "data.lookback=20" in overrides
    assert "run_id=api-1" in overrides and f"paths.artifacts={settings.artifact_root}" in overrides


def test_parse_error_reads_the_spec_line() -> None:
    line = json.dumps({"ok": False, "exit_code": 25, "error": {"code": "CONFIG_ERROR", "message": "m", "type": "T"}})
    assert parse_error(f"warning\n{line}\n", 25)["error"]["code"] == "CONFIG_ERROR"
    generic = parse_error("Traceback ... secret\n", 1)
    assert generic["exit_code"] == 1 and generic["error"]["code"] == "RUNNER_EXEC_ERROR"
    assert "secret" not in json.dumps(generic)


def _fake_popen(results: list[tuple[int, str]], gate: threading.Event) -> Any:
    class FakePopen:
        def __init__(self, args: list[str], **kwargs: Any) -> None:
            assert args[1:3] == ["-m", "splineforecast"] and "SPLINE_API_TOKEN" not in kwargs["env"]
            self.returncode, self._stderr = results.pop(0)

        def communicate(self) -> tuple[str, str]:
            gate.wait(10)
            return "", self._stderr

    return FakePopen


def _wait(client: TestClient, job_id: str, states: tuple[str, ...]) -> dict[str, Any]:
    import time

    for _ in range(200):
        view = client.get(f"/api/v1/jobs/{job_id}", headers=AUTH).json()
        if view["status"] in states:
            return view
        time.sleep(0.02)
    raise AssertionError(view)


def test_job_lifecycle_queue_bound_and_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = {"ok": False, "exit_code": 26, "error": {"code": "INSUFFICIENT_DATA_ERROR", "message": "m", "type": "V"}}
    gate = threading.Event()
    results = [(0, ""), (26, "log line\n" + json.dumps(payload) + "\n")]
    monkeypatch.setattr(jobs_module.subprocess, "Popen", _fake_popen(results, gate))
    client = _client(tmp_path, max_jobs=1, max_queue=1)
    first = client.post("/api/v1/jobs", json={"dataset": "tiny", "epochs": 1}, headers=AUTH)
    assert first.status_code == 202 and first.json()["status"] in ("queued", "running")
    second = client.post("/api/v1/jobs", json={"dataset": "tiny"}, headers=AUTH)
    assert second.status_code == 202
    assert _wait(client, first.json()["job_id"], ("running",))["status"] == "running"
    assert client.get(f"/api/v1/jobs/{second.json()['job_id']}", headers=AUTH).json()["status"] == "queued"
    third = client.post("/api/v1/jobs", json={"dataset": "tiny"}, headers=AUTH)
    assert third.status_code == 429 and third.json()["ok"] is False
    _assert_secure(third)
    gate.set()
    assert _wait(client, first.json()["job_id"], ("finished", "failed"))["status"] == "finished"
    failed = _wait(client, second.json()["job_id"], ("finished", "failed"))
    assert failed["status"] == "failed" and failed["error"] == payload and failed["exit_code"] == 26
    assert client.get("/api/v1/jobs/api-unknown", headers=AUTH).status_code == 404


# --- forecast -------------------------------------------------------------------------------------


class _StubModel:
    def predict(self, history: pd.DataFrame) -> pd.DataFrame:
        from splineforecast.errors import ContractError, ErrorCode

        if "co2" not in history.columns:
            raise ContractError(ErrorCode.DATA_SCHEMA_ERROR, "history lacks column(s) ['co2']")
        future = pd.date_range("2001-01-06", periods=2, freq="W-SAT")
        return pd.DataFrame({"date": future, "step": [1, 2], "co2": [370.5, float("nan")]})


def test_forecast(prod: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    serving = types.ModuleType("splineforecast.serving")  # a stub: the real one loads torch
    serving.load_run_forecaster = lambda *a, **k: _StubModel()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "splineforecast.serving", serving)
    body = {"columns": ["date", "co2"], "data": [["2000-12-30", 370.1], ["2000-12-23", None]]}
    response = prod.post("/api/v1/runs/good/forecast", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["forecast"] == [
        {"date": "2001-01-06T00:00:00", "step": 1, "co2": 370.5},
        {"date": "2001-01-13T00:00:00", "step": 2, "co2": None},
    ]
    wrong = prod.post("/api/v1/runs/good/forecast", json={"columns": ["date"], "data": [["x"]]}, headers=AUTH)
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "DATA_SCHEMA_ERROR" and wrong.json()["exit_code"] == 28
    ragged = prod.post("/api/v1/runs/good/forecast", json={"columns": ["date", "co2"], "data": [["x"]]}, headers=AUTH)
    assert ragged.status_code == 422 and ragged.json()["error"]["code"] == "INPUT_SHAPE_ERROR"
    untrained = prod.post("/api/v1/runs/other/forecast", json=body, headers=AUTH)
    assert untrained.status_code == 404
