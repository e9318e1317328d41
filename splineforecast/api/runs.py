"""Runs for the API: their status and metrics from the tracking store, their files from the artifact root.

Every path is built from a run_id that passed :func:`splineforecast.artifacts.check_run_id` and is
checked to stay under the artifact root.
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from splineforecast.artifacts import RunPaths, check_run_id
from splineforecast.config import sqlite_path

_MAX_ARTIFACTS = 500
MAX_MODELS = 8  # loaded forecasters kept by RunStore.forecaster
MAX_TEST_ROWS = 20_000  # of test_forecast.csv in a run's answer: its first rows (a big panel: its first series)
_TEXT_COLUMN = "timestamp"  # test_forecast.csv: the time; a panel's series column comes before it
_LISTED_PARAMS = {"model.name": "model", "data.name": "dataset"}  # the params a run's summary names
_log = logging.getLogger(__name__)


def under_root(root: Path, path: Path) -> Path:
    """``path`` resolved, if it lies under ``root``; else ValueError (no path escapes the root)."""
    resolved, base = path.resolve(), root.resolve()
    if not resolved.is_relative_to(base):
        raise ValueError("path outside the artifact root")
    return resolved


class RunStore:
    """Reads runs from an MLflow store (through ``splineforecast.tracking``) and the local artifact root."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path) -> None:
        self.uri, self.experiment, self.root = tracking_uri, experiment, artifact_root
        self._opening = threading.Lock()  # one thread opens the store (seconds, the first time); the rest wait
        self._client: Any = None  # made once, on first use
        self._experiment_id: str | None = None  # looked up until the experiment exists (its first run makes it)
        self._models: OrderedDict[str, tuple[tuple[int, int], Any]] = OrderedDict()  # run_id -> (ckpt key, model)
        self._models_lock = threading.Lock()

    def _open(self) -> tuple[Any, str | None]:
        """The store's client and the experiment's id (None before its first run); both kept once found."""
        if self._client is not None and self._experiment_id is not None:
            return self._client, self._experiment_id
        with self._opening:
            if self._client is None:
                from splineforecast import tracking  # mlflow loads on first use (or in warm), not at import

                self._client = tracking.MlflowClient(tracking_uri=self.uri)
            if self._experiment_id is None:
                found = self._client.get_experiment_by_name(self.experiment)
                self._experiment_id = None if found is None else str(found.experiment_id)
            return self._client, self._experiment_id

    @staticmethod
    def _summary(run: Any) -> dict[str, Any]:
        from splineforecast.tracking import RUN_ID_TAG

        return {
            "run_id": run.data.tags.get(RUN_ID_TAG),
            "mlflow_run_id": run.info.run_id,
            "status": run.info.status,
            "start_time": run.info.start_time,
            "end_time": run.info.end_time,
            "metrics": dict(run.data.metrics),
            "model": run.data.params.get("model.name"),
            "dataset": run.data.params.get("data.name"),
        }

    def list_runs(self, limit: int = 100) -> list[dict[str, Any]]:
        """The ``limit`` newest runs that carry a run_id, as summaries (status, times, metrics, model, data set)."""
        client, experiment_id = self._open()
        if experiment_id is None:
            return []
        from splineforecast import tracking_sql
        from splineforecast.tracking import RUN_ID_TAG

        sql_store = tracking_sql.sql_store(client)
        if sql_store is not None:
            return tracking_sql.run_summaries(sql_store, int(experiment_id), limit, RUN_ID_TAG, _LISTED_PARAMS)

        runs = client.search_runs([experiment_id], max_results=limit, order_by=["attributes.start_time DESC"])
        return [self._summary(r) for r in runs if RUN_ID_TAG in r.data.tags]

    def warm(self) -> None:
        """The one-time work of a first request, done before the server listens (the app's lifespan): loads
        MLflow and opens the store (a first listing), and imports what a first forecast runs (torch and the
        serving modules), so that no request waits for them and no import stalls the health answers.

        A sqlite store not made yet is left to the first run to make. A store that cannot be read now, or a
        forecasting import that fails, is only logged: each request reports its own error.
        """
        db = sqlite_path(self.uri)
        try:
            if db is not None and not db.is_file():
                from splineforecast import tracking  # noqa: F401 - loads mlflow
            else:
                self.list_runs(1)
        except Exception:  # noqa: BLE001 - the warm-up must never stop the server
            _log.warning("could not open the tracking store %s ahead of the first request", self.uri, exc_info=True)
        try:
            import_forecasting()
        except Exception:  # noqa: BLE001 - nor may a broken install: a forecast then reports it
            _log.warning("could not import the forecasting modules ahead of the first forecast", exc_info=True)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A run's params, metrics, artifact list and report; None when no run has that run_id."""
        from splineforecast.tracking import RUN_ID_TAG

        check_run_id(run_id)  # a safe name holds no quote, so it cannot change the filter below
        client, experiment_id = self._open()
        if experiment_id is None:
            return None
        found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'", max_results=1)
        if not found:
            return None
        run = found[0]
        return {
            **self._summary(run),
            "params": dict(run.data.params),
            "artifacts": artifact_list(client, run.info.run_id, run.info.artifact_uri),
            "report": self.report(run_id),
            "evaluation": self.evaluation(run_id),
            "test_forecast": self.test_forecast(run_id),
        }

    def paths(self, run_id: str) -> RunPaths:
        return RunPaths(self.root, check_run_id(run_id))

    def report(self, run_id: str) -> str | None:
        path = under_root(self.root, self.paths(run_id).report_md)
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None

    def evaluation(self, run_id: str) -> dict[str, Any] | None:
        """The run's metrics.json (scores per horizon step, windows, training), or None before training."""
        paths = self.paths(run_id)
        if not under_root(self.root, paths.metrics_json).is_file():
            return None
        return paths.read_eval().to_json()

    def test_forecast(self, run_id: str) -> dict[str, Any] | None:
        """The run's test_forecast.csv as ``columns`` and ``rows`` (at most MAX_TEST_ROWS; ``truncated`` says
        when more were left off); a panel's ``series_column``; None for a run without the file."""
        path = under_root(self.root, self.paths(run_id).test_forecast_csv)
        if not path.is_file():
            return None
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f)
            columns = next(reader, [])
            read = list(itertools.islice(reader, MAX_TEST_ROWS + 1))
        text = columns.index(_TEXT_COLUMN) + 1 if _TEXT_COLUMN in columns else 1  # the leading text columns
        rows = [[*r[:text], *map(_number, r[text : len(columns)])] for r in read[:MAX_TEST_ROWS]]
        return {
            "columns": columns,
            "series_column": columns[0] if text > 1 else None,
            "rows": rows,
            "truncated": len(read) > MAX_TEST_ROWS,
        }

    def forecaster(self, run_id: str) -> Any:
        """The run's Forecaster, kept for the next call (the MAX_MODELS used last) while its best.ckpt keeps
        its modification time and size; a retrained run's model is loaded again."""
        from splineforecast.serving import load_run_forecaster

        paths = self.paths(run_id)
        stat = under_root(self.root, paths.best_ckpt).stat()
        key = (stat.st_mtime_ns, stat.st_size)
        with self._models_lock:
            kept = self._models.get(run_id)
            if kept is not None and kept[0] == key:
                self._models.move_to_end(run_id)
                return kept[1]
        model = load_run_forecaster(paths)  # outside the lock: another run's forecast need not wait for this load
        with self._models_lock:
            self._models[run_id] = (key, model)
            self._models.move_to_end(run_id)
            while len(self._models) > MAX_MODELS:
                self._models.popitem(last=False)
        return model

    def trained(self, run_id: str) -> bool:
        paths = self.paths(run_id)
        return (
            under_root(self.root, paths.best_ckpt).is_file()
            and under_root(self.root, paths.preprocessor_json).is_file()
        )


def import_forecasting() -> None:
    """Imports what ``load_run_forecaster`` and a forecast import on first use: torch (and what it loads for
    ``torch.load``), the serving modules and the panel preprocessor. Lightning and MLflow's pyfunc are not
    among them: a run's network loads without either."""
    import torch.utils.serialization  # noqa: F401 - imported by the first torch.load

    from splineforecast import serving, serving_panel  # noqa: F401
    from splineforecast.data import panel_preprocess  # noqa: F401


def artifact_list(client: Any, mlflow_run_id: str, artifact_uri: str | None) -> list[dict[str, Any]]:
    """The files a run holds in the artifact store (``path`` relative to its root, ``size`` in bytes), sorted,
    at most _MAX_ARTIFACTS: read from the folder of a local store; else walked with ``list_artifacts``."""
    folder = local_folder(artifact_uri)
    if folder is None:
        return _listed_artifacts(client, mlflow_run_id)
    out: list[dict[str, Any]] = []
    for parent, _, names in os.walk(folder):
        for name in names:
            path = Path(parent, name)
            out.append({"path": path.relative_to(folder).as_posix(), "size": path.stat().st_size})
    return sorted(out, key=lambda a: str(a["path"]))[:_MAX_ARTIFACTS]


def local_folder(artifact_uri: str | None) -> Path | None:
    """The folder of a ``file:`` (or plain path) artifact URI that exists here; None for any other store."""
    if not artifact_uri:
        return None
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        folder = Path(url2pathname(parsed.path))
    elif parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):  # a path (a Windows drive letter)
        folder = Path(artifact_uri)
    else:
        return None
    return folder if folder.is_dir() else None


def _listed_artifacts(client: Any, mlflow_run_id: str) -> list[dict[str, Any]]:
    """The artifact list through the store's own ``list_artifacts`` (a remote artifact store)."""
    out: list[dict[str, Any]] = []
    folders: list[str | None] = [None]
    while folders and len(out) < _MAX_ARTIFACTS:
        for info in client.list_artifacts(mlflow_run_id, folders.pop()):
            if info.is_dir:
                folders.append(info.path)
            else:
                out.append({"path": info.path, "size": info.file_size})
    return sorted(out, key=lambda a: str(a["path"]))[:_MAX_ARTIFACTS]


def _number(cell: str) -> float | None:
    """A CSV cell as a finite number; None where it is empty or not one (JSON has no NaN)."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
