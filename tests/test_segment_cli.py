"""``python -m splineforecast model.segment=4 model.decoder=parallel`` end to end on data=tiny: killed with
SIGKILL after an epoch, the re-run (in this process, as ``run_here`` runs the command) resumes into weights
equal to a straight run's, the checkpoint carries the settings, and the logged pyfunc model forecasts with them."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import Cli, run_here

from splineforecast import serving
from splineforecast.artifacts import RunPaths

pytestmark = pytest.mark.slow

SEGMENTED = ["model.segment=4", "model.decoder=parallel"]
# batches of 8: an epoch is long enough to be seen before the next; no early stop, so runs compare
TRAIN = ["data=tiny", "data.batch_size=8", "trainer.max_epochs=2", "trainer.patience=100", *SEGMENTED]
TINY_CSV = Path(str(resources.files("splineforecast") / "datasets" / "co2_tiny.csv"))


def _load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _kill_after_epoch_0(cli: Cli, run_id: str) -> int:
    """Start the run and SIGKILL it once last.ckpt holds a finished epoch; the epoch it holds."""
    proc = cli.start(*TRAIN, f"run_id={run_id}", "trainer.enable_progress_bar=false")
    last = RunPaths(cli.artifacts, run_id).last_ckpt
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, ("the run ended before it was killed", proc.communicate())
        if last.is_file():
            proc.kill()
            proc.communicate()
            return int(_load(last)["epoch"])
        time.sleep(0.02)
    raise AssertionError("no last.ckpt within 120 s")


def test_a_segmented_run_resumes_after_kill_9_exactly_and_serves_through_its_pyfunc_model(
    seeded: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = seeded
    straight = run_here(cli, monkeypatch, *TRAIN, "run_id=straight")
    epoch = _kill_after_epoch_0(cli, "killed")
    assert epoch == 0
    capsys.readouterr()
    run_here(cli, monkeypatch, *TRAIN, "run_id=killed")
    assert "resuming run_id killed" in capsys.readouterr().out

    paths = {r: RunPaths(cli.artifacts, r) for r in ("straight", "killed")}
    for name in ("last_ckpt", "best_ckpt"):
        a, b = (_load(getattr(paths[r], name)) for r in ("straight", "killed"))
        assert a["hyper_parameters"]["model"]["segment"] == 4
        assert a["hyper_parameters"]["model"]["decoder"] == "parallel"
        assert a["state_dict"].keys() == b["state_dict"].keys() and "net.position" in a["state_dict"]
        for key in a["state_dict"]:
            torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key], rtol=1e-5, atol=1e-6)

    import mlflow

    mlflow.set_tracking_uri(cli.tracking_uri)
    model = mlflow.pyfunc.load_model(f"runs:/{straight.mlflow_run_id}/model")
    net = model.unwrap_python_model().forecaster.net
    assert (net.segment, net.decoder, net.n_out) == (4, "parallel", 1)
    history = pd.read_csv(TINY_CSV, dtype=str).iloc[:300]
    served = model.predict(history)
    assert len(served) == 4 and np.isfinite(served["co2"]).all()
    assert served["co2"].between(310, 330).all(), served  # ppmv, in 1963
    run = paths["straight"]
    direct = serving.load_forecaster(run.preprocessor_json, run.best_ckpt, run.read_serving())
    pd.testing.assert_frame_equal(served, direct.predict(history))
