"""Run lifecycle with real processes and real signals: resume after kill -9, Ctrl-C, SIGTERM,
a non-finite loss, a run_id held by a live process, and resume equivalence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

EPOCHS = 6
# enough epochs to interrupt, and no early stop, so runs are comparable epoch by epoch
TRAIN = ["data=tiny", "trainer.enable_progress_bar=false", f"trainer.max_epochs={EPOCHS}", "trainer.patience=100"]


def _command(root: Path, run_id: str, *extra: str) -> list[str]:
    store = [f"tracking.uri=sqlite:///{root}/mlruns/mlflow.db", f"paths.artifacts={root}/artifacts"]
    return [sys.executable, "-m", "splineforecast", *TRAIN, *store, f"run_id={run_id}", *extra]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}


def _run(root: Path, run_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(root, run_id, *extra), cwd=root, env=_env(), capture_output=True, text=True, timeout=600
    )


def _start(root: Path, run_id: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _command(root, run_id, *extra),
        cwd=root,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _last(root: Path, run_id: str) -> Path:
    return root / "artifacts" / "checkpoints" / run_id / "last.ckpt"


def _wait_for_epoch(proc: subprocess.Popen[str], last: Path, epoch: int, timeout: float = 240) -> None:
    """Wait until last.ckpt holds at least ``epoch`` (a finished epoch boundary)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if last.is_file():
            try:
                if torch.load(last, map_location="cpu", weights_only=True)["epoch"] >= epoch:
                    return
            except (EOFError, RuntimeError):  # never expected: writes are atomic
                raise
        time.sleep(0.2)
    raise AssertionError(f"no last.ckpt at epoch {epoch} within {timeout} s")


def _runs(root: Path) -> list:
    client = MlflowClient(f"sqlite:///{root}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("splineforecast")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def _payload(stderr: str) -> dict:
    return json.loads(stderr.strip().splitlines()[-1])


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_kill_9_then_rerun_resumes_into_one_run_equal_to_a_straight_run(tmp_path: Path) -> None:
    straight = _run(tmp_path, "straight")
    assert straight.returncode == 0, straight.stderr

    proc = _start(tmp_path, "killed")
    _wait_for_epoch(proc, _last(tmp_path, "killed"), 1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    resumed_from = torch.load(_last(tmp_path, "killed"), map_location="cpu", weights_only=True)["epoch"]
    assert resumed_from < EPOCHS - 1

    again = _run(tmp_path, "killed")
    assert again.returncode == 0, again.stderr
    assert "resuming run_id killed" in again.stdout

    runs = {r.info.run_name: r for r in _runs(tmp_path)}
    assert set(runs) == {"straight", "killed"}  # one MLflow run per run_id, the resumed one included
    assert runs["killed"].info.status == "FINISHED"
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    steps = [m.step for m in client.get_metric_history(runs["killed"].info.run_id, "val/loss")]
    assert len(steps) == len(set(steps)), steps  # no duplicate steps after resuming
    assert max(steps) == EPOCHS - 1

    # N epochs, killed at an epoch boundary, then the rest == all epochs straight (same seed, CPU)
    for name in ("last.ckpt", "best.ckpt"):
        a = _weights(tmp_path / "artifacts" / "checkpoints" / "straight" / name)
        b = _weights(tmp_path / "artifacts" / "checkpoints" / "killed" / name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=f"{name}: {key}")
    metrics = [
        json.loads((tmp_path / "artifacts" / "metrics" / r / "metrics.json").read_text())["metrics"]
        for r in ("straight", "killed")
    ]
    assert metrics[0]["mae"] == pytest.approx(metrics[1]["mae"], rel=1e-5)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_last_ckpt_and_marks_the_run_killed(tmp_path: Path, sig: int, code: int) -> None:
    proc = _start(tmp_path, "sig")
    _wait_for_epoch(proc, _last(tmp_path, "sig"), 0)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    payload = _payload(stderr)
    assert payload["exit_code"] == code and payload["error"]["code"] == "INTERRUPTED"
    state = torch.load(_last(tmp_path, "sig"), map_location="cpu", weights_only=True)
    assert state["state_dict"] and "optimizer_states" in state
    (run,) = _runs(tmp_path)
    assert run.info.status == "KILLED"
    # and the same command resumes it to the end
    again = _run(tmp_path, "sig")
    assert again.returncode == 0, again.stderr
    (run,) = _runs(tmp_path)
    assert run.info.status == "FINISHED"


def test_a_changed_config_does_not_resume(tmp_path: Path) -> None:
    proc = _start(tmp_path, "cfg")
    _wait_for_epoch(proc, _last(tmp_path, "cfg"), 0)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    changed = _run(tmp_path, "cfg", "model.hidden_size=16")
    assert changed.returncode == 29, changed.stderr
    message = _payload(changed.stderr)["error"]["message"]
    assert "model.hidden_size" in message and "'64' -> '16'" in message


def test_a_run_id_held_by_a_live_process_is_refused(tmp_path: Path) -> None:
    proc = _start(tmp_path, "held", "trainer.max_epochs=10000")  # still training when the second one starts
    try:
        _wait_for_epoch(proc, _last(tmp_path, "held"), 0)
        second = _run(tmp_path, "held", "trainer.max_epochs=10000")
        assert second.returncode == 29, second.stderr
        assert "in use by process" in _payload(second.stderr)["error"]["message"]
    finally:
        proc.kill()
        proc.communicate()


def test_non_finite_loss_exits_24_and_keeps_no_nan_weights(tmp_path: Path) -> None:
    done = _run(tmp_path, "nan", "model.lr=1e30")
    assert done.returncode == 24, done.stderr
    payload = _payload(done.stderr)
    assert payload["error"]["code"] == "RUNNER_EXEC_ERROR" and "loss became" in payload["error"]["message"]
    best = tmp_path / "artifacts" / "checkpoints" / "nan" / "best.ckpt"
    if best.exists():  # a checkpoint from before the blow-up must hold finite weights
        assert all(torch.isfinite(t).all() for t in _weights(best).values())
    (run,) = _runs(tmp_path)
    assert run.info.status == "FAILED"
