"""Quantile forecasts through the real command: bad levels are refused with the numbers and nothing
written; a conformal run prints coverage, width and MSIS and serves quantile columns from its logged model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import Cli


def open_bundled() -> str:
    """The rows of the bundled weekly CO2 table, without its header."""
    path = Path(__file__).resolve().parents[1] / "splineforecast" / "datasets" / "co2_tiny.csv"
    return path.read_text().split("\n", 1)[1]


BAD = {
    "outside": ("model.quantiles=[0.05,0.5,1.5]", "[1.5] are outside (0, 1)"),
    "unsorted": ("model.quantiles=[0.95,0.5,0.05]", "[0.95, 0.5, 0.05]"),
    "duplicate": ("model.quantiles=[0.05,0.5,0.5,0.95]", "[0.5] repeat"),
    "no_median": ("model.quantiles=[0.05,0.95]", "0.5 (the median"),
    "calibration": ("model.calibration=isotonic", "`model.calibration` (isotonic)"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_quantile_settings_exit_25_with_the_numbers_and_write_nothing(cli: Cli, case: str) -> None:
    override, numbers = BAD[case]
    proc = cli("data=tiny", "trainer=smoke", override)
    assert proc.returncode == 25, proc.stderr
    payload = json.loads(proc.stderr.strip().splitlines()[-1])
    assert payload["error"]["code"] == "CONFIG_ERROR"
    assert numbers in payload["error"]["message"]
    assert not cli.artifacts.exists() and not (cli.root / "mlruns").exists()


HORIZON = 4  # data=tiny
LEVELS = [0.025, 0.05, 0.5, 0.95, 0.975]
COLUMNS = ["co2_q0.025", "co2_q0.05", "co2_q0.5", "co2_q0.95", "co2_q0.975"]
LOAD = """
import json, sys
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
out = model.predict(pd.read_csv(sys.argv[3]))
outputs = model.metadata.get_output_schema().input_names()
rows = out.drop(columns="date").to_dict(orient="list")
print(json.dumps({"columns": list(out.columns), "rows": rows, "schema": outputs}))
"""


@pytest.mark.slow
def test_conformal_quantile_run_prints_interval_scores_and_serves_quantile_columns(seeded: Cli) -> None:
    levels = "model.quantiles=[" + ",".join(map(str, LEVELS)) + "]"
    proc = seeded("data=tiny", "trainer=smoke", levels, "model.calibration=conformal", "run_id=uq")
    assert proc.returncode == 0, proc.stderr
    head = next(line for line in proc.stdout.splitlines() if line.startswith("intervals"))
    assert head.split()[1:] == ["coverage_95", "width_95", "msis_95", "coverage_90", "width_90", "msis_90", "crps"]
    rows = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines() if len(line.split()) == 8}
    assert {"model", "naive", "seasonal_naive"} <= set(rows)
    metrics = json.loads((seeded.artifacts / "metrics" / "uq" / "metrics.json").read_text())
    unc = metrics["uncertainty"]
    assert unc["levels"] == LEVELS and unc["calibration"] == "conformal"
    assert float(rows["model"][0]) == pytest.approx(unc["scores"]["model"]["coverage_95"], rel=1e-3)
    assert len(unc["per_horizon"]["model"]["msis_95"]) == HORIZON
    _assert_test_forecast(seeded.artifacts / "metrics" / "uq" / "test_forecast.csv", metrics)
    calibration = json.loads((seeded.artifacts / "model" / "uq" / "calibration.json").read_text())
    assert calibration["run_id"] == "uq" and calibration["method"] == "cqr_relative" and calibration["levels"] == LEVELS
    run_id = next(line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("MLflow run id"))
    recent = seeded.root / "recent.csv"
    recent.write_text("date,co2\n" + "".join(open_bundled().splitlines(keepends=True)[-157:]))
    done = seeded.run(
        [sys.executable, "-c", LOAD, seeded.tracking_uri, f"runs:/{run_id}/model", str(recent)], timeout=300
    )
    assert done.returncode == 0, done.stderr
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["columns"] == ["date", "step", "co2", *COLUMNS] and served["schema"] == served["columns"]
    table = np.array([served["rows"][c] for c in COLUMNS])
    assert table.shape == (5, HORIZON) and (np.diff(table, axis=0) >= 0).all()
    assert np.allclose(table[2], served["rows"]["co2"])  # the median is the point forecast
    predicted = seeded("stage=predict", "run_id=uq", f"data.path={recent}")
    assert predicted.returncode == 0, predicted.stderr
    csv = (seeded.artifacts / "predictions" / "uq" / "forecast.csv").read_text().splitlines()
    assert csv[0].split(",") == ["date", "step", "co2", *COLUMNS]
    assert np.allclose([float(v) for v in csv[1].split(",")[3:]], table[:, 0])


def _assert_test_forecast(path: Path, metrics: dict) -> None:
    """test_forecast.csv holds each test window's 1-step forecast and levels: the numbers metrics.json scored."""
    table = pd.read_csv(path, float_precision="round_trip")
    assert list(table.columns) == ["timestamp", "actual", "forecast", *COLUMNS]
    assert len(table) == metrics["windows"]["test"] and table[COLUMNS].notna().all().all()
    assert (np.diff(table[COLUMNS].to_numpy(), axis=1) >= 0).all()
    np.testing.assert_allclose(table["co2_q0.5"], table["forecast"])  # the median is the point forecast
    seen = table[table["actual"].notna()]
    step = {k: v[0] for k, v in metrics["uncertainty"]["per_horizon"]["model"].items()}
    lo, hi, y = seen["co2_q0.05"], seen["co2_q0.95"], seen["actual"]
    assert (hi - lo).mean() == pytest.approx(step["width_90"], rel=1e-9)
    assert ((lo <= y) & (y <= hi)).mean() == pytest.approx(step["coverage_90"])
    assert (seen["forecast"] - y).abs().mean() == pytest.approx(metrics["per_horizon"]["model"]["mae"][0], rel=1e-9)
