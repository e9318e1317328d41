"""Standard scaling fitted on the train part only, with a JSON-able state."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.preprocessing import StandardScaler


def seasonal_mae(target: np.ndarray, observed: np.ndarray, season_length: int) -> float:
    """The in-sample seasonal-naive MAE of one target (MASE's scale): the mean of ``|y[t] - y[t - lag]|`` over
    pairs of observed points, lag = ``season_length`` (1 when there are fewer than two seasons); NaN for none."""
    lag = season_length if len(target) >= 2 * season_length else 1
    both = observed[lag:] & observed[:-lag]
    diffs = np.abs(target[lag:] - target[:-lag])[both]
    return float(diffs.mean()) if diffs.size else float("nan")


def fit_scaler(train: np.ndarray) -> StandardScaler:
    """Fit a StandardScaler on train rows (NaN = missing, ignored). Constant columns get scale 1."""
    return StandardScaler().fit(train)


def scaler_state(scaler: StandardScaler) -> dict[str, Any]:
    """Fitted statistics as plain lists."""
    return {
        "mean": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),
        "var": scaler.var_.tolist(),
        "n_samples_seen": np.broadcast_to(scaler.n_samples_seen_, scaler.mean_.shape).tolist(),
    }


def scaler_from_state(state: dict[str, Any]) -> StandardScaler:
    """Rebuild a fitted StandardScaler from :func:`scaler_state`'s output."""
    scaler = StandardScaler()
    scaler.mean_ = np.asarray(state["mean"], dtype=np.float64)
    scaler.scale_ = np.asarray(state["scale"], dtype=np.float64)
    scaler.var_ = np.asarray(state["var"], dtype=np.float64)
    scaler.n_samples_seen_ = np.asarray(state["n_samples_seen"], dtype=np.int64)
    scaler.n_features_in_ = len(scaler.mean_)
    return scaler
