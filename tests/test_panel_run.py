"""Panels through the real command: a one-series panel equals the one-series path; a panel of three
series trains, scores per series, logs per_series.csv, forecasts every series (stage=predict and the
pyfunc model in a fresh process, the API) and names an unknown series; a killed panel run resumes into the
weights of a straight run (that one run in this process). Each folder starts with a migrated, empty
tracking store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from api_helpers import TOKEN, settings_for
from conftest import Cli, run_here
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from splineforecast.api import create_app
from splineforecast.artifacts import RunPaths

pytestmark = pytest.mark.slow

SMOKE = ["data=tiny", "trainer=smoke"]
SHIFTS = {"north": 0.0, "south": 100.0, "west": -50.0}


def _tiny() -> pd.DataFrame:
    return pd.read_csv(Path(str(resources.files("splineforecast") / "datasets" / "co2_tiny.csv")), dtype=str)


def _long_csv(path: Path, shifts: dict[str, float]) -> Path:
    """The bundled tiny CO2 table once per series id, shifted per series, rows of all series interleaved."""
    base = _tiny()
    parts = [base.assign(co2=pd.to_numeric(base["co2"]) + s).assign(site=sid) for sid, s in shifts.items()]
    pd.concat(parts).sort_values("date", kind="stable").to_csv(path, index=False)
    return path


def _metrics(cli: Cli, run_id: str) -> dict[str, Any]:
    return json.loads(RunPaths(cli.artifacts, run_id).metrics_json.read_text())


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_panel_of_one_series_gives_the_one_series_numbers(seeded: Cli) -> None:
    cli = seeded
    path = _long_csv(cli.root / "one.csv", {"only": 0.0})
    same = [*SMOKE, "model.loss=mae", "model.skip_init=seasonal", "data.season_length=4"]  # a panel's auto ones
    _ok(cli(*same, "run_id=plain"))
    _ok(cli(*same, f"data.path={path}", "data.series_column=site", "data.scaler=per_series", "run_id=panel"))
    plain, panel = _metrics(cli, "plain"), _metrics(cli, "panel")
    for key in ("metrics", "baselines", "per_horizon", "n_points"):
        assert panel[key] == plain[key], key
    assert panel["panel"]["n_series"] == 1 and "panel" not in plain
    a = np.load(RunPaths(cli.artifacts, "plain").processed_npz)
    b = np.load(RunPaths(cli.artifacts, "panel").processed_npz)
    np.testing.assert_array_equal(a["values"], b["values"])
    assert b["series_ids"].tolist() == ["only"] and b["series_offsets"].tolist() == [0, len(a["values"])]


def test_a_panel_trains_scores_each_series_and_forecasts_every_series(seeded: Cli) -> None:
    cli = seeded
    path = _long_csv(cli.root / "long.csv", SHIFTS)
    _ok(cli(*SMOKE, f"data.path={path}", "data.series_column=site", "model.series_embedding=3", "run_id=sites"))
    paths = RunPaths(cli.artifacts, "sites")
    weights = torch.load(paths.best_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert tuple(weights["net.embed.weight"].shape) == (3, 3)  # a vector per series
    per_series = pd.read_csv(paths.per_series_csv, dtype={"site": str})
    assert sorted(per_series["site"]) == sorted(SHIFTS) and (per_series["n_points"] > 0).all()
    metrics = _metrics(cli, "sites")
    assert metrics["panel"]["mean"]["model"]["mase"] == pytest.approx(per_series["mase"].mean())
    assert metrics["panel"]["mean"]["seasonal_naive"]["smape"] == pytest.approx(
        per_series["seasonal_naive_smape"].mean()
    )
    tested = _assert_test_forecast(paths, path, metrics["windows"]["test"])
    contract = json.loads(paths.split_contract_json.read_text())
    assert contract["schema_version"] == "splineforecast.panel_split_contract.v1"
    assert [s["id"] for s in contract["series"]] == sorted(SHIFTS)
    report = paths.report_md.read_text()
    assert "MASE per series" in report and paths.mase_png.is_file() and paths.worst_png.is_file()
    client = MlflowClient(cli.tracking_uri)
    (run,) = client.search_runs(client.get_experiment_by_name("splineforecast").experiment_id)
    assert {"per_series.csv", "test_forecast.csv"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    assert run.data.metrics["mean_mase"] == pytest.approx(per_series["mase"].mean())

    _ok(cli(f"data.path={path}", "run_id=sites", "stage=predict"))
    forecast = pd.read_csv(paths.forecast_csv, dtype={"site": str})
    assert forecast.groupby("site").size().to_dict() == {s: 4 for s in SHIFTS}
    level = forecast.groupby("site")["co2"].mean()
    assert level["south"] - level["north"] == pytest.approx(100.0, abs=5.0)  # each in its own units

    history = pd.read_csv(path, dtype=str)
    script = (
        "import sys, mlflow.pyfunc, pandas as pd\n"
        f"mlflow.set_tracking_uri({cli.tracking_uri!r})\n"
        f"model = mlflow.pyfunc.load_model('runs:/{run.info.run_id}/model')\n"
        "out = model.predict(pd.read_csv(sys.argv[1], dtype=str))\n"
        "print(out.groupby('site').size().to_dict())\n"
    )
    fresh = cli.run([sys.executable, "-c", script, str(path)])
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert fresh.stdout.strip().splitlines()[-1] == str({s: 4 for s in sorted(SHIFTS)})

    api = TestClient(create_app(settings_for(cli.root)), raise_server_exceptions=False)
    answer = api.get("/api/v1/runs/sites", headers={"X-API-Token": TOKEN}).json()["test_forecast"]
    assert answer["series_column"] == "site" and answer["columns"] == list(tested.columns)
    assert [r[:2] for r in answer["rows"]] == tested[["site", "timestamp"]].to_numpy().tolist()
    recent = history.groupby("site").tail(30)
    body = {"columns": list(recent.columns), "data": recent.to_numpy().tolist()}
    served = api.post("/api/v1/runs/sites/forecast", json=body, headers={"X-API-Token": TOKEN})
    assert served.status_code == 200, served.text
    rows = pd.DataFrame(served.json()["forecast"])
    assert rows.groupby("site").size().to_dict() == {s: 4 for s in SHIFTS}
    np.testing.assert_allclose(rows.sort_values(["site", "step"])["co2"], forecast.sort_values(["site", "step"])["co2"])

    unknown = cli.root / "unknown.csv"
    history.assign(site=history["site"].replace({"west": "east"})).to_csv(unknown, index=False)
    refused = cli(f"data.path={unknown}", "run_id=sites", "stage=predict")
    assert refused.returncode == 28
    assert (
        "series 'east': not one of the 3 trained series"
        in json.loads(refused.stderr.strip().splitlines()[-1])["error"]["message"]
    )


def _assert_test_forecast(paths: RunPaths, source: Path, n_windows: int) -> pd.DataFrame:
    """The panel's test_forecast.csv: the series column first, each series' windows, its own raw truth."""
    tested = pd.read_csv(paths.test_forecast_csv, dtype={"site": str, "timestamp": str})
    assert list(tested.columns) == ["site", "timestamp", "actual", "forecast"]
    assert tested.groupby("site").size().to_dict() == {s: n_windows // len(SHIFTS) for s in SHIFTS}
    raw = pd.read_csv(source, dtype={"site": str}, parse_dates=["date"])
    both = tested.assign(date=pd.to_datetime(tested["timestamp"])).merge(raw, on=["site", "date"], validate="1:1")
    assert len(both) == len(tested)
    np.testing.assert_array_equal(both["actual"], both["co2"])  # the series' own observations (gaps: empty)
    level = tested.groupby("site")["forecast"].mean()
    assert level["south"] - level["north"] == pytest.approx(100.0, abs=5.0)  # each in its own units
    return tested


def _epoch(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"]) if path.is_file() else -1


def test_a_killed_panel_run_resumes_into_the_weights_of_a_straight_run(
    seeded: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = seeded
    path = _long_csv(cli.root / "long.csv", SHIFTS)
    train = ["data=tiny", f"data.path={path}", "data.series_column=site", "data.max_windows_per_series=40"]
    train += ["trainer.enable_progress_bar=false", "trainer.max_epochs=3", "trainer.patience=100"]
    run_here(cli, monkeypatch, *train, "run_id=straight")  # the reference, in this process
    proc = cli.start(*train, "run_id=killed")
    last = RunPaths(cli.artifacts, "killed").last_ckpt
    deadline = time.monotonic() + 240
    while _epoch(last) < 0:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    assert _epoch(last) < 2  # killed before the end
    _ok(cli(*train, "run_id=killed"))
    for name in ("best_ckpt", "last_ckpt"):
        x = torch.load(getattr(RunPaths(cli.artifacts, "straight"), name), weights_only=True)["state_dict"]
        y = torch.load(getattr(RunPaths(cli.artifacts, "killed"), name), weights_only=True)["state_dict"]
        for key in x:
            torch.testing.assert_close(x[key], y[key], rtol=1e-5, atol=1e-6, msg=f"{name}: {key}")
    assert _metrics(cli, "killed")["metrics"] == pytest.approx(_metrics(cli, "straight")["metrics"])
