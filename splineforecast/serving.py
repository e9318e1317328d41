"""Inference: a trained run's preprocessor, checkpoint and serving settings -> a forecast from history.

``forecast`` is the recipe (validate, fill and scale, one network call, inverse-scale); ``Forecaster``
holds what it needs, loaded from the run's files by :func:`load_run_forecaster`, or from the files of
the pyfunc model (``pyfunc_model.py``) by :func:`load_forecaster`. Nothing here writes files or talks
to MLflow: the predict stage lives in ``pipeline.py``, model logging in ``tracking.py``.
"""

from __future__ import annotations

import dataclasses
import pickle  # only for its error type: checkpoints load with weights_only
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from splineforecast.artifacts import RunPaths, read_calibration, read_preprocessor_state
from splineforecast.data import schema
from splineforecast.data.covariates import check_static
from splineforecast.data.preprocess import Preprocessor, Transformed
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.models.factory import build_network
from splineforecast.models.networks import point_of
from splineforecast.models.spec import DataSpec
from splineforecast.records import Calibration, ServingSettings
from splineforecast.uncertainty import calibrated_levels, levels_of, quantile_columns, rolling_offsets

if TYPE_CHECKING:
    from splineforecast.data.panel_preprocess import PanelPreprocessor
    from splineforecast.serving_panel import PanelForecaster

SETTINGS_FORMAT = ServingSettings.FORMAT  # read by splineforecast 0.1.0's pyfunc code


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
    history: pd.DataFrame, pre: Preprocessor, settings: ServingSettings
) -> tuple[pd.DatetimeIndex, Transformed]:
    """Checked history -> (grid timestamps, scaled values and observed mask) of the whole history on the freq grid."""
    if not isinstance(history, pd.DataFrame):
        raise ContractError(
            ErrorCode.DATA_SCHEMA_ERROR, f"history must be a table (DataFrame), got {type(history).__name__}"
        )
    time_column, lookback = settings.time_column, settings.lookback
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
    frame, _, _ = schema.validate(raw, time_column, pre.target, pre.freq, numeric, settings.time_format)
    check_static(frame, [c["name"] for c in pre.covariates if c["role"] == "static"])
    if len(frame) < lookback:
        raise ContractError(
            ErrorCode.INSUFFICIENT_DATA_ERROR,
            f"history spans {len(frame)} steps of freq {pre.freq} ({frame.index[0]} .. {frame.index[-1]}) "
            f"but the model reads lookback {lookback}; supply at least {lookback} steps",
        )
    return frame.index, pre.transform(frame)


def forecast(
    history: pd.DataFrame,
    preprocessor: Preprocessor,
    net: nn.Module,
    settings: ServingSettings,
    calibration: Calibration | None = None,
) -> pd.DataFrame:
    """Forecast ``settings.horizon`` steps after the end of ``history``.

    Args:
        history: the time column, the target and the run's covariate columns (cells as text or
            numbers; gaps as empty cells or missing steps). Other columns are ignored.
        preprocessor: the run's fitted preprocessor (its freq is the time grid).
        net: the trained network, reading (batch, lookback, n_features).
        settings: the window lengths, and the time column and its format (None: ISO 8601).
        calibration: the run's conformal offsets (calibration.json), when it has them.

    Returns:
        ``horizon`` rows: the time column (the next grid steps), ``step`` (1..horizon), the target, and
        with ``settings.quantiles`` a column ``<target>_q<level>`` per level.

    Raises:
        ContractError: DATA_SCHEMA_ERROR (28) for a missing column or bad cells;
            INSUFFICIENT_DATA_ERROR (26) for a history shorter than the lookback or a window
            that still holds a gap longer than ``spline.max_gap``.
    """
    horizon = settings.horizon
    index, scaled = _window(history, preprocessor, settings)
    window = _last(index, scaled.values, preprocessor, settings)
    n_levels = len(settings.quantiles or [])
    offsets = recent_offsets(net, scaled, settings, calibration) if n_levels and calibration else None
    out, levels = run_network(net, window[None], horizon, n_levels=n_levels, calibration=calibration, offsets=offsets)
    values_out = preprocessor.inverse_target(out[0])
    future = pd.date_range(index[-1], periods=horizon + 1, freq=preprocessor.freq)[1:]
    frame = pd.DataFrame(
        {settings.time_column: future, "step": np.arange(1, horizon + 1), preprocessor.target: values_out}
    )
    if levels is not None:
        bands = preprocessor.inverse_target(levels[0])
        names = quantile_columns(preprocessor.target, settings.quantiles or [])
        frame = frame.assign(**{name: bands[:, k] for k, name in enumerate(names)})
    return frame


def last_window(
    history: pd.DataFrame, preprocessor: Preprocessor, settings: ServingSettings
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """The grid timestamps of ``history`` and its last ``lookback`` scaled steps (lookback, n_features)."""
    index, scaled = _window(history, preprocessor, settings)
    return index, _last(index, scaled.values, preprocessor, settings)


def _last(
    index: pd.DatetimeIndex, values: np.ndarray, preprocessor: Preprocessor, settings: ServingSettings
) -> np.ndarray:
    """The last ``lookback`` scaled steps; INSUFFICIENT_DATA_ERROR while they hold an unfilled gap."""
    lookback = settings.lookback
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
    return window


def recent_offsets(
    net: nn.Module, scaled: Transformed, settings: ServingSettings, calibration: Calibration
) -> np.ndarray | None:
    """A rolling calibration's offsets (1, horizon, n_levels) for the forecast after the history: fitted on
    the history's last ``calibration.window`` whole windows (lookback and horizon inside it, the input
    filled, the target observed); None for a fixed calibration or a history without one such window (the
    stored offsets then apply)."""
    lookback, horizon, window = settings.lookback, settings.horizon, calibration.window
    last_start = len(scaled.values) - lookback - horizon
    if not window or last_start < 0:
        return None
    starts = np.arange(max(0, last_start - window + 1), last_start + 1)
    inputs = np.stack([scaled.values[j : j + lookback] for j in starts])
    filled = ~np.isnan(inputs).any(axis=(1, 2))  # a window whose input still holds a gap is not scored
    starts, inputs = starts[filled], inputs[filled]
    if not len(starts):
        return None
    rows = starts[:, None] + lookback + np.arange(horizon)[None, :]
    y, seen = scaled.values[rows, 0].astype(np.float64), scaled.observed_mask[rows, 0]  # the target: feature 0
    with torch.no_grad():
        out = net(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)))[:, :, 0].numpy()
    ends = starts + lookback + horizon
    return rolling_offsets((out, np.nan_to_num(y), seen & np.isfinite(y), ends), np.array([ends[-1]]), calibration)


def run_network(
    net: nn.Module,
    windows: np.ndarray,
    horizon: int,
    series: np.ndarray | None = None,
    n_levels: int = 0,
    calibration: Calibration | None = None,
    offsets: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(n, lookback, n_features) scaled windows (and a panel's series indices), one network pass ->
    (n, horizon) scaled point forecasts, and with ``n_levels`` the (n, horizon, n_levels) quantile levels,
    calibrated by ``calibration`` when given (None without levels; ``offsets``: a rolling calibration's)."""
    net.eval()  # dropout off: the same history gives the same forecast
    x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
    with torch.no_grad():
        out = net(x) if series is None else net(x, torch.as_tensor(series, dtype=torch.long))  # (n, horizon, 1[, L])
    point = point_of(out, net)
    if tuple(point.shape[1:]) != (horizon, 1):
        raise _contract(f"the network forecasts shape {tuple(point.shape[1:])}, expected horizon {horizon} x 1 target")
    levels = calibrated_levels(out[:, :, 0].numpy(), calibration, n_levels, offsets) if n_levels else None
    return point[:, :, 0].numpy().astype(np.float64), levels


@dataclass
class Forecaster:
    """A trained run's preprocessor and network with the settings ``forecast`` needs."""

    preprocessor: Preprocessor
    net: nn.Module
    settings: ServingSettings
    calibration: Calibration | None = None

    def predict(self, history: pd.DataFrame) -> pd.DataFrame:
        """The forecast after ``history`` (see :func:`forecast`)."""
        return forecast(history, self.preprocessor, self.net, self.settings, self.calibration)


def load_forecaster(
    preprocessor: Path | Preprocessor | PanelPreprocessor,
    checkpoint: Path,
    settings: ServingSettings | dict[str, Any],
    calibration: Path | Calibration | None = None,
) -> Forecaster | PanelForecaster:
    """Load a run's network (and preprocessor, given a path); check they agree with ``settings``.

    ``settings`` may be the plain serving.json dict (as splineforecast 0.1.0's pyfunc code passes it).
    Window lengths of 0 in ``settings`` are taken from the checkpoint. A panel run's preprocessor gives a
    :class:`~splineforecast.serving_panel.PanelForecaster` (a long history of many series).

    Raises:
        ContractError: FILE_NOT_FOUND, or ARTIFACT_CONTRACT_ERROR when the artifacts disagree.
    """
    from splineforecast.data.panel_preprocess import PanelPreprocessor
    from splineforecast.serving_panel import PanelForecaster

    if isinstance(settings, dict):
        settings = ServingSettings.from_json(settings, checkpoint.parent)  # the model folder holding it
    pre = preprocessor if not isinstance(preprocessor, Path) else _read_preprocessor(preprocessor)
    net, spec = load_network(checkpoint)
    found = {"target": pre.target, "lookback": spec.lookback, "horizon": spec.horizon}
    given = {"target": settings.target, "lookback": settings.lookback, "horizon": settings.horizon}
    differ = {k: (given[k], v) for k, v in found.items() if given[k] and given[k] != v}
    if len(pre.feature_names) != spec.n_features:
        differ["n_features"] = (len(pre.feature_names), spec.n_features)
    if differ:
        raise _contract(f"serving settings, preprocessor and checkpoint disagree (given, found): {differ}")
    settings = dataclasses.replace(settings, lookback=spec.lookback, horizon=spec.horizon)
    cal = read_calibration(calibration) if isinstance(calibration, Path) else calibration
    made = list(levels_of(net, cal))
    if settings.quantiles and list(settings.quantiles) != made:
        raise _contract(
            f"serving settings list quantile levels {settings.quantiles}, but the checkpoint and calibration "
            f"give {made}; re-run stage=train for this run_id"
        )
    if isinstance(pre, PanelPreprocessor):
        return PanelForecaster(pre, net, settings, cal)
    return Forecaster(pre, net, settings, cal)


def _read_preprocessor(path: Path) -> Preprocessor | PanelPreprocessor:
    from splineforecast.data.panel_preprocess import FORMAT as PANEL_FORMAT
    from splineforecast.data.panel_preprocess import PanelPreprocessor

    state = read_preprocessor_state(path)
    return PanelPreprocessor.from_json(state) if state.get("format") == PANEL_FORMAT else Preprocessor.from_json(state)


def load_run_forecaster(paths: RunPaths, settings: ServingSettings | None = None) -> Forecaster | PanelForecaster:
    """The Forecaster of a trained run from its local files (``settings`` default to the run's own)."""
    settings = paths.read_serving() if settings is None else settings
    return load_forecaster(paths.preprocessor_json, paths.best_ckpt, settings, paths.read_calibration())
