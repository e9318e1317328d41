"""The API's training jobs (an allow-listed body, a bounded queue) and forecasts, with FastAPI's TestClient."""

from __future__ import annotations

import json
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from api_helpers import AUTH, TestClient, assert_refused, client_for, settings_for, store_of

from splineforecast.api import jobs as jobs_module
from splineforecast.api.jobs import TrainRequest, build_overrides, parse_error
from splineforecast.data.splines import KINDS
from splineforecast.models.registry import MODEL_NAMES


@pytest.fixture
def prod(tmp_path: Path) -> TestClient:
    return client_for(tmp_path)


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
    assert_refused(response, 422, "VALIDATION_ERROR")
    assert prod.app.state.jobs.jobs == {}  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", MODEL_NAMES)
@pytest.mark.parametrize("spline", KINDS)
def test_every_registry_value_is_accepted(tmp_path: Path, model: str, spline: str) -> None:
    body = TrainRequest.model_validate({"model": model, "spline": spline})
    overrides = build_overrides(body, settings_for(tmp_path), "api-1")
    assert f"model={model}" in overrides and f"spline={spline}" in overrides


def test_overrides_are_built_from_typed_values(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, dataset_paths={"tiny": "/data/my file.csv"})
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
    client = client_for(tmp_path, max_jobs=1, max_queue=1)
    first = client.post("/api/v1/jobs", json={"dataset": "tiny", "epochs": 1}, headers=AUTH)
    assert first.status_code == 202 and first.json()["request"]["epochs"] == 1
    second = client.post("/api/v1/jobs", json={"dataset": "tiny"}, headers=AUTH)
    assert second.status_code == 202
    assert _wait(client, first.json()["job_id"], ("running",))["status"] == "running"
    assert client.get(f"/api/v1/jobs/{second.json()['job_id']}", headers=AUTH).json()["status"] == "queued"
    third = client.post("/api/v1/jobs", json={"dataset": "tiny"}, headers=AUTH)
    assert_refused(third, 429, "TOO_MANY_JOBS")
    gate.set()
    assert _wait(client, first.json()["job_id"], ("finished", "failed"))["status"] == "finished"
    failed = _wait(client, second.json()["job_id"], ("finished", "failed"))
    assert failed["status"] == "failed" and failed["error"] == payload and failed["exit_code"] == 26
    assert_refused(client.get("/api/v1/jobs/api-unknown", headers=AUTH), 404, "NOT_FOUND")


# --- forecast -------------------------------------------------------------------------------------


class _StubModel:
    settings = types.SimpleNamespace(time_column="date", time_format=None)

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
    assert_refused(untrained, 404, "NOT_FOUND")
    assert ("trained", "other") in store_of(prod).calls and ("paths", "other") not in store_of(prod).calls
