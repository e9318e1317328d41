"""Quantiles on a panel: a conformal quantile run of three series scores intervals per series (the means
over series in metrics.json, each series' in per_series.csv) and its forecaster serves nested quantile
columns for every series, in each series' own units."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import Cli, run_here

from splineforecast.artifacts import RunPaths
from splineforecast.serving import load_run_forecaster
from splineforecast.serving_panel import PanelForecaster

pytestmark = pytest.mark.slow

SHIFTS = {"north": 0.0, "south": 100.0, "west": -50.0}
LEVELS = "[0.025,0.1,0.5,0.9,0.975]"


def _long_csv(path: Path) -> Path:
    base = pd.read_csv(Path(str(resources.files("splineforecast") / "datasets" / "co2_tiny.csv")), dtype=str)
    parts = [base.assign(co2=pd.to_numeric(base["co2"]) + s).assign(site=sid) for sid, s in SHIFTS.items()]
    pd.concat(parts).to_csv(path, index=False)
    return path


def test_a_conformal_quantile_panel_scores_intervals_per_series_and_serves_them(
    seeded: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _long_csv(seeded.root / "long.csv")
    overrides = ["data=tiny", "trainer=smoke", f"data.path={path}", "data.series_column=site"]
    run_here(seeded, monkeypatch, *overrides, f"model.quantiles={LEVELS}", "model.calibration=conformal", "run_id=q")
    paths = RunPaths(seeded.artifacts, "q")
    unc = json.loads(paths.metrics_json.read_text())["uncertainty"]
    assert unc["mean_over"] == "series" and unc["calibration"] == "conformal"
    assert unc["levels"] == [0.025, 0.1, 0.5, 0.9, 0.975]
    rows = pd.read_csv(paths.per_series_csv, dtype={"site": str})
    assert sorted(rows["site"]) == sorted(SHIFTS)
    for name, prefix in (("model", ""), ("seasonal_naive", "seasonal_naive_")):
        for score in ("msis_95", "msis_80", "crps", "coverage_95", "width_80"):
            assert unc["scores"][name][score] == pytest.approx(rows[f"{prefix}{score}"].mean()), (name, score)
    assert ((rows["coverage_95"] >= 0) & (rows["coverage_95"] <= 1)).all() and (rows["width_95"] > 0).all()

    forecaster = load_run_forecaster(paths)
    assert isinstance(forecaster, PanelForecaster) and forecaster.calibration is not None
    history = pd.read_csv(path)
    frame = forecaster.predict(history)
    bands = frame[[f"co2_q{q}" for q in ("0.025", "0.1", "0.5", "0.9", "0.975")]].to_numpy()
    assert np.all(np.diff(bands, axis=1) >= 0)  # nested: each level at or above the one below
    assert np.any(bands[:, -1] > bands[:, 0])
    medians = frame.groupby("site")["co2_q0.5"].mean()
    # each series in its own units: the shifted series' bands sit about their shift apart
    assert medians["south"] - medians["north"] == pytest.approx(100.0, abs=15.0)
    assert medians["north"] - medians["west"] == pytest.approx(50.0, abs=15.0)
