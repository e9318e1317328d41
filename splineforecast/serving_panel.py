"""Inference for a panel run: a long history of many series -> the forecast of every series, in one call.

Each series of the history is checked, filled and scaled as its own one-series history is (with its own
train-part scaling), and all windows go through the network at once. A series the model was not trained
on, or one too short or too gappy for a window, is an error naming that series: none is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from torch import nn

from splineforecast.data.panel import WIDE_SERIES_COLUMN, WIDE_TARGET
from splineforecast.data.panel_preprocess import PanelPreprocessor
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.records import Calibration, ServingSettings
from splineforecast.serving import last_window, run_network
from splineforecast.uncertainty import quantile_columns

MAX_LISTED = 10  # failing series named in one error message


def long_history(history: pd.DataFrame, settings: ServingSettings) -> tuple[pd.DataFrame, str]:
    """The history as a long table, and its series column; a wide run's history is melted (one series a column)."""
    if not isinstance(history, pd.DataFrame):
        raise ContractError(
            ErrorCode.DATA_SCHEMA_ERROR, f"history must be a table (DataFrame), got {type(history).__name__}"
        )
    if settings.wide:
        missing = [c for c in settings.wide if c not in history.columns]
        if missing:
            raise ContractError(
                ErrorCode.DATA_SCHEMA_ERROR,
                f"history lacks the series column(s) {missing} the model was trained on ({settings.wide})",
            )
        rest = [c for c in history.columns if c not in settings.wide]
        parts = [history[rest].assign(**{WIDE_SERIES_COLUMN: c, WIDE_TARGET: history[c]}) for c in settings.wide]
        return pd.concat(parts, ignore_index=True), WIDE_SERIES_COLUMN
    column = settings.series_column or WIDE_SERIES_COLUMN
    if column not in history.columns:
        raise ContractError(
            ErrorCode.DATA_SCHEMA_ERROR,
            f"history lacks the series column `{column}`: a panel model forecasts each series named there",
        )
    ids = history[column].astype("string").str.strip()
    if (ids.isna() | (ids == "")).any():
        row = int(np.flatnonzero((ids.isna() | (ids == "")).to_numpy())[0])
        raise ContractError(ErrorCode.DATA_SCHEMA_ERROR, f"history row {row}: missing series id in `{column}`")
    return history.assign(**{column: ids}), column


def forecast_panel(
    history: pd.DataFrame,
    pre: PanelPreprocessor,
    net: nn.Module,
    settings: ServingSettings,
    calibration: Calibration | None = None,
) -> pd.DataFrame:
    """Forecast ``settings.horizon`` steps after the end of every series in ``history``.

    Returns:
        ``horizon`` rows per series, in the order of first appearance: the series column, the time
        column, ``step`` and the target, and with ``settings.quantiles`` a column ``<target>_q<level>``
        per level (calibrated by ``calibration`` when the run has one).

    Raises:
        ContractError: DATA_SCHEMA_ERROR (28) for an unknown series id, missing column or bad cells;
            INSUFFICIENT_DATA_ERROR (26) for a series too short or gappy for a window; the message
            names every failing series (up to ten).
    """
    frame, column = long_history(history, settings)
    windows, ends, members, failed = [], [], [], []
    for sid, rows in frame.groupby(column, sort=False):
        i = pre.index(str(sid))
        if i is None:
            failed.append(
                (ErrorCode.DATA_SCHEMA_ERROR, f"series {sid!r}: not one of the {len(pre.series_ids_)} trained series")
            )
            continue
        try:
            index, window = last_window(rows.drop(columns=[column]), pre.member(i), settings)
        except ContractError as exc:
            failed.append((exc.code, f"series {sid!r}: {exc.message}"))
            continue
        windows.append(window)
        ends.append((str(sid), index[-1]))
        members.append(i)
    if failed:
        listed = "; ".join(m for _, m in failed[:MAX_LISTED])
        more = f" (and {len(failed) - MAX_LISTED} more)" if len(failed) > MAX_LISTED else ""
        raise ContractError(failed[0][0], f"{len(failed)} series cannot be forecast: {listed}{more}")
    n_levels = len(settings.quantiles or [])
    scaled, levels = run_network(net, np.stack(windows), settings.horizon, np.asarray(members), n_levels, calibration)
    return _frame(scaled, levels, ends, members, pre, settings, column)


def _frame(
    scaled: np.ndarray,
    levels: np.ndarray | None,
    ends: list[tuple[str, pd.Timestamp]],
    members: list[int],
    pre: PanelPreprocessor,
    settings: ServingSettings,
    column: str,
) -> pd.DataFrame:
    h = settings.horizon
    names = quantile_columns(pre.target, settings.quantiles or [])
    parts = []
    for row, ((sid, end), i) in enumerate(zip(ends, members, strict=True)):
        future = pd.date_range(end, periods=h + 1, freq=pre.freq)[1:]
        values = pre.inverse_target(scaled[row], i)
        part = pd.DataFrame(
            {column: sid, settings.time_column: future, "step": np.arange(1, h + 1), pre.target: values}
        )
        if levels is not None:
            bands = pre.inverse_target(levels[row], i)  # (horizon, n_levels)
            part = part.assign(**{name: bands[:, k] for k, name in enumerate(names)})
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


@dataclass
class PanelForecaster:
    """A trained panel run's preprocessor and network with the settings ``forecast_panel`` needs."""

    preprocessor: PanelPreprocessor
    net: nn.Module
    settings: ServingSettings
    calibration: Calibration | None = None

    def predict(self, history: pd.DataFrame) -> pd.DataFrame:
        """The forecast after every series of ``history`` (see :func:`forecast_panel`)."""
        return forecast_panel(history, self.preprocessor, self.net, self.settings, self.calibration)
