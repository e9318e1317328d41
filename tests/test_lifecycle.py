"""Run lifecycle with real processes and real signals: resume after kill -9 (after a plateau too) and
after Ctrl-C mid-epoch, SIGTERM, a non-finite loss, a run_id held by a live process, resume equivalence."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import Cli
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from splineforecast.artifacts import RunPaths

pytestmark = pytest.mark.slow

EPOCHS = 5
# enough epochs to interrupt, and no early stop, so runs are comparable epoch by epoch
TRAIN = ["data=tiny", "trainer.enable_progress_bar=false", f"trainer.max_epochs={EPOCHS}", "trainer.patience=100"]
# with this learning rate val/loss improves at epochs 0 and 1 only: epochs 2-4 are a plateau, where
# last.ckpt must run ahead of best.ckpt (the test checks that it does)
PLATEAU = ["model.lr=0.03"]
# batches of 2 and two val batches: an epoch is ~110 short train steps, so a signal sent just after
# an epoch's metrics were logged lands inside the next epoch's training
MID_EPOCH = ["data.batch_size=2", "trainer.limit_val_batches=2", "trainer.max_epochs=2"]


def _paths(cli: Cli, run_id: str) -> RunPaths:
    return RunPaths(cli.artifacts, run_id)


def _load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _epoch(path: Path) -> int:
    """The epoch a checkpoint was saved in, or -1 before the first one."""
    return int(_load(path)["epoch"]) if path.is_file() else -1


def _runs(cli: Cli) -> dict[str, Any]:
    client = MlflowClient(cli.tracking_uri)
    experiment = client.get_experiment_by_name("splineforecast")
    return {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])} if experiment else {}


def _steps(cli: Cli, run_id: str) -> list[int]:
    """The steps of the run's val/loss history, in logging order (repeats included)."""
    run = _runs(cli).get(run_id)
    if run is None:
        return []
    return [m.step for m in MlflowClient(cli.tracking_uri).get_metric_history(run.info.run_id, "val/loss")]


def _logged(cli: Cli, run_id: str) -> int:
    """The last epoch whose val/loss reached MLflow; -1 before any (or while the store is mid-write)."""
    try:
        return max(_steps(cli, run_id), default=-1)
    except MlflowException:  # the store was locked by the training process: ask again later
        return -1


def _wait(proc: subprocess.Popen[str], ready: Any, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, (what, proc.communicate())
        if ready():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def _wait_for_epoch(proc: subprocess.Popen[str], last: Path, epoch: int) -> None:
    """Wait until last.ckpt holds at least ``epoch`` (a finished epoch); writes are atomic."""
    _wait(proc, lambda: _epoch(last) >= epoch, f"last.ckpt at epoch {epoch}")


def _payload(stderr: str) -> dict[str, Any]:
    return json.loads(stderr.strip().splitlines()[-1])


def _assert_same_weights(cli: Cli, a: str, b: str) -> None:
    for name in ("last_ckpt", "best_ckpt"):
        x = _load(getattr(_paths(cli, a), name))["state_dict"]
        y = _load(getattr(_paths(cli, b), name))["state_dict"]
        assert x.keys() == y.keys()
        for key in x:
            torch.testing.assert_close(x[key], y[key], rtol=1e-5, atol=1e-6, msg=f"{name}: {key}")


def _training(cli: Cli, run_id: str) -> dict[str, Any]:
    return json.loads(_paths(cli, run_id).metrics_json.read_text())


def _kill_9_on_a_plateau(cli: Cli, proc: subprocess.Popen[str], run_id: str, min_epoch: int) -> tuple[int, int]:
    """kill -9 once last.ckpt holds a non-improving epoch >= ``min_epoch`` whose metrics were logged.

    The process is frozen (SIGSTOP) while the files are read, so what is read is what the kill leaves.

    Returns:
        The epochs of last.ckpt and best.ckpt at the kill.
    """
    paths = _paths(cli, run_id)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, ("the run ended without a plateau epoch", proc.communicate())
        if _epoch(paths.last_ckpt) >= min_epoch:
            proc.send_signal(signal.SIGSTOP)
            last, best = _epoch(paths.last_ckpt), _epoch(paths.best_ckpt)
            if last > best and _logged(cli, run_id) == last:
                proc.kill()
                proc.communicate()
                return last, best
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("no plateau epoch within 240 s")


def test_kill_9_after_a_plateau_resumes_into_one_run_equal_to_a_straight_run(cli: Cli) -> None:
    straight = cli(*TRAIN, *PLATEAU, "run_id=straight")
    assert straight.returncode == 0, straight.stderr
    # the last checkpoint is the last epoch even when it did not improve, and the count says so
    assert _epoch(_paths(cli, "straight").last_ckpt) == EPOCHS - 1
    assert _epoch(_paths(cli, "straight").best_ckpt) < EPOCHS - 1
    assert _training(cli, "straight")["training"]["epochs"] == EPOCHS

    proc = cli.start(*TRAIN, *PLATEAU, "run_id=killed")
    last, best = _kill_9_on_a_plateau(cli, proc, "killed", min_epoch=2)
    assert best < last < EPOCHS - 1

    again = cli(*TRAIN, *PLATEAU, "run_id=killed")
    assert again.returncode == 0, again.stderr
    assert "resuming run_id killed" in again.stdout

    runs = _runs(cli)
    assert set(runs) == {"straight", "killed"}  # one MLflow run per run_id, the resumed one included
    assert runs["killed"].info.status == "FINISHED"
    # every epoch logged once: none re-run after resuming, none lost
    assert sorted(_steps(cli, "killed")) == list(range(EPOCHS))

    # N epochs, killed at an epoch boundary, then the rest == all epochs straight (same seed, CPU)
    _assert_same_weights(cli, "straight", "killed")
    trained = [_training(cli, r) for r in ("straight", "killed")]
    assert trained[1]["training"]["epochs"] == EPOCHS
    assert trained[0]["metrics"]["mae"] == pytest.approx(trained[1]["metrics"]["mae"], rel=1e-5)


def test_ctrl_c_mid_epoch_resumes_at_the_next_batch_equal_to_a_straight_run(cli: Cli) -> None:
    settings = [*TRAIN, *MID_EPOCH]
    straight = cli(*settings, "run_id=straight")
    assert straight.returncode == 0, straight.stderr
    per_epoch = _load(_paths(cli, "straight").last_ckpt)["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    batches = per_epoch["current"]["completed"]

    proc = cli.start(*settings, "run_id=ctrlc")
    _wait(proc, lambda: _logged(cli, "ctrlc") >= 0, "epoch 0 logged")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    state = _load(_paths(cli, "ctrlc").last_ckpt)
    fit_loop = state["loops"]["fit_loop"]
    trained = fit_loop["epoch_loop.batch_progress"]["current"]["processed"]
    assert state["epoch"] == 1 and 0 < trained < batches  # stopped inside epoch 1
    # the loader's place: the epoch and the indices handed out, batch by batch
    assert fit_loop["state_dict"]["combined_loader"] == [{"epoch": 1, "drawn": trained * 2}]

    again = cli(*settings, "run_id=ctrlc")
    assert again.returncode == 0, again.stderr
    assert "not resumable" not in again.stderr
    assert sorted(_steps(cli, "ctrlc")) == [0, 1]
    # the resumed epoch trained the remaining batches in the straight run's order
    _assert_same_weights(cli, "straight", "ctrlc")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_last_ckpt_and_marks_the_run_killed(cli: Cli, sig: int, code: int) -> None:
    proc = cli.start(*TRAIN, "run_id=sig")
    _wait_for_epoch(proc, _paths(cli, "sig").last_ckpt, 0)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    payload = _payload(stderr)
    assert payload["exit_code"] == code and payload["error"]["code"] == "INTERRUPTED"
    state = _load(_paths(cli, "sig").last_ckpt)
    assert state["state_dict"] and "optimizer_states" in state
    assert _runs(cli)["sig"].info.status == "KILLED"
    # and the same command resumes it to the end
    again = cli(*TRAIN, "run_id=sig")
    assert again.returncode == 0, again.stderr
    assert _runs(cli)["sig"].info.status == "FINISHED"


def test_a_changed_config_does_not_resume(cli: Cli) -> None:
    proc = cli.start(*TRAIN, "run_id=cfg")
    _wait_for_epoch(proc, _paths(cli, "cfg").last_ckpt, 0)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    changed = cli(*TRAIN, "run_id=cfg", "model.hidden_size=16")
    assert changed.returncode == 29, changed.stderr
    message = _payload(changed.stderr)["error"]["message"]
    assert "model.hidden_size" in message and "'64' -> '16'" in message


def test_a_run_id_held_by_a_live_process_is_refused(cli: Cli) -> None:
    # still training when the second one starts
    proc = cli.start(*TRAIN, "run_id=held", "trainer.max_epochs=10000")
    try:
        _wait_for_epoch(proc, _paths(cli, "held").last_ckpt, 0)
        second = cli(*TRAIN, "run_id=held", "trainer.max_epochs=10000")
        assert second.returncode == 29, second.stderr
        assert "in use by process" in _payload(second.stderr)["error"]["message"]
    finally:
        proc.kill()
        proc.communicate()


def test_non_finite_loss_exits_24_and_keeps_no_checkpoint(cli: Cli) -> None:
    done = cli(*TRAIN, "run_id=nan", "model.lr=1e30")
    assert done.returncode == 24, done.stderr
    error = _payload(done.stderr)["error"]
    assert error["code"] == "RUNNER_EXEC_ERROR" and "loss became" in error["message"]
    # the first step's update makes the second loss non-finite: the run stops in epoch 0, before any
    # validation end, so no checkpoint (and so no non-finite weights) was ever written
    assert "at epoch 0, step 1" in error["message"]
    paths = _paths(cli, "nan")
    assert not paths.best_ckpt.exists() and not paths.last_ckpt.exists()
    assert _runs(cli)["nan"].info.status == "FAILED"
