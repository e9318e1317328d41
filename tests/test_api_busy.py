"""The API under load: the cap on heavy requests (SPLINE_MAX_BUSY), the kept forecasters, the artifact list.

The cap's slots are held by taking them from the app's limiter directly, so what a request meets is known.
The slow tests read one tiny trained run (data=tiny trainer=smoke) through the real tracking store.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from api_helpers import AUTH, assert_refused, client_for, settings_for
from conftest import Cli, run_here

from splineforecast.api import Settings, SettingsError, create_app
from splineforecast.api.busy import BusyLimiter
from splineforecast.api.runs import RunStore, _listed_artifacts

RUN = "busy-run"
HEAVY = (("GET", "/api/v1/runs"), ("GET", "/api/v1/runs/good"), ("POST", "/api/v1/datasets"))


def _hold_all(limiter: BusyLimiter) -> None:
    for _ in range(limiter.slots):
        assert limiter.try_acquire()
    assert not limiter.try_acquire()


def test_heavy_requests_beyond_the_cap_get_429_with_retry_after(tmp_path: Path) -> None:
    client = client_for(tmp_path, max_busy=2, busy_wait_s=0.05)
    limiter: BusyLimiter = client.app.state.busy  # type: ignore[attr-defined]
    assert (limiter.slots, limiter.wait_s) == (2, 0.05)
    _hold_all(limiter)
    for method, path in HEAVY:
        refused = client.request(method, path, headers=AUTH, json={} if method == "POST" else None)
        assert_refused(refused, 429, "SERVER_BUSY")
        assert refused.headers["retry-after"] == "1" and "SPLINE_MAX_BUSY" in refused.json()["error"]["message"]
    forecast = client.post("/api/v1/runs/good/forecast", json={"columns": ["date"], "data": [[1]]}, headers=AUTH)
    assert_refused(forecast, 429, "SERVER_BUSY")
    assert client.get("/api/v1/health").status_code == 200  # never capped
    assert client.get("/").status_code == 200  # the GUI's page neither
    assert client.get("/api/v1/jobs", headers=AUTH).status_code == 200  # a light read neither
    assert_refused(client.get("/api/v1/runs"), 401, "UNAUTHORIZED")  # the token rule comes first: no wait
    assert limiter.busy == 2 and limiter.waiting == 0  # the refused ones took no slot and left no waiter
    limiter.release()
    assert client.get("/api/v1/runs", headers=AUTH).status_code == 200
    assert limiter.busy == 1  # the served request gave its slot back


def test_a_waiting_request_is_served_when_a_slot_frees(tmp_path: Path) -> None:
    client = client_for(tmp_path, max_busy=1, busy_wait_s=60)
    limiter: BusyLimiter = client.app.state.busy  # type: ignore[attr-defined]
    _hold_all(limiter)
    answers: list[Any] = []
    waiter = threading.Thread(target=lambda: answers.append(client.get("/api/v1/runs", headers=AUTH)))
    waiter.start()
    deadline = time.monotonic() + 30
    while limiter.waiting == 0:  # the request is queued for a slot, not yet served
        assert time.monotonic() < deadline and waiter.is_alive(), answers
        time.sleep(0.01)
    assert answers == []
    limiter.release()
    waiter.join(timeout=30)
    assert [a.status_code for a in answers] == [200] and answers[0].json()["runs"][0]["run_id"] == "good"
    assert (limiter.busy, limiter.waiting) == (0, 0)


def test_spline_max_busy_is_read_and_checked() -> None:
    assert Settings.from_env({}).max_busy == 4
    assert Settings.from_env({"SPLINE_MAX_BUSY": "9"}).max_busy == 9
    for bad in ("0", "many"):
        with pytest.raises(SettingsError, match="SPLINE_MAX_BUSY"):
            Settings.from_env({"SPLINE_MAX_BUSY": bad})
    with pytest.raises(ValueError, match="slots must be at least 1"):
        BusyLimiter(0, 1.0)
    with pytest.raises(RuntimeError, match="without a slot"):
        BusyLimiter(1, 1.0).release()


# --- a real run: its artifact list, its kept forecaster ------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path) -> Cli:
    """One finished tiny run, ``busy-run``, trained in this process into a store of its own."""
    cli = Cli(tmp_path_factory.mktemp("busy"))
    cli.seed_store(migrated_store)
    with pytest.MonkeyPatch.context() as mp:
        run_here(cli, mp, "data=tiny", "trainer=smoke", f"run_id={RUN}")
    return cli


@pytest.mark.slow
def test_the_artifact_list_is_what_the_store_holds(trained: Cli, tmp_path: Path) -> None:
    store = RunStore(trained.tracking_uri, "splineforecast", trained.artifacts)
    run = store.get_run(RUN)
    assert run is not None
    listed = run["artifacts"]
    client, _ = store._open()
    assert listed == _listed_artifacts(client, run["mlflow_run_id"])  # MLflow's own walk of the same run
    assert {"metrics.json", "report.md", "checkpoints/best.ckpt", "model/MLmodel"} <= {a["path"] for a in listed}
    assert all(a["size"] > 0 for a in listed)
    assert store._open()[0] is client  # one client for the store's life

    settings = settings_for(tmp_path, artifact_root=trained.artifacts, tracking_uri=trained.tracking_uri)
    answer = client_for(tmp_path, create_app(settings, store=store)).get(f"/api/v1/runs/{RUN}", headers=AUTH)
    assert answer.status_code == 200 and answer.json()["artifacts"] == listed


@pytest.mark.slow
def test_a_kept_forecaster_is_loaded_again_after_its_checkpoint_changes(trained: Cli) -> None:
    store = RunStore(trained.tracking_uri, "splineforecast", trained.artifacts)
    first = store.forecaster(RUN)
    assert store.forecaster(RUN) is first  # kept
    ckpt = store.paths(RUN).best_ckpt
    stat = ckpt.stat()
    os.utime(ckpt, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a retrained run's checkpoint
    second = store.forecaster(RUN)
    assert second is not first and store.forecaster(RUN) is second
