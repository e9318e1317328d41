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
    predict_first_target,
    score_test,
    score_test_levels,
)
from splineforecast.records import Calibration, PanelScores, Scores
from splineforecast.records_panel import PanelSplitContract
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
    scaled, levels, scaled_levels = predict_first_target(net, test, calibration)
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
    pairs = zip(forecasts, contract.series, strict=True)
    scored = (score_test_levels(tf, b.split.train, lookback, season_length) for tf, b in pairs)
    each = [e for e in scored if e is not None]  # every series has levels: none is None
    rows = [e["scores"] for e in each]
    first = rows[0]
    scores = {name: {k: _mean([r[name][k] for r in rows]) for k in first[name]} for name in first}
    per_horizon = _mean_per_horizon([e["per_horizon"] for e in each])
    summary = {
        "levels": list(forecasts[0].levels),
        "n_points": sum(int(e["n_points"]) for e in each),
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
    per_horizon = _mean_per_horizon([r.scores.per_horizon for r in rows])
    scores = Scores(metrics, baselines, per_horizon, sum(r.scores.n_points for r in rows))
    tables = [r.row() for r in rows]
    mean = {name: {m: _mean([t[name][m] for t in tables]) for m in SERIES_METRICS} for name in FORECASTERS}
    return scores, PanelScores(len(rows), mean)


def _mean_per_horizon(tables: Sequence[dict[str, dict[str, list[float]]]]) -> dict[str, dict[str, list[float]]]:
    """``{forecaster: {score: per-step values}}`` of every series -> the per-step means over series (NaN-aware)."""
    first = tables[0]
    return {
        name: {k: np.nanmean(np.array([t[name][k] for t in tables], dtype=np.float64), axis=0).tolist() for k in keys}
        for name, keys in first.items()
    }


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
