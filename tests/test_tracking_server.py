"""The team path: ``MLFLOW_TRACKING_URI=http://...`` sends a run to a real ``mlflow server``.

The server runs on loopback with its own sqlite store and proxied artifacts (``--artifacts-destination``),
as a team server would; it is always stopped, with its worker processes, when the test ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from conftest import Cli

from splineforecast.artifacts import RunPaths
from splineforecast.tracking import RUN_ID_TAG


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (the server and its uvicorn worker), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def server(
    tmp_path_factory: pytest.TempPathFactory, free_port: int, migrated_store: Path
) -> Iterator[tuple[str, Path]]:
    """``(url, artifacts folder)`` of an ``mlflow server`` on a free loopback port, outside the run's folder.

    Its store starts migrated and empty (a copy of ``migrated_store``): the server skips the migrations.
    """
    tmp_path = tmp_path_factory.mktemp("server")
    url = f"http://127.0.0.1:{free_port}"
    served = tmp_path / "served"
    served.mkdir()
    shutil.copyfile(migrated_store, served / "srv.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no background job runner: the run is all we need
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1]),
        *("--workers", "1", "--backend-store-uri", f"sqlite:///{served}/srv.db"),
        *("--artifacts-destination", str(served / "art")),
    ]
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(command, cwd=served, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _healthy(url):
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not answer /health"
            time.sleep(0.25)
        yield url, served / "art"
    finally:
        _stop(proc)
        log.close()


@pytest.mark.slow
def test_a_run_lands_on_the_tracking_server(server: tuple[str, Path], cli: Cli) -> None:
    url, served_artifacts = server
    cli.env["MLFLOW_TRACKING_URI"] = url
    # no tracking.uri override: the configured local store is the default, and the variable must win
    done = cli("data=tiny", "trainer=smoke", "run_id=team-1", f"paths.artifacts={cli.artifacts}", store=False)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"open {url}/#/experiments/" in done.stdout
    assert not (cli.root / "mlruns").exists()  # the variable won over the configured local store
    assert RunPaths(cli.artifacts, "team-1").metrics_json.is_file()  # the local copy is kept as well

    client = mlflow.MlflowClient(url)
    experiment = client.get_experiment_by_name("splineforecast")
    assert experiment is not None
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # the server holds the files
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = 'team-1'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "team-1"
    assert {"mae", "rmse", "mase", "naive/mae", "seasonal_naive/mae", "val/loss", "train/loss"} <= set(run.data.metrics)
    assert run.data.params["model.name"] == "lstm"

    listed = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "report.md", "processed", "preprocessor", "checkpoints", "config"} <= listed
    assert {a.path for a in client.list_artifacts(run.info.run_id, "processed")} >= {
        "processed/processed.npz",
        "processed/meta.json",
        "processed/split_contract.json",
    }
    download = cli.root / "download"
    download.mkdir()
    local = client.download_artifacts(run.info.run_id, "metrics.json", str(download))
    metrics = json.loads(Path(local).read_text())
    assert metrics["run_id"] == "team-1"
    assert metrics["metrics"]["mae"] == pytest.approx(run.data.metrics["mae"])
    assert [p.name for p in served_artifacts.rglob("metrics.json")] == ["metrics.json"]  # on the server's disk
