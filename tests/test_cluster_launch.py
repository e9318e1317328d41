"""Sweeps through Hydra's submitit launcher: `submitit_local` runs each job as its own process,
the way `submitit_slurm` runs it as a SLURM job, so the path to a cluster is exercised here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient


@pytest.mark.slow
def test_submitit_local_sweep_records_every_job(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    args = ["-m", "hydra/launcher=submitit_local", "data=tiny", "trainer=smoke", "model=lstm,gru"]
    done = subprocess.run(
        [sys.executable, "-m", "splineforecast", *args, f"tracking.uri={uri}", f"paths.artifacts={tmp_path}/a"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("splineforecast").experiment_id])
    jobs = [r for r in runs if "splineforecast.sweep" in r.data.tags]
    assert sorted(r.data.params["model.name"] for r in jobs) == ["gru", "lstm"]
    assert all(r.info.status == "FINISHED" for r in jobs)
    assert len({r.data.tags["splineforecast.sweep"] for r in jobs}) == 1
    assert len({r.data.tags["mlflow.parentRunId"] for r in jobs}) == 1  # nested under one sweep run
