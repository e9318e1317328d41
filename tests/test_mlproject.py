"""`mlflow run` on the project's MLproject: MLflow starts the run, splineforecast fills it."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import Cli
from mlflow import MlflowClient

from splineforecast.artifacts import RunPaths

MLPROJECT = Path(__file__).resolve().parents[1] / "MLproject"


@pytest.mark.slow
def test_mlflow_run_with_overrides(cli: Cli) -> None:
    project = cli.root / "project"
    project.mkdir()
    shutil.copy(MLPROJECT, project / "MLproject")
    bin_dir = Path(sys.executable).parent
    env = {
        "MLFLOW_TRACKING_URI": cli.tracking_uri,  # `mlflow run` takes its store from the environment
        "PATH": f"{bin_dir}{os.pathsep}{cli.env.get('PATH', '')}",  # `python` = this venv's
    }
    overrides = f"model=gru data=tiny trainer=smoke paths.artifacts={cli.artifacts}"
    argv = [str(bin_dir / "mlflow"), "run", str(project), "--env-manager", "local", "-P", f"overrides={overrides}"]
    done = cli.run(argv, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(cli.tracking_uri)
    (run,) = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "gru" and run.data.params["data.name"] == "tiny"
    assert run.data.tags["splineforecast.run_id"] == run.info.run_name  # adopted and named by splineforecast
    assert "mae" in run.data.metrics
    # the overrides reached the command: its files are under the artifact root it was given
    metrics = json.loads(RunPaths(cli.artifacts, run.info.run_name).metrics_json.read_text())
    assert metrics["metrics"]["mae"] == pytest.approx(run.data.metrics["mae"])
