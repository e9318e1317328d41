"""Scores of a panel: every series scored as one series is, then averaged over the series.

Each series is scored on its own observed test points in its own units, beside its own naive and
seasonal-naive forecasts, with its own train part as the MASE scale. The panel's ``metrics`` are the
means over series (every series weighs the same), so a panel of one series scores exactly as the one
series does. sMAPE is M4's (percent): ``mean(200 |y - f| / (|y| + |f|))``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from splineforecast.data.panel_preprocess import PanelPreprocessor
from splineforecast.data.processed import Processed
from splineforecast.evaluation import (
    BASELINES,
    METRICS,
    TestForecast,
    aligned,
    predict,
    predict_levels,
    score_test,
    score_test_levels,
)
from splineforecast.records import Calibration, PanelScores, Scores
from splineforecast.records_panel import PanelSplitContract
from splineforecast.uncertainty import apply_calibration
from splineforecast.windows import WindowDataset

SERIES_METRICS = ("mae", "rmse", "smape", "mase", "r2")  # the columns of per_series.csv, per forecaster
FORECASTERS = ("model", *BASELINES)


def smape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """M4's sMAPE in percent; a point where truth and forecast are both 0 costs 0."""
    denom = np.abs(y_true) + np.abs(y_pred)
    terms = np.where(denom > 0, 200.0 * np.abs(y_true - y_pred) / np.where(denom > 0, denom, 1.0), 0.0)
    return float(terms.mean()) if terms.size else math.nan


def _mean(values: Sequence[float]) -> float:
    """The mean of the finite values; NaN when there is none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


@dataclass(frozen=True)
class SeriesScore:
    """One series' scores: the model's and the baselines' (as a one-series run has them), and sMAPE."""

    id: str
    scores: Scores
    smape: dict[str, float]  # forecaster -> sMAPE

    def row(self) -> dict[str, dict[str, float]]:
        """``{forecaster: {metric: value}}`` of the per-series metrics."""
        both = {"model": self.scores.metrics, **self.scores.baselines}
        return {name: {**both[name], "smape": self.smape[name]} for name in FORECASTERS}


@torch.no_grad()
def forecast_panel(
    net: torch.nn.Module,
    pre: PanelPreprocessor,
    processed: Processed,
    test: WindowDataset,
    groups: np.ndarray,
    calibration: Calibration | None = None,
) -> list[TestForecast]:
    """Every series' test forecasts in its original units, with local rows (one network pass for all).

    With quantile levels (the network's, or a calibration's) each also holds every level, calibrated by
    ``calibration`` (fitted on all series' val windows together, in scaled space) when given.
    """
    t = test.spec.target_indices[0]
    scaled = predict(net, test)[:, :, 0].astype(np.float64)
    levels = tuple(calibration.levels) if calibration is not None else tuple(getattr(net, "quantiles", ()))
    scaled_levels = None
    if levels:
        base = predict_levels(net, test)[:, :, 0].astype(np.float64)
        scaled_levels = apply_calibration(base if base.ndim == 3 else base[:, :, None], calibration, len(levels))
    starts = test.starts.numpy()
    out = []
    for i in range(len(pre.series_ids_)):
        rows, member, mine = processed.series_rows(i), pre.member(i), groups == i
        series = member.inverse_target(processed.values[rows, t].astype(np.float64))
        actual = processed.targets_raw[rows, 0] if processed.targets_raw is not None else series
        forecast = member.inverse_target(scaled[mine])
        quantiles = None if scaled_levels is None else member.inverse_target(scaled_levels[mine])
        observed = processed.observed_mask[rows, t]
        out.append(TestForecast(starts[mine] - rows.start, forecast, series, actual, observed, levels, quantiles))
    return out


def panel_uncertainty(
    forecasts: Sequence[TestForecast], contract: PanelSplitContract, lookback: int, season_length: int
) -> tuple[dict[str, Any] | None, list[dict[str, dict[str, float]]]]:
    """metrics.json ``uncertainty`` of a panel (each score the mean over series, as M4 averages MSIS), and
    each series' scores (``{forecaster: {score: value}}``); None and [] without quantile levels."""
    if not forecasts or forecasts[0].quantiles is None:
        return None, []
    each = [
        score_test_levels(tf, b.split.train, lookback, season_length)
        for tf, b in zip(forecasts, contract.series, strict=True)
    ]
    rows = [e["scores"] for e in each if e is not None]
    first = rows[0]
    scores = {name: {k: _mean([r[name][k] for r in rows]) for k in first[name]} for name in first}
    horizons = [e["per_horizon"] for e in each if e is not None]
    per_horizon = {
        name: {
            k: np.nanmean(np.array([h[name][k] for h in horizons], dtype=np.float64), axis=0).tolist()
            for k in horizons[0][name]
        }
        for name in horizons[0]
    }
    n_points = sum(int(e["n_points"]) for e in each if e is not None)
    levels = list(forecasts[0].levels)
    summary = {
        "levels": levels,
        "n_points": n_points,
        "scores": scores,
        "per_horizon": per_horizon,
        "mean_over": "series",
    }
    return summary, rows


def score_series(
    forecasts: Sequence[TestForecast], contract: PanelSplitContract, lookback: int, season_length: int
) -> list[SeriesScore]:
    """Each series scored on its observed test points, scaled by its own train part."""
    rows = []
    for tf, bounds in zip(forecasts, contract.series, strict=True):
        scores = score_test(tf, bounds.split.train, lookback, season_length)
        y_true, preds, points = aligned(
            tf.forecast, tf.series, tf.observed, tf.starts, lookback, season_length, tf.actual
        )
        rows.append(SeriesScore(bounds.id, scores, {n: smape(y_true[points], p[points]) for n, p in preds.items()}))
    return rows


def panel_scores(rows: Sequence[SeriesScore]) -> tuple[Scores, PanelScores]:
    """The means over series: the Scores of metrics.json, and its ``panel`` part."""
    metrics = {m: _mean([r.scores.metrics[m] for r in rows]) for m in METRICS}
    baselines = {b: {m: _mean([r.scores.baselines[b][m] for r in rows]) for m in METRICS} for b in BASELINES}
    per_horizon = {
        name: {
            k: np.nanmean(np.array([r.scores.per_horizon[name][k] for r in rows], dtype=np.float64), axis=0).tolist()
            for k in rows[0].scores.per_horizon[name]
        }
        for name in rows[0].scores.per_horizon
    }
    scores = Scores(metrics, baselines, per_horizon, sum(r.scores.n_points for r in rows))
    tables = [r.row() for r in rows]
    mean = {name: {m: _mean([t[name][m] for t in tables]) for m in SERIES_METRICS} for name in FORECASTERS}
    return scores, PanelScores(len(rows), mean)


def per_series_csv(
    rows: Sequence[SeriesScore], series_column: str, uncertainty: Sequence[dict[str, dict[str, float]]] = ()
) -> bytes:
    """per_series.csv: the series id, its scored points, then each forecaster's metrics (and, with quantile
    levels, its interval scores: ``crps``, ``coverage_<pct>``, ``width_<pct>``, ``msis_<pct>``; not the pinball
    loss of each level, which metrics.json keeps as means)."""
    records = []
    for k, r in enumerate(rows):
        table = r.row()
        record: dict[str, object] = {series_column: r.id, "n_points": r.scores.n_points}
        for name in FORECASTERS:
            prefix = "" if name == "model" else f"{name}_"
            record.update({f"{prefix}{m}": table[name][m] for m in SERIES_METRICS})
            if uncertainty:
                kept = {m: v for m, v in uncertainty[k][name].items() if not m.startswith("pinball_")}
                record.update({f"{prefix}{m}": v for m, v in kept.items()})
        records.append(record)
    buffer = io.StringIO()
    pd.DataFrame.from_records(records).to_csv(buffer, index=False)
    return buffer.getvalue().encode()
