"""Serving: a trained run's preprocessor and checkpoint -> a forecast from recent history.

``forecast`` is the recipe (validate, fill and scale, one network call, inverse-scale);
``Forecaster`` holds what it needs, loaded from the run's files; ``log_model`` records it as an
MLflow pyfunc model under ``model`` with MLflow's "models from code" (``pyfunc_model.py``), so
the logged model holds JSON, a weights-only checkpoint and source code: nothing is unpickled.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pickle  # only for its error type: checkpoints load with weights_only
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from splineforecast import __version__, artifacts
from splineforecast.artifacts import RunPaths
from splineforecast.data import io, schema
from splineforecast.data.covariates import check_static
from splineforecast.data.preprocess import Preprocessor
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.models.factory import build_network
from splineforecast.windows import DataSpec

if TYPE_CHECKING:
    from splineforecast.config import DataConfig
    from splineforecast.tracking import Tracker

SETTINGS_FORMAT = "splineforecast.serving.v1"
MODEL_ARTIFACT_PATH = "model"
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def _contract(message: str) -> ContractError:
    return ContractError(ErrorCode.ARTIFACT_CONTRACT_ERROR, message)


def load_network(path: Path) -> tuple[nn.Module, DataSpec]:
    """Rebuild the network of a Lightning checkpoint on the CPU (GPU-saved tensors included).

    The checkpoint loads with ``weights_only=True``: ``hyper_parameters`` holds the plain model
    config and DataSpec dicts, ``state_dict`` the module's tensors under ``net.``.

    Raises:
        ContractError: FILE_NOT_FOUND for a missing file; ARTIFACT_CONTRACT_ERROR for a file
            that is not such a checkpoint.
    """
    if not path.is_file():
        raise ContractError(ErrorCode.FILE_NOT_FOUND, f"checkpoint `{path}` does not exist", "FileNotFoundError")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        hp = ckpt["hyper_parameters"]
        spec = DataSpec(**{**hp["spec"], "target_indices": tuple(hp["spec"]["target_indices"])})
        net = build_network(hp["model"], spec)
        state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
        net.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise _contract(
            f"checkpoint `{path}` is not a splineforecast checkpoint ({type(exc).__name__}: {exc}); "
            "re-run stage=train for this run_id"
        ) from exc
    return net.eval(), spec


def _window(
    history: pd.DataFrame, pre: Preprocessor, lookback: int, time_column: str, time_format: str | None
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Checked history -> (grid timestamps, scaled values) of the whole history on the freq grid."""
    if not isinstance(history, pd.DataFrame):
        raise ContractError(
            ErrorCode.DATA_SCHEMA_ERROR, f"history must be a table (DataFrame), got {type(history).__name__}"
        )
    names = [pre.target, *(c["name"] for c in pre.covariates)]
    missing = [c for c in [time_column, *names] if c not in history.columns]
    if missing:
        raise ContractError(
            ErrorCode.DATA_SCHEMA_ERROR,
            f"history lacks column(s) {missing}; the model needs {[time_column, *names]}, "
            f"the history has {list(history.columns)}",
        )
    numeric = [c["name"] for c in pre.covariates if c["type"] == "numeric"]
    raw = history[[time_column, *names]].reset_index(drop=True)
    frame, _, _ = schema.validate(raw, time_column, pre.target, pre.freq, numeric, time_format)
    check_static(frame, [c["name"] for c in pre.covariates if c["role"] == "static"])
    if len(frame) < lookback:
        raise ContractError(
            ErrorCode.INSUFFICIENT_DATA_ERROR,
            f"history spans {len(frame)} steps of freq {pre.freq} ({frame.index[0]} .. {frame.index[-1]}) "
            f"but the model reads lookback {lookback}; supply at least {lookback} steps",
        )
    return frame.index, pre.transform(frame).values


def forecast(
    history: pd.DataFrame,
    preprocessor: Preprocessor,
    net: nn.Module,
    lookback: int,
    horizon: int,
    time_column: str,
    time_format: str | None = None,
) -> pd.DataFrame:
    """Forecast ``horizon`` steps after the end of ``history``.

    Args:
        history: the time column, the target and the run's covariate columns (cells as text or
            numbers; gaps as empty cells or missing steps). Other columns are ignored.
        preprocessor: the run's fitted preprocessor (its freq is the time grid).
        net: the trained network, reading (batch, lookback, n_features).
        lookback, horizon: the network's window lengths.
        time_column: the name of the timestamp column.
        time_format: strftime format of the timestamps; None means ISO 8601.

    Returns:
        ``horizon`` rows: ``time_column`` (the next steps of the grid), ``step`` (1..horizon)
        and the forecast in original units, named after the target.

    Raises:
        ContractError: DATA_SCHEMA_ERROR (28) for a missing column or bad cells;
            INSUFFICIENT_DATA_ERROR (26) for a history shorter than ``lookback`` or a window
            that still holds a gap longer than ``spline.max_gap``.
    """
    index, values = _window(history, preprocessor, lookback, time_column, time_format)
    window = values[-lookback:]  # (lookback, n_features)
    gaps = np.isnan(window).any(axis=1)
    if gaps.any():
        stamps = index[-lookback:][gaps]
        raise ContractError(
            ErrorCode.INSUFFICIENT_DATA_ERROR,
            f"the last {lookback} steps of the history still hold {int(gaps.sum())} unfilled step(s) "
            f"({stamps[0]} .. {stamps[-1]}): a gap longer than spline.max_gap "
            f"({preprocessor.spline['max_gap']}) is not filled; supply those observations",
        )
    net.eval()  # dropout off: the same history gives the same forecast
    with torch.no_grad():
        out = net(torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))[None])  # (1, horizon, n_targets)
    if tuple(out.shape[1:]) != (horizon, 1):
        raise _contract(f"the network forecasts shape {tuple(out.shape[1:])}, expected horizon {horizon} x 1 target")
    values_out = preprocessor.inverse_target(out[0, :, 0].numpy().astype(np.float64))
    future = pd.date_range(index[-1], periods=horizon + 1, freq=preprocessor.freq)[1:]
    return pd.DataFrame({time_column: future, "step": np.arange(1, horizon + 1), preprocessor.target: values_out})


@dataclass
class Forecaster:
    """A trained run's preprocessor and network with the settings ``forecast`` needs."""

    preprocessor: Preprocessor
    net: nn.Module
    lookback: int
    horizon: int
    time_column: str
    time_format: str | None = None

    def predict(self, history: pd.DataFrame) -> pd.DataFrame:
        """The forecast after ``history`` (see :func:`forecast`)."""
        return forecast(
            history, self.preprocessor, self.net, self.lookback, self.horizon, self.time_column, self.time_format
        )


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ContractError(ErrorCode.FILE_NOT_FOUND, f"{what} `{path}` does not exist", "FileNotFoundError")
    return artifacts.read_json_artifact(path, what)


def load_forecaster(preprocessor_json: Path, checkpoint: Path, settings: dict[str, Any]) -> Forecaster:
    """Load a run's preprocessor and network; check they agree with ``settings``.

    Args:
        settings: ``time_column`` (and optionally ``time_format``, ``target``, ``lookback``,
            ``horizon``, which must match the artifacts).

    Raises:
        ContractError: FILE_NOT_FOUND, or ARTIFACT_CONTRACT_ERROR when the artifacts disagree.
    """
    pre = Preprocessor.from_json(_read_json(preprocessor_json, "preprocessor"))
    net, spec = load_network(checkpoint)
    found = {"target": pre.target, "lookback": spec.lookback, "horizon": spec.horizon}
    differ = {k: (settings[k], v) for k, v in found.items() if k in settings and settings[k] != v}
    if len(pre.feature_names) != spec.n_features:
        differ["n_features"] = (len(pre.feature_names), spec.n_features)
    if differ:
        raise _contract(f"serving settings, preprocessor and checkpoint disagree (given, found): {differ}")
    return Forecaster(pre, net, spec.lookback, spec.horizon, settings["time_column"], settings.get("time_format"))


def load_run_forecaster(paths: RunPaths, time_column: str, time_format: str | None = None) -> Forecaster:
    """The Forecaster of a trained run from its local files (``preprocessor.json``, ``best.ckpt``)."""
    settings = {"time_column": time_column, "time_format": time_format}
    return load_forecaster(paths.preprocessor_json, paths.checkpoints_dir / "best.ckpt", settings)


def write_forecast(paths: RunPaths, data: DataConfig, output: str | None = None) -> list[Path]:
    """stage=predict: forecast after the history file ``data.path`` with the run's model; write CSVs.

    The history is read as ``data.*`` describes it (path, delimiter, time column and format);
    the window lengths, target, covariates and freq are the run's own.

    Returns:
        The files written: ``<artifacts>/predictions/<run_id>/forecast.csv``, and ``output`` when given.
    """
    source = io.resolve_path(data.path, data.bundled)
    model = load_run_forecaster(paths, data.time_column, data.time_format)
    frame = model.predict(io.read_csv(source, data.delimiter))
    text = frame.to_csv(index=False).encode()
    written = [paths.root / "predictions" / paths.run_id / "forecast.csv"]
    if output:
        written.append(Path(output).expanduser())
    for path in written:
        artifacts.write_bytes(path, text)
    return written


def _settings(paths: RunPaths) -> dict[str, Any]:
    """What the pyfunc model needs besides the preprocessor and checkpoint, from the run's files."""
    import yaml

    pre = Preprocessor.from_json(_read_json(paths.preprocessor_json, "preprocessor"))
    _, spec = load_network(paths.checkpoints_dir / "best.ckpt")
    config_yaml = paths.config_dir / "config.yaml"
    data = (yaml.safe_load(config_yaml.read_text(encoding="utf-8")) or {}).get("data", {})
    return {
        "format": SETTINGS_FORMAT,
        "version": __version__,
        "run_id": paths.run_id,
        "target": pre.target,
        "covariates": pre.covariates,
        "freq": pre.freq,
        "time_column": data.get("time_column", "date"),
        "time_format": data.get("time_format"),
        "lookback": spec.lookback,
        "horizon": spec.horizon,
    }


def pip_requirements() -> list[str]:
    """The runtime requirements of the served model: this package and its own dependencies."""
    try:
        requires = importlib.metadata.requires("splineforecast") or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    runtime = [r for r in requires if "extra ==" not in r]
    return [f"splineforecast=={__version__}", *runtime]


@contextmanager
def _fluent_run(uri: str, mlflow_run_id: str) -> Iterator[None]:
    """Make ``mlflow_run_id`` on ``uri`` MLflow's active run for a fluent call, then restore.

    ``mlflow.set_tracking_uri`` also sets ``MLFLOW_TRACKING_URI`` in the environment (which
    then wins over every later configured URI), so the variable is put back as it was.
    """
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", _PROGRESS_BAR)}
    os.environ[_PROGRESS_BAR] = "false"  # MLflow copies the artifacts with a progress bar each
    try:
        with _use_tracking_uri(uri), mlflow.start_run(run_id=mlflow_run_id, nested=True):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def log_model(tracker: Tracker, paths: RunPaths) -> str:
    """Log the run's pyfunc model under ``model`` (models from code: no pickle of our objects).

    ``mlflow.pyfunc.load_model("runs:/<id>/model").predict(history)`` then returns the forecast
    frame of :func:`forecast`.

    Returns:
        The model URI (``models:/<model_id>``).
    """
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    settings = _settings(paths)
    # no input schema: the history's columns and cell types vary (text or numbers, gaps), and
    # `forecast` checks them; the output schema documents the forecast frame
    outputs = Schema(
        [ColSpec("datetime", settings["time_column"]), ColSpec("long", "step"), ColSpec("double", settings["target"])]
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings_json = Path(tmp) / "serving.json"
        settings_json.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        files = {
            "preprocessor": str(paths.preprocessor_json),
            "checkpoint": str(paths.checkpoints_dir / "best.ckpt"),
            "settings": str(settings_json),
        }
        with _fluent_run(tracker.uri, tracker.mlflow_run_id), warnings.catch_warnings():
            # the history differs per call (length, gaps), so there is no one input example
            warnings.filterwarnings("ignore", message=".*An input example was not provided")
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT_PATH,
                python_model=str(PYFUNC_CODE),
                artifacts=files,
                pip_requirements=pip_requirements(),
                signature=ModelSignature(inputs=None, outputs=outputs),
            )
    return str(info.model_uri)
