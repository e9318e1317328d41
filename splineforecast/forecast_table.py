"""The numbers of a run's test-part forecast (test_forecast.csv): what forecast.png draws, as a table.

One row per test window, at its origin (the first forecast row): the time, the observed truth there
(empty where the target was not observed), the model's 1-step-ahead forecast, and with quantile levels
each level's 1-step value as ``<target>_q<level>``. A panel run stacks every series' rows, the series
column first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from splineforecast.evaluation import TestForecast
from splineforecast.uncertainty import quantile_columns

TIME, ACTUAL, FORECAST = "timestamp", "actual", "forecast"


def test_forecast_frame(tf: TestForecast, timestamps: np.ndarray, lookback: int, target: str) -> pd.DataFrame:
    """The 1-step-ahead rows of ``tf`` (one per test window); ``timestamps`` are the rows' times."""
    origins = tf.starts.astype(np.int64) + lookback
    seen = tf.observed[origins]
    frame = pd.DataFrame(
        {
            TIME: pd.to_datetime(timestamps[origins]),
            ACTUAL: np.where(seen, tf.actual[origins], np.nan),
            FORECAST: tf.forecast[:, 0],
        }
    )
    if tf.quantiles is not None:
        for j, name in enumerate(quantile_columns(target, tf.levels)):
            frame[name] = tf.quantiles[:, 0, j]
    return frame


def panel_test_forecast_frame(
    forecasts: Sequence[TestForecast],
    timestamps: Sequence[np.ndarray],
    ids: Sequence[str],
    series_column: str,
    lookback: int,
    target: str,
) -> pd.DataFrame:
    """Every series' rows of :func:`test_forecast_frame`, stacked in series order, ``series_column`` first."""
    frames = [
        test_forecast_frame(tf, stamps, lookback, target).assign(**{series_column: sid})
        for tf, stamps, sid in zip(forecasts, timestamps, ids, strict=True)
    ]
    frame = pd.concat(frames, ignore_index=True)
    return frame[[series_column, *(c for c in frame.columns if c != series_column)]]


def to_csv(frame: pd.DataFrame) -> bytes:
    """The CSV bytes of a test-forecast frame (full float precision; an unobserved truth is empty)."""
    return frame.to_csv(index=False).encode()
