"""The only module that imports mlflow: one MLflow run per run_id, its params, metrics, files and model.

Parallel jobs (``hydra/launcher=joblib``) share one store safely: a fresh sqlite store is created and
migrated by one process under a file lock beside the database, store calls are retried while sqlite
reports "database is locked", and the jobs of a sweep are nested under one parent run per sweep folder.

A tracking server that does not answer is :class:`StoreUnreachable` (exit 24, naming its URI). Metrics
logged while it is away are kept and sent later (when the stage is marked done at the latest), so training
goes on and writes its local files; the run fails at its next other call, and a rerun continues the same run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunStatus

from splineforecast.artifacts import RunPaths
from splineforecast.config import sqlite_path, tracking_uri
from splineforecast.errors import ContractError, ErrorCode, Interrupted
from splineforecast.files import file_lock
from splineforecast.lineage import CONTEXT_TAG, DatasetRecord, model_signature, pip_requirements, source_tags
from splineforecast.store_calls import RETRIES as _RETRIES  # noqa: F401 - read here by tests
from splineforecast.store_calls import RetryingClient, StoreUnreachable
from splineforecast.store_calls import retry as _retry  # noqa: F401 - called here by tests

if TYPE_CHECKING:
    import pandas as pd

RUN_ID_TAG = "splineforecast.run_id"
STAGES_TAG = "splineforecast.stages_done"
STAGE_PARTS = {
    "all": {"preprocess", "train"},
    "preprocess": {"preprocess"},
    "train": {"train"},
    "backtest": {"backtest"},
}
BACKTEST_TAG = "splineforecast.backtest"  # on a fold's run: the run_id of its backtest (the parent run)
FOLD_TAG = "splineforecast.fold"  # on a fold's run: its number, 0 for the earliest origin
SWEEP_TAG = "splineforecast.sweep"
SWEEP_PARENT_TAG = "splineforecast.sweep_parent"  # on a sweep's parent run: a hash of the sweep folder
SWEEP_DIR_TAG = "splineforecast.sweep_dir"  # on a sweep's parent run: the sweep folder (jobs carry SWEEP_TAG)
PARENT_RUN_TAG = "mlflow.parentRunId"  # the MLflow UI nests a run under this one
REGISTERED_TAG = "splineforecast.registered_model"  # NAME/VERSION of the run's model in the registry
_PARAM_LIMIT = 6000  # MLflow's longest param value
_AWAY_S = 60.0  # after a server did not answer, metrics are only kept (not sent) for this long
_T = TypeVar("_T")
MODEL_ARTIFACT_PATH = "model"
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")  # the model's code, logged with it


def resolve_uri(configured: str) -> str:
    """The tracking URI: ``MLFLOW_TRACKING_URI`` when set, else the configured one.

    For a local sqlite store the folder of the database file is created.
    """
    uri = tracking_uri(configured)
    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return uri


def _lock(path: Path | None) -> AbstractContextManager[Any]:
    """An exclusive file lock on ``path``; nothing to hold for None."""
    return nullcontext() if path is None else file_lock(path)


def _store_lock(uri: str) -> Path | None:
    """The lock file of a sqlite store (``mlflow.db.lock`` beside ``mlflow.db``), else None."""
    db = sqlite_path(uri)
    return db.with_name(db.name + ".lock") if db is not None else None


def _artifact_root(uri: str) -> str | None:
    """Artifacts of a local sqlite store live beside its database, wherever the command runs."""
    db = sqlite_path(uri)
    return None if db is None else (db.parent / "artifacts").absolute().as_uri()  # else a server decides


def ui_command(uri: str) -> str:
    """The shell command that opens the MLflow UI on this store."""
    if uri.startswith("http"):
        return f"open {uri}"
    return f"{sys.executable} -m mlflow ui --backend-store-uri {uri}"  # works without activating the venv


class Tracker:
    """One MLflow run per run_id: found by its ``splineforecast.run_id`` tag, or created.

    Args:
        uri: tracking URI.
        experiment: experiment name (created when missing).
        run_id: our run_id; the MLflow run name and the ``splineforecast.run_id`` tag.
        tags: extra tags for a new run.
    """

    def __init__(self, uri: str, experiment: str, run_id: str, tags: dict[str, str] | None = None) -> None:
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        self.uri, self.run_id, self.tags = uri, run_id, {**source_tags(), **(tags or {})}
        self.example: pd.DataFrame | None = None  # the model's input example (log_inputs)
        # one process at a time creates or migrates a sqlite store and creates the experiment:
        # parallel jobs on a fresh store would otherwise race ("table already exists", "database is locked")
        with _lock(_store_lock(uri)):
            self.client = cast(MlflowClient, RetryingClient(MlflowClient(tracking_uri=uri), uri))
            found = self.client.get_experiment_by_name(experiment)
            self.experiment_id = (
                found.experiment_id if found else self.client.create_experiment(experiment, _artifact_root(uri))
            )
        self.mlflow_run_id = ""
        self.parent_run_id = ""  # the sweep's parent run, when this run is a job of a sweep
        self._unsent: list[Metric] = []  # metrics logged while the server did not answer
        self._away_until = 0.0  # time.monotonic() before which they are only kept

    def _existing(self) -> Run | None:
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{self.run_id}'", max_results=1
        )
        return runs[0] if runs else None

    def recorded(self) -> tuple[str, set[str]] | None:
        """The MLflow run id of this run_id's run and the stages it finished; None before it exists."""
        run = self._existing()
        if run is None:
            return None
        return run.info.run_id, set(filter(None, run.data.tags.get(STAGES_TAG, "").split(",")))

    def claim(self, stage: str, overwrite: bool, params: dict[str, str]) -> None:
        """Open the run for ``stage``: create it, or reopen one whose earlier stage is done.

        Raises:
            ContractError: RUN_CONFLICT when the stage already ran for this run_id (and
                ``overwrite`` is false), or when the config differs from the run's params.
        """
        wanted = STAGE_PARTS[stage]
        run = self._existing()
        if run is not None:
            done = set(filter(None, run.data.tags.get(STAGES_TAG, "").split(",")))
            if overwrite:
                self.client.delete_run(run.info.run_id)
                run = None
            elif done & wanted:
                raise ContractError(
                    ErrorCode.RUN_CONFLICT,
                    f"run_id `{self.run_id}` already ran {sorted(done & wanted)}; choose another run_id "
                    "or pass overwrite=true to replace it",
                )
        if run is None and os.environ.get("MLFLOW_RUN_ID"):  # started by `mlflow run`: adopt its run
            self._adopt(os.environ["MLFLOW_RUN_ID"], params)
            return
        if run is None:
            self._create(params)
        else:
            self._reopen(run, params)

    def _create(self, params: dict[str, str]) -> None:
        tags = {RUN_ID_TAG: self.run_id, **self.tags}
        if self.tags.get(SWEEP_TAG):
            self.parent_run_id = self._sweep_parent(self.tags[SWEEP_TAG])
            tags[PARENT_RUN_TAG] = self.parent_run_id
        self.mlflow_run_id = self.client.create_run(self.experiment_id, run_name=self.run_id, tags=tags).info.run_id
        self.log_params(params)

    def _reopen(self, run: Run, params: dict[str, str]) -> None:
        """Continue ``run`` (its earlier stage, or an unfinished training), refusing another config."""
        changed = sorted(k for k, v in params.items() if k in run.data.params and run.data.params[k] != v)
        if changed:
            diff = ", ".join(f"{k}: {run.data.params[k]!r} -> {params[k]!r}" for k in changed)
            raise ContractError(
                ErrorCode.RUN_CONFLICT,
                f"run_id `{self.run_id}` was recorded with another config ({diff}); "
                "use the same config, another run_id, or overwrite=true",
            )
        self.mlflow_run_id = run.info.run_id
        self.client.update_run(self.mlflow_run_id, status="RUNNING")
        self.log_params({k: v for k, v in params.items() if k not in run.data.params})

    def _sweep_parent(self, sweep: str) -> str:
        """The parent run of the sweep in folder ``sweep``: found by its key, or created once.

        The lookup and creation happen under a file lock (beside a sqlite store, else in the sweep
        folder), so parallel jobs of one sweep agree on a single parent.
        """
        key = hashlib.sha256(sweep.encode()).hexdigest()[:32]
        lock = _store_lock(self.uri)
        if lock is None and Path(sweep).is_dir():
            lock = Path(sweep) / ".mlflow-parent.lock"
        with _lock(lock):
            found = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{SWEEP_PARENT_TAG}` = '{key}'",
                max_results=1,
                order_by=["attributes.start_time ASC"],
            )
            if found:
                return found[0].info.run_id
            name = "sweep-" + "-".join(Path(sweep).parts[-2:])
            note = f"Hydra sweep `{sweep}`: its jobs are the runs nested under this one."
            tags = {SWEEP_PARENT_TAG: key, SWEEP_DIR_TAG: sweep, "mlflow.note.content": note}
            return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def _adopt(self, mlflow_run_id: str, params: dict[str, str]) -> None:
        run = self.client.get_run(mlflow_run_id)
        self.mlflow_run_id, self.experiment_id = mlflow_run_id, run.info.experiment_id
        self.log_tags({RUN_ID_TAG: self.run_id, "mlflow.runName": self.run_id, **self.tags})
        self.log_params({k: v for k, v in params.items() if k not in run.data.params})

    def mark_done(self, stage: str) -> None:
        self._send_unsent()
        run = self.client.get_run(self.mlflow_run_id)
        done = set(filter(None, run.data.tags.get(STAGES_TAG, "").split(","))) | STAGE_PARTS[stage]
        self.client.set_tag(self.mlflow_run_id, STAGES_TAG, ",".join(sorted(done)))

    @property
    def ui_url(self) -> str:
        base = self.uri.rstrip("/") if self.uri.startswith("http") else "http://127.0.0.1:5000"
        return f"{base}/#/experiments/{self.experiment_id}/runs/{self.mlflow_run_id}"

    def log_params(self, params: dict[str, Any]) -> None:
        items = [Param(k, str(v)[:_PARAM_LIMIT]) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.mlflow_run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        """Log ``metrics``; while the server does not answer, keep them for a later call (training goes on)."""
        now = int(time.time() * 1000)
        self._unsent += [Metric(k, float(v), now, step) for k, v in metrics.items()]
        if time.monotonic() < self._away_until:
            return
        try:
            self._send_unsent()
        except StoreUnreachable as exc:
            self._away_until = time.monotonic() + _AWAY_S
            print(f"warning: {exc.message.split(';')[0]}; keeping the run's metrics to log later", file=sys.stderr)

    def _send_unsent(self) -> None:
        while self._unsent:
            self.client.log_batch(self.mlflow_run_id, metrics=self._unsent[:500])
            del self._unsent[:500]

    def log_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.mlflow_run_id, key, value)

    def log_artifacts(self, local: Path, artifact_path: str | None = None) -> None:
        """Log a folder's contents (or one file) under ``artifact_path``."""
        if local.is_dir():
            self.client.log_artifacts(self.mlflow_run_id, str(local), artifact_path)
        else:
            self.client.log_artifact(self.mlflow_run_id, str(local), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        """End the run; a sweep's parent run ends with it (FINISHED, at the latest job's end)."""
        if status == "FINISHED":
            self._send_unsent()
        self.client.set_terminated(self.mlflow_run_id, status=status)
        if self.parent_run_id:
            self.client.set_terminated(self.parent_run_id, status="FINISHED")


@contextmanager
def tracked_run(tracker: Tracker) -> Iterator[Tracker]:
    """End the run FINISHED on success, KILLED on an interrupt, FAILED on an exception (re-raised).

    A server that did not answer is not asked again: the run stays open there, for a rerun to continue.
    """
    try:
        yield tracker
    except StoreUnreachable:
        raise
    except (Interrupted, KeyboardInterrupt):
        tracker.end(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        tracker.end(RunStatus.to_string(RunStatus.FAILED))
        raise
    tracker.end("FINISHED")


def log_inputs(tracker: Tracker, records: list[DatasetRecord], example: pd.DataFrame | None = None) -> None:
    """Log the run's datasets (each once: a resumed run logs none twice), and keep the model's input example."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    if example is not None:
        tracker.example = example
    run = tracker.client.get_run(tracker.mlflow_run_id)
    logged = {(d.dataset.name, d.dataset.digest) for d in (run.inputs.dataset_inputs if run.inputs else [])}
    new = [r for r in records if (r.name, r.digest) not in logged]
    if new:
        inputs = [DatasetInput(Dataset(**r.fields()), [InputTag(CONTEXT_TAG, r.context)]) for r in new]
        tracker.client.log_inputs(tracker.mlflow_run_id, datasets=inputs)


def log_model(tracker: Tracker, paths: RunPaths) -> str:
    """Log the run's pyfunc model as the run artifact ``model`` (models from code: nothing is pickled).

    Saved by ``mlflow.pyfunc.save_model`` from ``pyfunc_model.py``, the preprocessor, best checkpoint and
    serving.json, with :func:`lineage.model_signature` and the input example :func:`log_inputs` kept:
    ``mlflow.pyfunc.load_model("runs:/<id>/model").predict(history)`` is :func:`splineforecast.serving.forecast`.

    Returns:
        The model URI (``runs:/<MLflow run id>/model``).
    """
    import mlflow.pyfunc
    from mlflow.models import ModelSignature

    # MLflow copies each model file with a progress bar unless told otherwise (a user's setting wins)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = paths.read_serving()
    files = {"preprocessor": paths.preprocessor_json, "checkpoint": paths.best_ckpt, "settings": paths.serving_json}
    if paths.calibration_json.is_file():
        files["calibration"] = paths.calibration_json
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*An input example was not provided")  # stage=train, covariates
        saved = Path(tmp) / MODEL_ARTIFACT_PATH
        mlflow.pyfunc.save_model(
            saved,
            python_model=str(PYFUNC_CODE),
            artifacts={k: str(v) for k, v in files.items()},
            pip_requirements=pip_requirements(),
            signature=ModelSignature.from_dict(model_signature(settings)),
            input_example=tracker.example,
        )
        tracker.log_artifacts(saved, MODEL_ARTIFACT_PATH)
    return f"runs:/{tracker.mlflow_run_id}/{MODEL_ARTIFACT_PATH}"


def register_model(tracker: Tracker, name: str, alias: str | None) -> str:
    """Register the run's model as a version of ``name`` (once: a resumed run finds its version), point ``alias``
    at it, return the version; a backtest's fold registers nothing. A registry's refusal is RUNNER_EXEC_ERROR."""
    from mlflow.exceptions import MlflowException

    if tracker.tags.get(BACKTEST_TAG):
        return ""
    client, run_id = tracker.client, tracker.mlflow_run_id
    try:
        try:
            client.create_registered_model(name)
        except MlflowException as exc:  # registered by an earlier run, or by a parallel job of its sweep
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        source = f"{client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT_PATH}"
        version = found[0].version if found else client.create_model_version(name, source, run_id).version
        if alias:
            client.set_registered_model_alias(name, alias, str(version))
    except MlflowException as exc:
        raise ContractError(
            ErrorCode.RUNNER_EXEC_ERROR,
            f"registering the model of run_id {tracker.run_id} as `{name}` in {tracker.uri} failed: {exc.message}; "
            "the model registry needs a database-backed store (sqlite:///...) or an MLflow server",
            type(exc).__name__,
        ) from exc
    tracker.log_tags({REGISTERED_TAG: f"{name}/{version}"})
    return str(version)
