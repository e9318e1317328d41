"""Sweeps through Hydra's submitit launcher: `submitit_local` runs each job as its own process,
the way `submitit_slurm` runs it as a SLURM job, so the path to a cluster is exercised here."""

from __future__ import annotations

import json

import pytest
from conftest import Cli
from mlflow import MlflowClient


@pytest.mark.slow
def test_submitit_local_sweep_records_every_job(seeded: Cli) -> None:
    cli = seeded  # the jobs' race on a new store: tests/test_sweeps.py
    done = cli("-m", "hydra/launcher=submitit_local", "data=tiny", "trainer=smoke", "model=lstm,gru")
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(cli.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("splineforecast").experiment_id])
    jobs = [r for r in runs if "splineforecast.sweep" in r.data.tags]
    assert sorted(r.data.params["model.name"] for r in jobs) == ["gru", "lstm"]
    assert all(r.info.status == "FINISHED" for r in jobs)
    assert len({r.data.tags["splineforecast.sweep"] for r in jobs}) == 1
    assert len({r.data.tags["mlflow.parentRunId"] for r in jobs}) == 1  # nested under one sweep run


@pytest.mark.slow
def test_a_failed_submitit_job_reaches_the_sweep_exit_code(cli: Cli) -> None:
    """Each job is its own process: its payload lands in its submitit log, its code in the sweep's exit code."""
    sweep_dir = cli.root / "multirun"
    # job 0: a negative learning rate (25); job 1: a data file that is not there (21); both fail before training
    done = cli(
        "-m",
        "hydra/launcher=submitit_local",
        "model.lr=-1,0.001",
        "data.path=missing.csv",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert done.returncode == 25, done.stderr[-3000:]
    logs = sorted((sweep_dir / ".submitit").glob("*/*_log.err"))
    assert len(logs) == 2
    payloads = [json.loads(line) for log in logs for line in log.read_text().splitlines() if line.startswith("{")]
    assert sorted(p["exit_code"] for p in payloads) == [21, 25]
