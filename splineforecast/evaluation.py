"""Honest scores: original units, observed target points only, baselines on the same points.

Metric rules:
* ``mape`` is robust: ``mean(|y - yhat| / max(|y|, eps))`` as a fraction (sklearn's
  convention, not percent), where ``eps`` is 1% of the mean absolute observed target in the
  train part. A near-zero actual therefore costs a bounded amount instead of infinity.
* ``mase`` divides the MAE by the in-sample seasonal-naive MAE of the train part (lag =
  ``season_length``; lag 1 when the train part is shorter than two seasons).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from splineforecast.data.preprocess import Preprocessor
from splineforecast.data.processed import Processed
from splineforecast.data.scaling import seasonal_mae
from splineforecast.models.networks import point_of
from splineforecast.records import Calibration, Scores
from splineforecast.uncertainty import calibrated_levels, levels_of, residual_levels, rolling_offsets, score_levels
from splineforecast.windows import WindowDataset, window_loader

METRICS = ("mae", "mse", "rmse", "mape", "r2", "mase")
BASELINES = ("naive", "seasonal_naive")


@dataclass(frozen=True)
class Scale:
    """Train-part statistics that make metrics comparable across series."""

    mase: float  # in-sample seasonal-naive MAE
    mape_eps: float  # denominator floor of robust MAPE


def train_scale(target: np.ndarray, observed: np.ndarray, season_length: int) -> Scale:
    """Scale statistics from the train part of one target (original units)."""
    mase = seasonal_mae(target, observed, season_length)
    mape_eps = 0.01 * float(np.abs(target[observed]).mean())
    return Scale(mase=mase, mape_eps=mape_eps)


def score(y_true: np.ndarray, y_pred: np.ndarray, scale: Scale) -> dict[str, float]:
    """The six metrics of two flat arrays of already-selected points."""
    err = y_pred - y_true
    mae = float(np.abs(err).mean())
    mse = float((err**2).mean())
    ss_tot = float(((y_true - y_true.mean()) ** 2).sum())
    return {
        "mae": mae,
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mape": float((np.abs(err) / np.maximum(np.abs(y_true), scale.mape_eps)).mean()),
        "r2": 1.0 - float((err**2).sum()) / ss_tot if ss_tot > 0 else float("nan"),
        "mase": mae / scale.mase if scale.mase > 0 else float("nan"),
    }


@torch.no_grad()
def predict_levels(net: torch.nn.Module, dataset: WindowDataset, batch_size: int = 512) -> np.ndarray:
    """The network's output for every window of ``dataset``, scaled space: (n_windows, horizon, n_targets),
    and a last axis of quantile levels with ``model.quantiles``."""
    net.eval()
    out = [net(batch[0], *batch[3:]) for batch in window_loader(dataset, batch_size, shuffle=False)]
    return torch.cat(out).numpy()


@torch.no_grad()
def predict_with_truth(
    net: torch.nn.Module, dataset: WindowDataset, batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first target's output (n, horizon[, n_levels]), truth (n, horizon) and observed mask, scaled space."""
    net.eval()
    batches = list(window_loader(dataset, batch_size, shuffle=False))
    out = torch.cat([net(b[0], *b[3:]) for b in batches])[:, :, 0]
    y, seen = (torch.cat([b[k] for b in batches])[:, :, 0] for k in (1, 2))
    return out.numpy(), y.numpy().astype(np.float64), seen.numpy().astype(bool)


def predict(net: torch.nn.Module, dataset: WindowDataset, batch_size: int = 512) -> np.ndarray:
    """Point forecasts (the median of a quantile head) for every window: (n_windows, horizon, n_targets)."""
    return point_of(predict_levels(net, dataset, batch_size), net)


def predict_first_target(
    net: torch.nn.Module,
    dataset: WindowDataset,
    calibration: Calibration | None = None,
    history: WindowDataset | None = None,
) -> tuple[np.ndarray, tuple[float, ...], np.ndarray | None]:
    """One pass over ``dataset``, scaled space: the first target's point forecasts (n, horizon), the run's
    quantile levels (:func:`~splineforecast.uncertainty.levels_of`), and with levels every one of them,
    calibrated by ``calibration`` when given (n, horizon, n_levels; None without levels). A rolling
    calibration (``calibration.window``) refits each window's offsets on the windows of ``history`` (the
    val part, before ``dataset``) and of ``dataset`` itself whose truth was observed before its origin."""
    levels = levels_of(net, calibration)
    if calibration is not None and calibration.window and history is not None:
        out, y, seen = predict_with_truth(net, dataset)
        before = predict_with_truth(net, history)
        span = dataset.spec.lookback + dataset.spec.horizon
        ends = np.concatenate([history.starts.numpy(), dataset.starts.numpy()]) + span
        past = (np.concatenate([before[0], out]), np.concatenate([before[1], y]), np.concatenate([before[2], seen]))
        offsets = rolling_offsets((*past, ends), dataset.starts.numpy() + dataset.spec.lookback, calibration)
        return point_of(out, net).astype(np.float64), levels, calibrated_levels(out, calibration, len(levels), offsets)
    out = predict_levels(net, dataset)[:, :, 0]
    quantiles = calibrated_levels(out, calibration, len(levels)) if levels else None
    return point_of(out, net).astype(np.float64), levels, quantiles


def baseline_forecasts(
    series: np.ndarray, starts: np.ndarray, lookback: int, horizon: int, season_length: int
) -> dict[str, np.ndarray]:
    """Naive (last input value) and seasonal-naive (same step one season back) forecasts.

    Args:
        series: (T,) the filled target, as the model sees it.
        starts: window start rows.

    Returns:
        ``{"naive": (n, horizon), "seasonal_naive": (n, horizon)}``; NaN where no history exists.
    """
    origin = starts + lookback  # first forecast row of each window
    steps = np.arange(horizon)
    naive = np.repeat(series[origin - 1][:, None], horizon, axis=1)
    back = season_length * (steps // season_length + 1)
    rows = origin[:, None] + steps[None, :] - back[None, :]
    seasonal = np.where(rows >= 0, series[np.clip(rows, 0, None)], np.nan)
    return {"naive": naive, "seasonal_naive": seasonal}


def truth(
    series: np.ndarray, observed: np.ndarray, starts: np.ndarray, lookback: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n, horizon) true values and their observed mask for each window."""
    rows = (starts + lookback)[:, None] + np.arange(horizon)[None, :]
    return series[rows], observed[rows]


def aligned(
    forecast: np.ndarray,
    series: np.ndarray,
    observed: np.ndarray,
    starts: np.ndarray,
    lookback: int,
    season_length: int,
    actual: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """The (n, horizon) truth, the model's and the baselines' forecasts, and the points they are all scored on.

    The points are the same for everyone: observed truth where every forecast exists.
    """
    horizon = forecast.shape[1]
    y_true, seen = truth(series if actual is None else actual, observed, starts, lookback, horizon)
    preds = {"model": forecast, **baseline_forecasts(series, starts, lookback, horizon, season_length)}
    points = seen & np.logical_and.reduce([np.isfinite(p) for p in preds.values()])
    return y_true, preds, points


def evaluate(
    forecast: np.ndarray,
    series: np.ndarray,
    observed: np.ndarray,
    starts: np.ndarray,
    lookback: int,
    season_length: int,
    scale: Scale,
    actual: np.ndarray | None = None,
) -> Scores:
    """Score a model forecast and the baselines on the observed points of one target.

    Args:
        forecast: (n, horizon) model forecast in original units.
        series: (T,) the filled target in original units, as the model saw it (baselines read it).
        observed: (T,) bool, true where the target was observed.
        starts: the window start rows the forecast belongs to.
        actual: (T,) the raw observations, when ``series`` was smoothed; the truth scored.

    Returns:
        The scores of metrics.json: the model's, the baselines', per horizon step, and the point count.
    """
    y_true, preds, points = aligned(forecast, series, observed, starts, lookback, season_length, actual)
    scores = {name: score(y_true[points], p[points], scale) for name, p in preds.items()}
    per_horizon: dict[str, dict[str, list[float]]] = {}
    for name, p in preds.items():
        err = np.where(points, p - y_true, np.nan)
        per_horizon[name] = {
            "mae": np.nanmean(np.abs(err), axis=0).tolist(),
            "rmse": np.sqrt(np.nanmean(err**2, axis=0)).tolist(),
        }
    return Scores(scores.pop("model"), scores, per_horizon, int(points.sum()))


@dataclass(frozen=True)
class TestForecast:
    """The model's forecasts of every test window, with the truth they are scored on (original units)."""

    starts: np.ndarray  # (n,) window start rows
    forecast: np.ndarray  # (n, horizon)
    series: np.ndarray  # (T,) the filled target, as the model saw it (baselines read it)
    actual: np.ndarray  # (T,) the raw observations: the truth
    observed: np.ndarray  # (T,) bool, true where the target was observed
    levels: tuple[float, ...] = ()  # quantile levels (model.quantiles, or the conformal ones)
    quantiles: np.ndarray | None = None  # (n, horizon, n_levels) with levels


def forecast_test(
    net: torch.nn.Module,
    pre: Preprocessor,
    processed: Processed,
    test: WindowDataset,
    calibration: Calibration | None = None,
    val: WindowDataset | None = None,
) -> TestForecast:
    """Forecast every window of ``test`` with ``net`` and put everything back in original units.

    With quantile levels (the network's, or a calibration's) the forecast is their median and
    ``quantiles`` holds every level, calibrated by ``calibration`` when given (a rolling one also reads
    the ``val`` windows: see :func:`predict_first_target`).
    """
    t = test.spec.target_indices[0]
    series = pre.inverse_target(processed.values[:, t].astype(np.float64))
    # the truth: raw observations (smoothing may have changed `series` at observed points)
    actual = processed.targets_raw[:, 0] if processed.targets_raw is not None else series
    point, levels, scaled_levels = predict_first_target(net, test, calibration, val)
    forecast = pre.inverse_target(point)
    quantiles = None if scaled_levels is None else pre.inverse_target(scaled_levels)
    return TestForecast(test.starts.numpy(), forecast, series, actual, processed.observed_mask[:, t], levels, quantiles)


def score_test(tf: TestForecast, train: tuple[int, int], lookback: int, season_length: int) -> Scores:
    """Score ``tf`` and the baselines, scaled by the statistics of the ``train`` rows."""
    a, b = train
    scale = train_scale(tf.actual[a:b], tf.observed[a:b], season_length)
    return evaluate(tf.forecast, tf.series, tf.observed, tf.starts, lookback, season_length, scale, tf.actual)


def score_test_levels(
    tf: TestForecast, train: tuple[int, int], lookback: int, season_length: int
) -> dict[str, Any] | None:
    """metrics.json ``uncertainty`` of ``tf``'s quantiles beside the baselines' (None without levels).

    The points are those the point metrics score; a baseline's levels are its forecast plus its own
    train-part residual quantiles per horizon step (:func:`~splineforecast.uncertainty.residual_levels`).
    """
    if tf.quantiles is None:
        return None
    a, b = train
    levels = list(tf.levels)
    scale = train_scale(tf.actual[a:b], tf.observed[a:b], season_length)
    y_true, preds, points = aligned(tf.forecast, tf.series, tf.observed, tf.starts, lookback, season_length, tf.actual)
    horizon = tf.forecast.shape[1]
    fit_starts = np.arange(0, b - a - lookback - horizon + 1)
    fitted = baseline_forecasts(tf.series[a:b], fit_starts, lookback, horizon, season_length)
    y_fit, seen_fit = truth(tf.actual[a:b], tf.observed[a:b], fit_starts, lookback, horizon)
    forecasts = {"model": tf.quantiles}
    for name, fc in fitted.items():
        forecasts[name] = preds[name][:, :, None] + residual_levels(fc, y_fit, seen_fit, levels)[None]
    return score_levels(y_true, forecasts, points, levels, scale.mase)
