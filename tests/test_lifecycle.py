"""Run lifecycle with real processes and real signals: resume after kill -9 (after a plateau too) and
after Ctrl-C mid-epoch, SIGTERM, a non-finite loss, a run_id held by a live process, resume equivalence.

Each test's folder starts with a migrated, empty tracking store (``seeded``). The straight runs a resumed
run must equal, the refusals and the non-finite loss run in this process (``run_here``); the signals,
kills and resumes are real ``python -m splineforecast`` processes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import Cli, run_here
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from splineforecast.artifacts import RunPaths
from splineforecast.errors import ContractError, ErrorCode

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
        time.sleep(0.01)  # an epoch of data=tiny can take a fraction of a second
    raise AssertionError("no plateau epoch within 240 s")


def _refused(cli: Cli, mp: pytest.MonkeyPatch, *overrides: str) -> str:
    """The RUN_CONFLICT message (exit 29) of a run of ``overrides`` in this process."""
    with pytest.raises(ContractError) as err:
        run_here(cli, mp, *overrides)
    assert err.value.code is ErrorCode.RUN_CONFLICT and err.value.exit_code == 29
    return err.value.message


def test_kill_9_after_a_plateau_resumes_into_one_run_equal_to_a_straight_run(
    seeded: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = seeded
    run_here(cli, monkeypatch, *TRAIN, *PLATEAU, "run_id=straight")
    # the last checkpoint is the last epoch even when it did not improve, and the count says so
    assert _epoch(_paths(cli, "straight").last_ckpt) == EPOCHS - 1
    assert _epoch(_paths(cli, "straight").best_ckpt) < EPOCHS - 1
    assert _training(cli, "straight")["training"]["epochs"] == EPOCHS

    proc = cli.start(*TRAIN, *PLATEAU, "run_id=killed")
    last, best = _kill_9_on_a_plateau(cli, proc, "killed", min_epoch=2)
    assert best < last < EPOCHS - 1

    # a changed config does not resume the killed run (and the refusal leaves it resumable)
    message = _refused(cli, monkeypatch, *TRAIN, *PLATEAU, "run_id=killed", "model.hidden_size=16")
    assert "model.hidden_size" in message and "'64' -> '16'" in message

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


def _assert_interrupted(cli: Cli, run_id: str, stderr: str, code: int) -> dict[str, Any]:
    """The run stopped by a signal: the INTERRUPTED payload with ``code``, last.ckpt resumable, KILLED."""
    payload = _payload(stderr)
    assert payload["exit_code"] == code and payload["error"]["code"] == "INTERRUPTED"
    state = _load(_paths(cli, run_id).last_ckpt)
    assert state["state_dict"] and "optimizer_states" in state
    assert _runs(cli)[run_id].info.status == "KILLED"
    return state


def test_ctrl_c_mid_epoch_resumes_at_the_next_batch_equal_to_a_straight_run(
    seeded: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, settings = seeded, [*TRAIN, *MID_EPOCH]
    run_here(cli, monkeypatch, *settings, "run_id=straight")
    per_epoch = _load(_paths(cli, "straight").last_ckpt)["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    batches = per_epoch["current"]["completed"]

    proc = cli.start(*settings, "run_id=ctrlc")
    _wait(proc, lambda: _logged(cli, "ctrlc") >= 0, "epoch 0 logged")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    state = _assert_interrupted(cli, "ctrlc", stderr, 130)
    fit_loop = state["loops"]["fit_loop"]
    trained = fit_loop["epoch_loop.batch_progress"]["current"]["processed"]
    assert state["epoch"] == 1 and 0 < trained < batches  # stopped inside epoch 1
    # the loader's place: the epoch and the indices handed out, batch by batch
    assert fit_loop["state_dict"]["combined_loader"] == [{"epoch": 1, "drawn": trained * 2}]

    again = cli(*settings, "run_id=ctrlc")
    assert again.returncode == 0, again.stderr
    assert "not resumable" not in again.stderr
    assert _runs(cli)["ctrlc"].info.status == "FINISHED"
    assert sorted(_steps(cli, "ctrlc")) == [0, 1]
    # the resumed epoch trained the remaining batches in the straight run's order
    _assert_same_weights(cli, "straight", "ctrlc")


def test_sigterm_saves_last_ckpt_and_marks_the_run_killed_and_a_held_run_id_is_refused(
    seeded: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = seeded
    proc = cli.start(*TRAIN, "run_id=sig")
    _wait_for_epoch(proc, _paths(cli, "sig").last_ckpt, 0)
    proc.send_signal(signal.SIGSTOP)  # alive and holding the run_id, but not training on meanwhile
    try:
        message = _refused(cli, monkeypatch, *TRAIN, "run_id=sig")
        assert f"in use by process {proc.pid}" in message
    finally:
        proc.send_signal(signal.SIGTERM)  # delivered when it continues
        proc.send_signal(signal.SIGCONT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    _assert_interrupted(cli, "sig", stderr, 143)
    # and the same command resumes it to the end
    again = cli(*TRAIN, "run_id=sig")
    assert again.returncode == 0, again.stderr
    assert _runs(cli)["sig"].info.status == "FINISHED"


def test_non_finite_loss_exits_24_and_keeps_no_checkpoint(seeded: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli = seeded  # in this process: the error's payload and exit code on the command line, tests/test_exit_codes.py
    with pytest.raises(ContractError) as err:
        run_here(cli, monkeypatch, *TRAIN, "run_id=nan", "model.lr=1e30")
    assert err.value.code is ErrorCode.RUNNER_EXEC_ERROR and err.value.exit_code == 24
    assert "loss became" in err.value.message
    # the first step's update makes the second loss non-finite: the run stops in epoch 0, before any
    # validation end, so no checkpoint (and so no non-finite weights) was ever written
    assert "at epoch 0, step 1" in err.value.message
    paths = _paths(cli, "nan")
    assert not paths.best_ckpt.exists() and not paths.last_ckpt.exists()
    assert _runs(cli)["nan"].info.status == "FAILED"
