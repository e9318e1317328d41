"""The panel steps of the recipe: preprocess many series into one processed.npz, and score a trained
global model per series (per_series.csv, the panel part of metrics.json and of the report)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from splineforecast.artifacts import RunPaths
from splineforecast.config import Config
from splineforecast.contracts import PanelRawInputs, ProcessedInputs
from splineforecast.data.panel_preprocess import Mapper, PanelPreprocessor
from splineforecast.data.processed import Processed
from splineforecast.evaluation import TestForecast
from splineforecast.forecast_table import panel_test_forecast_frame, to_csv
from splineforecast.panel_eval import (
    SeriesScore,
    forecast_panel,
    panel_scores,
    panel_uncertainty,
    per_series_csv,
    score_series,
)
from splineforecast.records import Calibration, EvalResult, PanelInfo, PanelScores, Scores
from splineforecast.records_panel import PanelSplitContract
from splineforecast.report import plot_distribution, plot_forecast, render_panel_section
from splineforecast.windows import WindowDataModule


@dataclass(frozen=True)
class PanelProcessed:
    """What preprocessing a panel makes, before the artifact layer writes it."""

    processed: Processed
    contract: PanelSplitContract
    preprocessor: PanelPreprocessor
    info: PanelInfo
    n_imputed: dict[str, int]


def preprocess_panel(
    cfg: Config, run_id: str, raw: PanelRawInputs, mapper: Mapper | None = None, fitted: dict | None = None
) -> PanelProcessed:
    """Fill and scale every series of the checked panel (per series and part) and lay them end to end;
    with ``fitted`` (a fitted PanelPreprocessor's JSON state, of these series) transform without fitting."""
    t = raw.table
    covariates = [dataclasses.asdict(c) for c in raw.covariates]
    spline = dataclasses.asdict(cfg.spline)
    if fitted is None:
        d = cfg.data
        pre = PanelPreprocessor(
            t.target, covariates, spline, t.freq, run_id, t.series_column, d.scaler, d.season_length
        ).fit(t.series)
    else:
        pre = PanelPreprocessor.from_json({**fitted, "run_id": run_id})
    out = pre.transform(t.series, mapper)
    stamps = np.concatenate([s.frame.index.as_unit("ns").asi8 for s in t.series])
    raw_target = pre.raw_target(t.series)[:, None]
    processed = Processed(out.values, out.observed_mask, stamps, pre.feature_names, [0], raw_target, t.ids, out.offsets)
    splits, d = [s.split for s in t.series], cfg.data
    times = stamps.astype("datetime64[ns]")
    contract = PanelSplitContract.of(run_id, t.rule, t.ids, splits, times, d.lookback, d.horizon)
    info = PanelInfo(t.series_column, t.ids, dict(t.left_out), d.scaler, t.wide)
    return PanelProcessed(processed, contract, pre, info, out.n_imputed)


@dataclass(frozen=True)
class PanelOutcome:
    """A trained panel model's test scores: the means (metrics.json), each series', and their forecasts."""

    scores: Scores
    panel: PanelScores
    rows: list[SeriesScore]
    forecasts: list[TestForecast]
    uncertainty: dict[str, Any] | None = None  # metrics.json `uncertainty`: means over series
    uncertainty_rows: list[dict[str, dict[str, float]]] = dataclasses.field(default_factory=list)  # each series'


def score_panel(
    cfg: Config,
    inputs: ProcessedInputs,
    net: torch.nn.Module,
    data: WindowDataModule,
    calibration: Calibration | None = None,
) -> PanelOutcome:
    """Forecast every series' test windows with ``net``; score each series and average over series (interval
    scores too, when the network or ``calibration`` gives quantile levels)."""
    pre, contract = inputs.preprocessor, inputs.contract
    assert isinstance(pre, PanelPreprocessor) and isinstance(contract, PanelSplitContract)
    forecasts = forecast_panel(net, pre, inputs.processed, data.datasets["test"], data.groups["test"], calibration)
    d = cfg.data
    rows = score_series(forecasts, contract, d.lookback, d.season_length)
    scores, panel = panel_scores(rows)
    uncertainty, each = panel_uncertainty(forecasts, contract, d.lookback, d.season_length)
    return PanelOutcome(scores, panel, rows, forecasts, uncertainty, each)


def write_panel_report(
    cfg: Config, paths: RunPaths, inputs: ProcessedInputs, outcome: PanelOutcome, result: EvalResult, head: str
) -> None:
    """per_series.csv, and report.md with the MASE distribution and the median (forecast.png), best and
    worst series; ``head`` is the one-series part of the report (summary, mean metrics, per-step MAE)."""
    column = inputs.preprocessor.series_column  # type: ignore[union-attr]
    paths.write_per_series(per_series_csv(outcome.rows, column, outcome.uncertainty_rows))
    write_panel_test_forecast(cfg, paths, inputs, outcome)
    mase = np.array([r.scores.metrics["mase"] for r in outcome.rows], dtype=np.float64)
    ranked = [i for i in np.argsort(mase, kind="stable") if np.isfinite(mase[i])] or [0]
    picks = {"median": ranked[len(ranked) // 2], "best": ranked[0], "worst": ranked[-1]}
    files = {"median": paths.forecast_png, "best": paths.best_png, "worst": paths.worst_png}
    plots = {}
    for label, i in picks.items():
        rows = inputs.processed.series_rows(i)
        stamps = inputs.processed.timestamps[rows].astype("datetime64[ns]")
        sid = outcome.rows[i].id
        plots[files[label]] = plot_forecast(outcome.forecasts[i], stamps, cfg.data.lookback, f"series {sid}, test part")
    title = f"{cfg.model.name.upper()} on {cfg.data.name}: MASE per series"
    plots[paths.mase_png] = plot_distribution(mase, 1.0, title)
    named = {label: (outcome.rows[i].id, float(mase[i]), files[label].name) for label, i in picks.items()}
    markdown = head + render_panel_section(result, named, paths.mase_png.name)
    median = plots.pop(paths.forecast_png)
    paths.write_report(markdown, median, plots)


def write_panel_test_forecast(cfg: Config, paths: RunPaths, inputs: ProcessedInputs, outcome: PanelOutcome) -> None:
    """test_forecast.csv of a panel run: each series' 1-step test forecasts, the series column first."""
    processed, pre = inputs.processed, inputs.preprocessor
    assert isinstance(pre, PanelPreprocessor)
    stamps = [processed.timestamps[processed.series_rows(i)].astype("datetime64[ns]") for i in range(len(outcome.rows))]
    ids = [r.id for r in outcome.rows]
    frame = panel_test_forecast_frame(outcome.forecasts, stamps, ids, pre.series_column, cfg.data.lookback, pre.target)
    paths.write_test_forecast(to_csv(frame))
