"""A success never carries NaN metrics, through the real command: a run whose scored test points cannot
give every metric exits 26 naming the metric and why, records no metrics (no metrics.json, report or
test forecasts, an earlier run's removed; no MLflow metric) and ends its MLflow run FAILED; a panel with
one unscorable series trains on the others, names it in meta.json, counts it in the report and averages
finite scores over the series scored."""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import Cli
from mlflow import MlflowClient
from mlflow.entities import Run

from splineforecast.artifacts import RunPaths
from splineforecast.tracking import RUN_ID_TAG

pytestmark = pytest.mark.slow

SMOKE = ("data=tiny", "trainer=smoke")


def _tiny() -> pd.DataFrame:
    return pd.read_csv(Path(str(resources.files("splineforecast") / "datasets" / "co2_tiny.csv")))


def _run(cli: Cli, run_id: str) -> Run:
    client = MlflowClient(cli.tracking_uri)
    experiment = client.get_experiment_by_name("splineforecast")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'")
    return run


def _unscorable_in_windows(path: Path) -> Path:
    """The tiny CO2 table (400 weeks; test part rows 320..399) whose test part varies, but whose scored points
    do not: an unfilled 30-week gap (longer than spline.max_gap 26) at rows 330..359 drops every test window
    that touches it, and the seasonal-naive baseline looks back into it from rows 376..399, so the scored
    points are rows 320..329, all 320.0; rows 360..375 vary and are never scored."""
    table = _tiny()
    y = table["co2"].to_numpy(dtype=float, copy=True)
    y[320:330] = 320.0
    y[376:400] = 320.0
    y[330:360] = np.nan
    table.assign(co2=y).to_csv(path, index=False)
    return path


def test_a_run_whose_scored_points_cannot_give_r2_exits_26_and_records_no_metrics(seeded: Cli) -> None:
    path = _unscorable_in_windows(seeded.root / "flat.csv")
    paths = RunPaths(seeded.artifacts, "flat")
    earlier = (paths.metrics_json, paths.report_md, paths.test_forecast_csv)
    for stale in earlier:  # an earlier run's results under this run_id
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_text("from an earlier run\n")
    proc = seeded(*SMOKE, f"data.path={path}", "run_id=flat")
    assert proc.returncode == 26, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    payload = json.loads(lines[-1])
    assert payload["error"]["code"] == "INSUFFICIENT_DATA_ERROR" and payload["exit_code"] == 26
    message = payload["error"]["message"]
    assert "r2 = nan, naive/r2 = nan, seasonal_naive/r2 = nan;" in message
    assert "r2: the scored test points hold one value, and R2 needs two" in message
    assert [p.name for p in earlier if p.exists()] == []
    assert paths.best_ckpt.is_file()  # training finished: its weights stay, the run is not marked done
    run = _run(seeded, "flat")
    assert run.info.status == "FAILED"
    assert not {"mae", "r2", "mase", "naive/mae"} & set(run.data.metrics)
    assert "train/loss" in run.data.metrics  # the epochs were logged as they ran


def _panel(path: Path) -> Path:
    """The tiny CO2 table three times (series a, b and flat, shifted); flat's test part (its last 80 rows)
    holds one value."""
    base = _tiny()
    parts = []
    for sid, shift in (("a", 0.0), ("b", 50.0), ("flat", -50.0)):
        y = base["co2"].to_numpy(dtype=float, copy=True) + shift
        if sid == "flat":
            y[320:] = 280.0
        parts.append(base.assign(co2=y, site=sid))
    pd.concat(parts).sort_values("date", kind="stable").to_csv(path, index=False)
    return path


def test_a_panel_leaves_out_its_unscorable_series_names_it_and_scores_the_rest(seeded: Cli) -> None:
    path = _panel(seeded.root / "panel.csv")
    proc = seeded(*SMOKE, f"data.path={path}", "data.series_column=site", "run_id=sites")
    assert proc.returncode == 0, proc.stderr[-3000:]
    paths = RunPaths(seeded.artifacts, "sites")
    meta = json.loads(paths.meta_json.read_text())["panel"]
    assert meta["series_ids"] == ["a", "b"]
    assert list(meta["left_out"]) == ["flat"]
    assert meta["left_out"]["flat"].startswith(
        "cannot be scored: the test part (rows 320..399) holds one observed target value only (280)"
    )
    per_series = pd.read_csv(paths.per_series_csv)
    assert per_series["site"].tolist() == ["a", "b"]
    metrics = json.loads(paths.metrics_json.read_text())
    assert metrics["panel"]["n_series"] == 2
    means = [v for scores in metrics["panel"]["mean"].values() for v in scores.values()]
    assert len(means) == 15 and all(math.isfinite(v) for v in means)
    assert metrics["panel"]["mean"]["model"]["mase"] == pytest.approx(per_series["mase"].mean())
    assert "1 series left out (meta.json)" in paths.report_md.read_text()
    run = _run(seeded, "sites")
    assert run.info.status == "FINISHED" and math.isfinite(run.data.metrics["mean_mase"])
