"""Sweeps that lose nothing: parallel joblib jobs on one fresh sqlite store, and an Optuna search.

Every job of a sweep must be its own FINISHED MLflow run, tagged with its sweep and nested under one
parent run per sweep. A failed job prints its payload once, wherever it ran, and its exit code reaches
the sweep's (the first failed job's, by job number), also when the job ran in a joblib worker process;
a failed Optuna trial counts as failed and the search goes on.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
from pathlib import Path

import mlflow
import pytest
import yaml
from conftest import Cli

from splineforecast import files, tracking
from splineforecast.tracking import PARENT_RUN_TAG, SWEEP_DIR_TAG, SWEEP_PARENT_TAG, SWEEP_TAG

JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
FAST = ["data=tiny", "trainer=smoke"]


def _sweep(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m splineforecast -m ARGS`` in ``root`` with its store and artifacts under ``root``."""
    return Cli(root)("-m", *args, timeout=300)


def _payloads(stderr: str) -> list[dict]:
    """The JSON failure lines on stderr."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith('{"ok": false')]


def _client(root: Path) -> tuple[mlflow.MlflowClient, str]:
    client = mlflow.MlflowClient(f"sqlite:///{root}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("splineforecast")
    assert experiment is not None
    return client, experiment.experiment_id


def _jobs(root: Path, sweep_dir: Path) -> list[mlflow.entities.Run]:
    client, experiment_id = _client(root)
    return client.search_runs([experiment_id], filter_string=f"tags.`{SWEEP_TAG}` = '{sweep_dir}'")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the module; its store does not exist until the first sweep creates it."""
    return tmp_path_factory.mktemp("sweeps")


@pytest.mark.slow
def test_parallel_joblib_sweep_on_a_fresh_store_records_every_job_and_a_failed_one_reaches_the_exit_code(
    root: Path,
) -> None:
    """Jobs 0 and 1 train at once in two workers on a new store; jobs 2 and 3 fail in the same workers."""
    assert not (root / "mlruns").exists()  # the parallel jobs race to create and migrate it
    sweep_dir = root / "multirun" / "grid"
    grid = ["data.lookback=8,300", "model=lstm,gru", *FAST]  # jobs (8, lstm) (8, gru) (300, lstm) (300, gru)
    done = _sweep(root, *grid, *JOBLIB, f"hydra.sweep.dir={sweep_dir}")

    assert done.returncode == 26, done.stderr[-4000:]  # job 2's: the first failed job's code
    assert "database is locked" not in done.stderr
    assert "already exists" not in done.stderr
    assert "Traceback" not in done.stderr
    payloads = _payloads(done.stderr)  # each once, though it crossed a process boundary
    assert [p["error"]["code"] for p in payloads] == ["INSUFFICIENT_DATA_ERROR"] * 2, done.stderr[-3000:]
    assert all("lookback" in p["error"]["message"] for p in payloads)
    assert done.stdout.count("MLflow run id:") == 2

    runs = _jobs(root, sweep_dir)  # the failed jobs wrote no run
    assert len(runs) == 2
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.tags["splineforecast.job"] for r in runs) == ["0", "1"]
    combos = {(r.data.params["model.name"], r.data.params["data.lookback"]) for r in runs}
    assert combos == {("lstm", "8"), ("gru", "8")}
    assert len({r.data.tags[tracking.RUN_ID_TAG] for r in runs}) == 2
    for run in runs:
        assert {"mae", "rmse", "val/loss", "naive/mae"} <= set(run.data.metrics)

    # one parent run for the sweep, holding both jobs
    parents = {r.data.tags.get(PARENT_RUN_TAG, "") for r in runs}
    assert len(parents) == 1 and "" not in parents
    client, experiment_id = _client(root)
    parent = client.get_run(parents.pop())
    assert parent.data.tags[SWEEP_DIR_TAG] == str(sweep_dir)
    assert SWEEP_PARENT_TAG in parent.data.tags and SWEEP_TAG not in parent.data.tags
    assert parent.info.status == "FINISHED"
    assert parent.info.end_time >= max(r.info.end_time for r in runs)
    everything = client.search_runs([experiment_id])
    assert len(everything) == 3  # the two jobs and their parent, nothing twice


@pytest.mark.slow
def test_optuna_search_writes_the_best_and_a_failed_trial_counts_failed_and_the_search_goes_on(root: Path) -> None:
    sweep_dir = root / "multirun" / "optuna"
    # dropout 1.0 is refused (25) before training; with the sampler's seed, trials 0 and 2 draw 0.0, 1 draws 1.0
    space = ["model.dropout=choice(0.0,1.0)", "hydra.sweeper.n_trials=3"]
    done = _sweep(root, "hparams_search=optuna", *space, *FAST, f"hydra.sweep.dir={sweep_dir}")

    assert done.returncode == 0, done.stderr[-4000:]  # the search found its best trial
    drawn = [yaml.safe_load((sweep_dir / str(n) / ".hydra" / "overrides.yaml").read_text()) for n in range(3)]
    dropouts = [next(o for o in overrides if o.startswith("model.dropout=")) for overrides in drawn]
    assert dropouts == ["model.dropout=0.0", "model.dropout=1.0", "model.dropout=0.0"]
    payloads = _payloads(done.stderr)
    assert [(p["exit_code"], "model.dropout" in p["error"]["message"]) for p in payloads] == [(25, True)]
    runs = _jobs(root, sweep_dir)  # the failed trial wrote no run
    assert len(runs) == 2
    assert {(r.info.status, r.data.params["model.dropout"]) for r in runs} == {("FINISHED", "0.0")}
    assert len({r.data.tags[PARENT_RUN_TAG] for r in runs}) == 1

    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna"
    space_keys = {"model.hidden_size", "model.num_layers", "model.lr", "model.dropout"}
    assert set(results["best_params"]) == space_keys and results["best_params"]["model.dropout"] == 0.0
    # the objective is the trial's best val/loss: the best trial's run holds that value
    client, _ = _client(root)
    best_val = [min(m.value for m in client.get_metric_history(r.info.run_id, "val/loss")) for r in runs]
    assert results["best_value"] == pytest.approx(min(best_val), rel=1e-6)
    best_run = runs[best_val.index(min(best_val))]
    assert best_run.data.params["model.hidden_size"] == str(results["best_params"]["model.hidden_size"])
    assert best_run.data.params["model.num_layers"] == str(results["best_params"]["model.num_layers"])


def test_failed_joblib_jobs_reach_the_exit_code(tmp_path: Path) -> None:
    """Jobs in worker processes fail before training; the sweep exits with job 0's code, not 0."""
    missing = tmp_path / "missing.csv"
    sweep_dir = tmp_path / "multirun"
    # job 0: a negative learning rate (25, CONFIG_ERROR); job 1: a data file that is not there (21)
    done = _sweep(tmp_path, "model.lr=-1,0.001", f"data.path={missing}", *JOBLIB, f"hydra.sweep.dir={sweep_dir}")

    payloads = _payloads(done.stderr)
    assert sorted((p["exit_code"], p["error"]["code"]) for p in payloads) == [
        (21, "FILE_NOT_FOUND"),
        (25, "CONFIG_ERROR"),
    ], done.stderr[-3000:]
    assert done.returncode == 25
    assert "Traceback" not in done.stderr


def test_in_process_sweep_exits_with_the_first_failed_jobs_code(tmp_path: Path) -> None:
    """The basic launcher, jobs in order: job 0 (21) fails before job 1 (25), so 21: the first, not the highest."""
    missing = tmp_path / "missing.csv"
    done = _sweep(tmp_path, f"data.path={missing}", "model.lr=0.001,-1", f"hydra.sweep.dir={tmp_path / 'multirun'}")

    assert [p["exit_code"] for p in _payloads(done.stderr)] == [21, 25], done.stderr[-3000:]
    assert done.returncode == 21
    assert "Traceback" not in done.stderr


def test_an_optuna_search_without_a_finished_trial_fails(tmp_path: Path) -> None:
    """Every trial fails (each prints its line); the search then has no best trial and exits 24."""
    missing = tmp_path / "missing.csv"
    sweep_dir = tmp_path / "multirun"
    done = _sweep(
        tmp_path,
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        f"data.path={missing}",
        f"hydra.sweep.dir={sweep_dir}",
    )

    payloads = _payloads(done.stderr)
    assert [p["exit_code"] for p in payloads] == [21, 21, 24], done.stderr[-3000:]
    assert "No trials are completed" in payloads[-1]["error"]["message"]
    assert done.returncode == 24
    assert not (sweep_dir / "optimization_results.yaml").exists()


def test_store_calls_retry_while_sqlite_is_locked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracking.time, "sleep", lambda _: None)
    calls: list[int] = []

    def flaky(value: int) -> int:
        calls.append(value)
        if len(calls) < 3:
            try:
                raise sqlite3.OperationalError("database is locked")
            except sqlite3.OperationalError as exc:  # wrapped, as SQLAlchemy and MLflow wrap it
                raise RuntimeError("(sqlite3.OperationalError) store call failed") from exc
        return value * 2

    assert tracking._retry(flaky, 21) == 42
    assert calls == [21, 21, 21]

    def broken() -> None:
        calls.append(0)
        raise ValueError("no such table: experiments")

    calls.clear()
    with pytest.raises(ValueError):
        tracking._retry(broken)
    assert calls == [0]  # anything but a lock fails at once

    def always_locked() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("database is locked")

    calls.clear()
    with pytest.raises(sqlite3.OperationalError):
        tracking._retry(always_locked)
    assert len(calls) == tracking._RETRIES


def test_store_calls_retry_when_a_concurrent_run_inserted_the_same_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sweep jobs logging the same data set at once: MLflow looks the dataset up, then inserts it, so the
    slower insert fails on the table's unique key; the repeat finds the row and links it."""
    monkeypatch.setattr(tracking.time, "sleep", lambda _: None)
    calls: list[int] = []

    def raced() -> str:
        calls.append(1)
        if len(calls) == 1:
            try:
                raise sqlite3.IntegrityError("UNIQUE constraint failed: datasets.experiment_id, datasets.name")
            except sqlite3.IntegrityError as exc:  # wrapped, as SQLAlchemy and MLflow wrap it
                raise RuntimeError("(sqlite3.IntegrityError) INSERT INTO datasets failed") from exc
        return "linked"

    assert tracking._retry(raced) == "linked" and calls == [1, 1]

    def other_unique() -> None:
        calls.append(2)
        raise sqlite3.IntegrityError("UNIQUE constraint failed: runs.run_uuid")

    calls.clear()
    with pytest.raises(sqlite3.IntegrityError):
        tracking._retry(other_unique)
    assert calls == [2]  # another table's unique key is a real error, at once


def test_store_lock_serialises_holders(tmp_path: Path) -> None:
    """The lock beside a sqlite store admits one holder at a time, across threads as across processes."""
    lock = tracking._store_lock(f"sqlite:///{tmp_path}/deep/mlflow.db")
    assert lock == tmp_path / "deep" / "mlflow.db.lock"
    assert tracking._store_lock("http://127.0.0.1:5000") is None
    assert tracking._store_lock("sqlite:///:memory:") is None
    inside: list[int] = []
    overlaps: list[int] = []
    held: list[int] = []
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with files.file_lock(lock):
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(1)
                threading.Event().wait(0.05)
                inside.pop()
                held.append(1)
        except BaseException as exc:  # noqa: BLE001 - a thread's error would otherwise pass unseen
            errors.append(exc)

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(held) == 4
    assert not overlaps
