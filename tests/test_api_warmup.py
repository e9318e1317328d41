"""The app's one-time work runs before it serves: its lifespan awaits ``store.warm()`` in a worker thread (uvicorn
listens only once the lifespan has started), and a store that cannot be read, or a forecasting import that fails,
is only logged: the server still starts and answers health."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from api_helpers import AUTH, FakeStore, TestClient, settings_for

from splineforecast.api import create_app, runs
from splineforecast.api.runs import RunStore


class WarmingStore(FakeStore):
    """A FakeStore with a slow ``warm``: it records when it ended, its thread and whether an event loop ran there."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.ended: float | None = None
        self.thread: int | None = None
        self.loop_here = False

    def warm(self) -> None:
        try:
            asyncio.get_running_loop()
            self.loop_here = True
        except RuntimeError:  # no loop runs in this thread
            self.loop_here = False
        self.thread = threading.get_ident()
        time.sleep(0.3)
        self.ended = time.monotonic()


def test_the_lifespan_finishes_the_warm_up_in_a_worker_thread_before_the_first_request(tmp_path: Path) -> None:
    store = WarmingStore(tmp_path / "artifacts")
    app = create_app(settings_for(tmp_path), store=store)  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        assert store.ended is not None  # done when the startup returned, before any request
        asked = time.monotonic()
        assert client.get("/api/v1/health").status_code == 200
    assert store.ended < asked
    assert store.loop_here is False and store.thread not in (None, threading.get_ident())
    assert store.calls == []  # the warm-up of a FakeStore asks nothing else of it


def test_a_store_without_warm_starts_as_it_is(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path), store=FakeStore(tmp_path / "artifacts"))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/api/v1/health").json()["status"] == "ok"


def test_an_unreadable_store_and_a_failed_import_are_logged_and_the_server_still_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "mlruns" / "mlflow.db"
    broken.parent.mkdir()
    broken.write_bytes(b"not a database" * 100)

    def no_torch() -> None:
        raise ImportError("no module named torch")

    monkeypatch.setattr(runs, "import_forecasting", no_torch)  # a broken install, not this machine's
    store = RunStore(f"sqlite:///{broken}", "splineforecast", tmp_path / "artifacts")
    with TestClient(create_app(settings_for(tmp_path), store=store), raise_server_exceptions=False) as client:
        assert client.get("/api/v1/health").status_code == 200
        listed = client.get("/api/v1/runs", headers=AUTH)
    assert listed.status_code == 500 and listed.json()["ok"] is False  # the request reports the store's error
    assert f"could not open the tracking store sqlite:///{broken}" in caplog.text
    assert "could not import the forecasting modules ahead of the first forecast" in caplog.text
