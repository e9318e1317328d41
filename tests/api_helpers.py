"""What the API tests share: settings in a temporary folder, a TestClient, a recording store, assertions."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from splineforecast.api import Settings, create_app
from splineforecast.artifacts import RunPaths

TOKEN = "s3cret-token-for-tests"
AUTH = {"X-API-Token": TOKEN}
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def wait_healthy(base: str, died: Callable[[], str | None], timeout: float = 120.0) -> None:
    """Poll ``base``'s health endpoint until it answers 200; ``died()`` names why the server is gone (its log)
    or is None while it runs. Fails when it died or did not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1) as client:  # one client: each httpx.get() builds a TLS context (~70 ms CPU)
        while True:
            try:
                if client.get(f"{base}/api/v1/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            why = died()
            assert why is None, why
            assert time.monotonic() < deadline, f"{base} did not answer /api/v1/health within {timeout} s"
            time.sleep(0.1)


class FakeStore:
    """Stands in for RunStore: one known run, ``good``, with a model; ``calls`` records every call."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple[str, Any]] = []

    def list_runs(self, limit: int = 100) -> list[dict[str, Any]]:
        self.calls.append(("list_runs", limit))
        return [{"run_id": "good", "status": "FINISHED", "metrics": {"mae": 0.5, "r2": float("nan")}}]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        self.calls.append(("get_run", run_id))
        if run_id != "good":
            return None
        return {"run_id": "good", "status": "FINISHED", "metrics": {"mae": float("inf")}, "params": {}, "artifacts": []}

    def trained(self, run_id: str) -> bool:
        self.calls.append(("trained", run_id))
        return run_id == "good"

    def paths(self, run_id: str) -> RunPaths:
        self.calls.append(("paths", run_id))
        return RunPaths(self.root, run_id)


def settings_for(tmp_path: Path, **kw: Any) -> Settings:
    """Prod settings with ``TOKEN``, everything under ``tmp_path``; ``kw`` overrides fields."""
    base: dict[str, Any] = {
        "dev_mode": False,
        "token": TOKEN,
        "artifact_root": tmp_path / "artifacts",
        "tracking_uri": f"sqlite:///{tmp_path}/mlruns/mlflow.db",
        "state_dir": tmp_path / "state",
    }
    return Settings(**{**base, **kw})


def client_for(tmp_path: Path, app: FastAPI | None = None, **kw: Any) -> TestClient:
    """A TestClient of ``app``, else of an app on ``settings_for(tmp_path, **kw)`` and a FakeStore."""
    app = app or create_app(settings_for(tmp_path, **kw), store=FakeStore(tmp_path / "artifacts"))  # type: ignore[arg-type]
    return TestClient(app, raise_server_exceptions=False)


def assert_secure(response: Any) -> None:
    """``response`` carries the security headers and is JSON (or a 204 without a body)."""
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.status_code)
    assert response.headers["content-type"].startswith("application/json") or response.status_code == 204


def assert_refused(response: Any, status: int, code: str) -> None:
    """``response`` is the JSON refusal ``code`` with ``status`` and the security headers."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["ok"] is False and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert_secure(response)


def store_of(client: TestClient) -> FakeStore:
    """The FakeStore behind ``client``."""
    store = client.app.state.store  # type: ignore[attr-defined]
    assert isinstance(store, FakeStore)
    return store
