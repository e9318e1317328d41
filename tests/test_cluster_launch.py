"""Sweeps through Hydra's submitit launcher: `submitit_local` runs each job as its own process,
the way `submitit_slurm` runs it as a SLURM job, so the path to a cluster is exercised here."""

from __future__ import annotations

import pytest
from conftest import Cli
from mlflow import MlflowClient


@pytest.mark.slow
def test_submitit_local_sweep_records_every_job(cli: Cli) -> None:
    done = cli("-m", "hydra/launcher=submitit_local", "data=tiny", "trainer=smoke", "model=lstm,gru")
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(cli.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("splineforecast").experiment_id])
    jobs = [r for r in runs if "splineforecast.sweep" in r.data.tags]
    assert sorted(r.data.params["model.name"] for r in jobs) == ["gru", "lstm"]
    assert all(r.info.status == "FINISHED" for r in jobs)
    assert len({r.data.tags["splineforecast.sweep"] for r in jobs}) == 1
    assert len({r.data.tags["mlflow.parentRunId"] for r in jobs}) == 1  # nested under one sweep run
