"""The HTTP API's rules (SPEC §7) with FastAPI's TestClient: no server, no training, no tracking store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from api_helpers import (
    AUTH,
    SECURITY_HEADERS,
    TOKEN,
    FakeStore,
    TestClient,
    assert_refused,
    assert_secure,
    client_for,
    settings_for,
    store_of,
)
from fastapi import FastAPI, HTTPException
from fastapi.routing import iter_route_contexts

from splineforecast.api import Settings, SettingsError, create_app
from splineforecast.api.__main__ import main as api_main
from splineforecast.api.runs import under_root
from splineforecast.api.security import token_matches
from splineforecast.data.splines import KINDS
from splineforecast.models.registry import MODEL_NAMES


@pytest.fixture
def prod(tmp_path: Path) -> TestClient:
    return client_for(tmp_path)


@pytest.fixture
def dev(tmp_path: Path) -> TestClient:
    return client_for(tmp_path, dev_mode=True, token=None)


# --- every route needs a token in prod mode -------------------------------------------------------


def _concrete(path: str) -> str:
    return path.replace("{run_id}", "good").replace("{job_id}", "api-x")


def test_every_route_but_health_refuses_without_token_in_prod(prod: TestClient) -> None:
    app = prod.app
    assert isinstance(app, FastAPI)
    seen: set[str] = set()
    for route in iter_route_contexts(app.routes):
        assert route.path is not None
        for method in sorted(route.methods or ()):
            path = _concrete(route.path)
            for headers in ({}, {"X-API-Token": "wrong"}, {"X-API-Token": ""}):
                response = prod.request(method, path, headers={**headers, "content-type": "application/json"}, json={})
                if route.path == "/api/v1/health":
                    assert response.status_code == 200
                    assert_secure(response)
                else:
                    assert_refused(response, 401, "UNAUTHORIZED")
                    assert response.headers["www-authenticate"] == "APIKey"
            seen.add(f"{method} {route.path}")
    assert {"GET /api/v1/openapi.json", "GET /api/v1/docs", "POST /api/v1/jobs", "GET /api/v1/health"} <= seen
    # health, runs, run, forecast, jobs (POST, GET), job (GET, DELETE), resume, datasets (GET, POST), openapi, docs
    assert len(seen) == 13, seen
    assert store_of(prod).calls == []  # no refused request reached the store


def test_unknown_paths_and_methods_also_need_a_token_in_prod(prod: TestClient) -> None:
    assert_refused(prod.get("/api/v1/nope"), 401, "UNAUTHORIZED")
    assert_refused(prod.get("/nope", headers={"X-API-Token": "wrong"}), 401, "UNAUTHORIZED")
    assert_refused(prod.delete("/api/v1/runs"), 401, "UNAUTHORIZED")
    assert_refused(prod.get("/api/v1/nope", headers=AUTH), 404, "NOT_FOUND")


def test_with_the_token_routes_answer(prod: TestClient) -> None:
    assert prod.get("/api/v1/runs", headers=AUTH).status_code == 200
    assert prod.get("/api/v1/datasets", headers=AUTH).json()["datasets"] == ["co2", "tiny"]
    assert prod.get("/api/v1/health").json()["ok"] is True


def test_openapi_declares_the_token_scheme(prod: TestClient) -> None:
    schema = prod.get("/api/v1/openapi.json", headers=AUTH).json()
    schemes = schema["components"]["securitySchemes"]
    assert {"type": "apiKey", "in": "header", "name": "X-API-Token"}.items() <= next(iter(schemes.values())).items()
    assert all(p.startswith("/api/v1/") for p in schema["paths"])
    operations = {f"{m} {p}": op for p, ops in schema["paths"].items() for m, op in ops.items()}
    assert len(operations) == 11  # 8, and the jobs list, cancel and resume
    for name, operation in operations.items():
        expected = [] if name == "get /api/v1/health" else [{next(iter(schemes)): []}]
        assert operation.get("security", []) == expected, name
    docs = prod.get("/api/v1/docs", headers=AUTH)
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text
    _assert_secure_html(docs)


def _assert_secure_html(response: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert response.headers["content-type"].startswith("text/html")


def test_openapi_lists_the_registry_values(prod: TestClient) -> None:
    schema = prod.get("/api/v1/openapi.json", headers=AUTH).json()
    fields = schema["components"]["schemas"]["TrainRequest"]["properties"]
    assert fields["model"]["enum"] == list(MODEL_NAMES)
    assert fields["spline"]["enum"] == list(KINDS)


# --- tokens ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given", [b"\xff\xfe\x00", "é".encode(), TOKEN.encode() + b"\x00", TOKEN.upper().encode(), b"x" * 10_000]
)
def test_odd_token_bytes_are_refused_never_500(tmp_path: Path, given: bytes) -> None:
    assert token_matches(given, TOKEN) is False
    for client in (client_for(tmp_path), client_for(tmp_path, dev_mode=True)):  # dev checks a token that is sent
        response = client.get("/api/v1/runs", headers={"X-API-Token": given})  # type: ignore[dict-item]
        assert_refused(response, 401, "UNAUTHORIZED")


def test_token_matches_uses_bytes() -> None:
    assert token_matches(TOKEN.encode(), TOKEN) is True
    assert token_matches(None, TOKEN) is False


def test_dev_mode_needs_no_token_but_checks_one_when_configured(tmp_path: Path) -> None:
    client = client_for(tmp_path, dev_mode=True, token=None)
    assert client.get("/api/v1/runs").status_code == 200
    assert client.get("/api/v1/runs", headers={"X-API-Token": "anything"}).status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200
    client = client_for(tmp_path, dev_mode=True, token=TOKEN)
    assert client.get("/api/v1/runs").status_code == 200
    assert client.get("/api/v1/runs", headers=AUTH).status_code == 200
    assert client.get("/api/v1/runs", headers={"X-API-Token": ""}).status_code == 200  # empty: no token
    assert_refused(client.get("/api/v1/runs", headers={"X-API-Token": "wrong"}), 401, "UNAUTHORIZED")
    assert_refused(client.get("/api/v1/nope", headers={"X-API-Token": "wrong"}), 401, "UNAUTHORIZED")
    assert_refused(client.get("/api/v1/nope"), 404, "NOT_FOUND")


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
    with pytest.raises(SettingsError, match="SPLINE_TRUSTED_HOSTS"):
        Settings.from_env({"SPLINE_DEV_MODE": "0", "SPLINE_API_TOKEN": "t", "SPLINE_TRUSTED_HOSTS": "*"})
    with pytest.raises(SettingsError, match="pattern"):
        Settings.from_env({"SPLINE_TRUSTED_HOSTS": "*.example.org"})
    assert Settings.from_env({"SPLINE_TRUSTED_HOSTS": "*"}).trusted_hosts == ("*",)  # dev only
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


@pytest.mark.parametrize("mode", ["dev", "prod"])
def test_cross_origin_post_from_unknown_origin_is_refused_even_in_dev(tmp_path: Path, mode: str) -> None:
    client = client_for(tmp_path, dev_mode=True, token=None) if mode == "dev" else client_for(tmp_path)
    for origin in ("http://evil.example", "null", "http://localhost:3000.evil.example"):
        response = client.post("/api/v1/jobs", json={"dataset": "nope"}, headers={**AUTH, "Origin": origin})
        assert_refused(response, 403, "ORIGIN_REFUSED")
        assert "access-control-allow-origin" not in response.headers
    allowed = client.post("/api/v1/jobs", json={"dataset": "nope"}, headers={**AUTH, "Origin": "http://localhost:3000"})
    assert_refused(allowed, 422, "UNKNOWN_DATASET")  # reached the endpoint
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "access-control-allow-credentials" not in allowed.headers


def test_cors_preflight(dev: TestClient) -> None:
    asks = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type, x-api-token"}
    ok = dev.options("/api/v1/jobs", headers={"Origin": "http://127.0.0.1:3000", **asks})
    assert ok.status_code == 204 and ok.content == b""
    assert ok.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    assert "X-API-Token" in ok.headers["access-control-allow-headers"]
    assert ok.headers["access-control-allow-methods"] == "GET, POST, DELETE"
    assert "access-control-allow-credentials" not in ok.headers
    for name, value in SECURITY_HEADERS.items():
        assert ok.headers[name] == value
    refused = dev.options("/api/v1/jobs", headers={"Origin": "http://evil.example", **asks})
    assert_refused(refused, 403, "CORS_REFUSED")
    assert not [h for h in refused.headers if h.startswith("access-control-")]
    method = dev.options(
        "/api/v1/jobs", headers={"Origin": "http://127.0.0.1:3000", "Access-Control-Request-Method": "PUT"}
    )
    assert_refused(method, 403, "CORS_REFUSED")
    get = dev.get("/api/v1/health", headers={"Origin": "http://evil.example"})
    assert get.status_code == 200 and "access-control-allow-origin" not in get.headers
    assert get.headers["vary"] == "Origin"


def test_cors_origins_from_env() -> None:
    settings = Settings.from_env({"SPLINE_CORS_ORIGINS": "https://gui.example, https://b.example"})
    assert settings.cors_origins == ("https://gui.example", "https://b.example")


def test_untrusted_host_is_refused(tmp_path: Path) -> None:
    client = client_for(tmp_path, trusted_hosts=("api.example", "::1"))
    assert_refused(client.get("/api/v1/health"), 400, "INVALID_HOST")  # TestClient sends Host: testserver
    for host in ("evil.example", "api.example.evil", "www.api.example", "", "api.example:x"):
        assert_refused(client.get("/api/v1/health", headers={"Host": host}), 400, "INVALID_HOST")
    assert_refused(client.post("/api/v1/jobs", json={}, headers=AUTH), 400, "INVALID_HOST")
    assert client.get("/api/v1/health", headers={"Host": "api.example:8000"}).status_code == 200
    assert client.get("/api/v1/health", headers={"Host": "API.Example"}).status_code == 200
    assert client.get("/api/v1/health", headers={"Host": "[::1]:8000"}).status_code == 200
    assert store_of(client).calls == []


# --- bodies -----------------------------------------------------------------------------------------


def test_json_content_type_is_required(prod: TestClient) -> None:
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {**AUTH, **({"content-type": ctype} if ctype else {})}
        response = prod.post("/api/v1/jobs", content=b'{"dataset": "tiny"}', headers=headers)
        assert_refused(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert prod.app.state.jobs.jobs == {}  # type: ignore[attr-defined]


def test_body_limit_holds_for_declared_and_chunked_bodies(tmp_path: Path) -> None:
    client = client_for(tmp_path, max_body=1000)
    headers = {**AUTH, "content-type": "application/json"}
    big = b'{"dataset": "' + b"x" * 2000 + b'"}'
    assert_refused(client.post("/api/v1/jobs", content=big, headers=headers), 413, "PAYLOAD_TOO_LARGE")
    chunks = (big[i : i + 100] for i in range(0, len(big), 100))
    chunked = client.post("/api/v1/jobs", content=chunks, headers=headers)
    assert "content-length" not in chunked.request.headers  # sent chunked
    assert_refused(chunked, 413, "PAYLOAD_TOO_LARGE")
    assert client.app.state.jobs.jobs == {}  # type: ignore[attr-defined]
    # a route that reads no body: Starlette replaces its answer by a plain-text 413, sent in our shape
    assert_refused(client.request("GET", "/api/v1/runs", content=big, headers=AUTH), 413, "PAYLOAD_TOO_LARGE")
    small = client.post("/api/v1/jobs", json={"dataset": "nope"}, headers=AUTH)
    assert_refused(small, 422, "UNKNOWN_DATASET")  # under the limit: reached the endpoint


def test_bad_json_is_a_json_4xx(prod: TestClient) -> None:
    response = prod.post("/api/v1/jobs", content=b"{not json", headers={**AUTH, "content-type": "application/json"})
    assert_refused(response, 422, "VALIDATION_ERROR")


# --- errors: shape, 500, NaN ----------------------------------------------------------------------


def test_500_is_generic_json_with_headers(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path), store=FakeStore(tmp_path))  # type: ignore[arg-type]

    @app.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret detail /etc/passwd")

    @app.get("/api/v1/unavailable")
    def unavailable() -> None:
        raise HTTPException(503, "secret detail /etc/shadow")

    @app.get("/api/v1/nan")
    def nan() -> dict[str, Any]:
        return {"x": float("nan"), "y": [float("-inf"), 1.5]}

    client = client_for(tmp_path, app)
    for path, status in (("/api/v1/boom", 500), ("/api/v1/unavailable", 503)):
        response = client.get(path, headers={**AUTH, "Origin": "http://localhost:3000"})
        assert response.status_code == status
        assert response.json() == {"ok": False, "error": "internal server error"}
        assert "secret" not in response.text
        assert_secure(response)
        assert response.headers["access-control-allow-origin"] == "http://localhost:3000"  # a GUI may read it
    assert client.get("/api/v1/nan", headers=AUTH).json() == {"x": None, "y": [None, 1.5]}


def test_nan_metrics_are_null(prod: TestClient) -> None:
    runs = prod.get("/api/v1/runs", headers=AUTH)
    assert runs.status_code == 200 and runs.json()["runs"][0]["metrics"] == {"mae": 0.5, "r2": None}
    assert "NaN" not in runs.text
    assert prod.get("/api/v1/runs/good", headers=AUTH).json()["metrics"] == {"mae": None}


def test_404_and_405_are_json(prod: TestClient) -> None:
    assert_refused(prod.get("/api/v1/runs/missing", headers=AUTH), 404, "NOT_FOUND")  # the endpoint's
    assert_refused(prod.get("/api/v1/nope", headers=AUTH), 404, "NOT_FOUND")  # the router's
    for method, path in (("DELETE", "/api/v1/runs"), ("PUT", "/api/v1/jobs"), ("POST", "/api/v1/health")):
        response = prod.request(method, path, json={}, headers=AUTH)
        assert_refused(response, 405, "METHOD_NOT_ALLOWED")
        assert response.headers["allow"] in ("GET", "POST")
    assert store_of(prod).calls == [("get_run", "missing")]


# --- run_ids and paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["a..b", ".hidden", "-x", "a" * 129, "a b", "a%00b", "é", "%2e%2e", "..%5c..%5cx"])
def test_unsafe_run_ids_are_refused(prod: TestClient, bad: str) -> None:
    for path in (f"/api/v1/runs/{bad}", f"/api/v1/jobs/{bad}"):
        response = prod.get(path, headers=AUTH)
        assert_refused(response, 422, "CONFIG_ERROR")
        assert response.json()["exit_code"] == 25
    response = prod.post(f"/api/v1/runs/{bad}/forecast", json={"columns": ["date"], "data": [[1]]}, headers=AUTH)
    assert_refused(response, 422, "CONFIG_ERROR")
    assert store_of(prod).calls == []  # refused before the store is asked anything


def test_traversal_that_leaves_the_route_is_a_404(prod: TestClient) -> None:
    # ".." is resolved by the client and "%2F" splits the path: neither reaches a run route
    for path in ("/api/v1/runs/..", "/api/v1/runs/..%2F..%2Fetc", "/api/v1/runs/../forecast"):
        assert_refused(prod.get(path, headers=AUTH), 404, "NOT_FOUND")
    assert_refused(prod.post("/api/v1/runs/../forecast", json={}, headers=AUTH), 404, "NOT_FOUND")
    assert store_of(prod).calls == []


def test_under_root(tmp_path: Path) -> None:
    assert under_root(tmp_path, tmp_path / "a" / "b") == (tmp_path / "a" / "b").resolve()
    with pytest.raises(ValueError):
        under_root(tmp_path / "root", tmp_path / "root" / ".." / "x")
