"""trainer=ddp: Lightning DDP with two CPU processes (gloo); one MLflow run, written by rank zero."""

from __future__ import annotations

import json

import pytest
from conftest import Cli
from mlflow import MlflowClient


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_logs_one_run_from_rank_zero(seeded: Cli) -> None:
    cli = seeded
    done = cli("data=tiny", "trainer=ddp", "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "run_id=ddp")
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(cli.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("splineforecast").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "ddp"
    assert run.data.params["trainer.strategy"] == "ddp_spawn" and run.data.params["trainer.devices"] == "2"
    # one writer: each epoch's val/loss once, not once per process
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == [0, 1]
    result = json.loads((cli.artifacts / "metrics" / "ddp" / "metrics.json").read_text())
    assert result["training"]["epochs"] == 2 and result["training"]["best_val_loss"] > 0
    assert (cli.artifacts / "checkpoints" / "ddp" / "best.ckpt").is_file()
