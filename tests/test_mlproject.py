"""`mlflow run` on the project's MLproject: MLflow starts the run, splineforecast fills it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

MLPROJECT = Path(__file__).resolve().parents[1] / "MLproject"


@pytest.mark.slow
def test_mlflow_run_with_overrides(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(MLPROJECT, project / "MLproject")
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
    env["MLFLOW_TRACKING_URI"] = uri
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `python` = this venv's
    overrides = f"model=gru data=tiny trainer=smoke paths.artifacts={tmp_path}/a"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "run",
            str(project),
            "--env-manager",
            "local",
            "-P",
            f"overrides={overrides}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(uri)
    (run,) = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "gru" and run.data.params["data.name"] == "tiny"
    assert run.data.tags["splineforecast.run_id"] == run.info.run_name  # adopted and named by splineforecast
    assert "mae" in run.data.metrics
