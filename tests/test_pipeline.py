"""End to end: data=tiny trainer=smoke into a temporary MLflow store; the CLI's exit codes.

The command trained to the end in a new folder: tests/test_scripts.py (scripts/run_e2e.sh runs it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from api_helpers import AUTH, TestClient, settings_for
from conftest import Cli

from splineforecast import pipeline
from splineforecast.api import create_app, runs
from splineforecast.artifacts import RunPaths
from splineforecast.config import Config
from splineforecast.data.processed import NPZ_KEYS
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.evaluation import BASELINES, METRICS
from splineforecast.models.module import ForecastModule
from splineforecast.tracking import RUN_ID_TAG

Compose = Callable[[list[str]], Config]

RUN_ID = "e2e"
MLFLOW_FILES = {
    "processed/processed.npz",
    "processed/meta.json",
    "processed/split_contract.json",
    "preprocessor/preprocessor.json",
    "checkpoints/best.ckpt",
    "checkpoints/last.ckpt",
    "metrics.json",
    "test_forecast.csv",
    "report.md",
    "config/config.yaml",
    "config/overrides.yaml",
    "model/MLmodel",
    "model/pyfunc_model.py",
    "model/artifacts/serving.json",
}


def _overrides(isolation: list[str], run_id: str = RUN_ID) -> list[str]:
    return ["data=tiny", "trainer=smoke", f"run_id={run_id}", *isolation]


def _list_all(client: mlflow.MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        out |= _list_all(client, run_id, item.path) if item.is_dir else {item.path}
    return out


@pytest.fixture(scope="module")
def finished(isolated_module: tuple[Path, list[str]], compose: Compose) -> dict[str, Any]:
    """One finished run of data=tiny trainer=smoke, shared by the tests below."""
    root, isolation = isolated_module
    overrides = _overrides(isolation)
    cfg = compose(overrides)
    result = pipeline.run(cfg, overrides=overrides)
    return {"root": root, "cfg": cfg, "result": result, "paths": RunPaths(root / "artifacts", RUN_ID)}


# the local layout as the README documents it, spelled out here rather than asked of RunPaths
LOCAL_FILES = [
    f"processed/{RUN_ID}/processed.npz",
    f"processed/{RUN_ID}/meta.json",
    f"processed/{RUN_ID}/split_contract.json",
    f"preprocessor/{RUN_ID}/preprocessor.json",
    f"checkpoints/{RUN_ID}/best.ckpt",
    f"checkpoints/{RUN_ID}/last.ckpt",
    f"metrics/{RUN_ID}/metrics.json",
    f"metrics/{RUN_ID}/test_forecast.csv",
    f"reports/{RUN_ID}/report.md",
    f"reports/{RUN_ID}/forecast.png",
    f"config/{RUN_ID}/config.yaml",
    f"config/{RUN_ID}/overrides.yaml",
    f"model/{RUN_ID}/serving.json",
]


def test_local_artifacts_follow_the_documented_layout(finished: dict[str, Any]) -> None:
    root = finished["root"] / "artifacts"
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert found == sorted(LOCAL_FILES)  # nothing missing, nothing else (no temp files left behind)
    assert all((root / f).stat().st_size > 0 for f in LOCAL_FILES)


def test_artifact_files_follow_the_umask(finished: dict[str, Any]) -> None:
    """A teammate can read a run's files when the umask lets them (not 0600 like a bare temp file)."""
    umask = os.umask(0)
    os.umask(umask)
    root = finished["root"] / "artifacts"
    modes = {f: (root / f).stat().st_mode & 0o777 for f in LOCAL_FILES}
    assert modes == {f: 0o666 & ~umask for f in LOCAL_FILES}


def test_mlflow_run_holds_every_artifact(finished: dict[str, Any]) -> None:
    result = finished["result"]
    assert result.tracking_uri == f"sqlite:///{finished['root']}/mlruns/mlflow.db"
    client = mlflow.MlflowClient(result.tracking_uri)
    assert MLFLOW_FILES <= _list_all(client, result.mlflow_run_id)


def test_mlflow_run_name_tag_status_params_and_metrics(finished: dict[str, Any]) -> None:
    result = finished["result"]
    assert result.run_id == RUN_ID
    run = mlflow.MlflowClient(result.tracking_uri).get_run(result.mlflow_run_id)
    assert run.info.run_name == RUN_ID
    assert run.data.tags[RUN_ID_TAG] == RUN_ID
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "lstm" and run.data.params["data.name"] == "tiny"
    metrics = result.result.metrics
    for name in METRICS:
        if np.isfinite(metrics[name]):
            assert run.data.metrics[name] == pytest.approx(metrics[name])
    assert run.data.metrics["naive/mae"] == pytest.approx(result.result.baselines["naive"]["mae"])


def test_metrics_json(finished: dict[str, Any]) -> None:
    paths: RunPaths = finished["paths"]
    metrics = json.loads(paths.metrics_json.read_text(encoding="utf-8"))
    assert metrics["run_id"] == RUN_ID
    assert set(metrics["metrics"]) == set(METRICS)
    assert set(metrics["baselines"]) == set(BASELINES)
    for scores in (metrics["metrics"], *metrics["baselines"].values()):
        assert set(scores) == set(METRICS)
        assert all(np.isfinite(v) for v in scores.values())
        assert scores["rmse"] == pytest.approx(np.sqrt(scores["mse"]))
    assert metrics["n_points"] > 0
    assert metrics["metrics"] == finished["result"].result.metrics
    assert metrics["schema_version"] == "splineforecast.metrics.v1"
    report = (paths.report_dir / "report.md").read_text(encoding="utf-8")
    assert RUN_ID in report and "seasonal_naive" in report


def test_test_forecast_csv_holds_the_1_step_forecast_of_every_test_window(finished: dict[str, Any]) -> None:
    paths: RunPaths = finished["paths"]
    result = finished["result"].result
    table = pd.read_csv(paths.test_forecast_csv)
    assert list(table.columns) == ["timestamp", "actual", "forecast"]  # no quantile levels in this run
    contract = json.loads(paths.split_contract_json.read_text(encoding="utf-8"))
    with np.load(paths.processed_npz, allow_pickle=False) as npz:
        stamps, raw = npz["timestamps"], npz["targets_raw"][:, 0]
    origins = contract["test"]["start"] + np.arange(result.windows["test"])  # each window's first forecast row
    assert len(table) == result.windows["test"] and origins[-1] == contract["test"]["stop"] - 4  # horizon 4
    times = pd.to_datetime(table["timestamp"]).to_numpy().astype("datetime64[ns]").astype(np.int64)
    np.testing.assert_array_equal(times, stamps[origins])
    np.testing.assert_array_equal(table["actual"].to_numpy(), raw[origins])  # the truth; empty where unobserved
    assert table["actual"].isna().sum() == np.isnan(raw[origins]).sum()
    assert table["forecast"].notna().all()
    mae = (table["forecast"] - table["actual"]).abs().mean()  # over the observed rows
    assert mae == pytest.approx(result.scores.per_horizon["model"]["mae"][0], rel=1e-9)


def test_the_api_answers_the_test_forecast_bounded_and_null_for_a_run_without_it(
    finished: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, root = finished["result"], finished["root"] / "artifacts"

    def get_run(artifacts: Path) -> dict[str, Any]:
        store = runs.RunStore(result.tracking_uri, finished["cfg"].tracking.experiment, artifacts)
        app = create_app(settings_for(tmp_path, artifact_root=artifacts, tracking_uri=result.tracking_uri), store=store)
        response = TestClient(app).get(f"/api/v1/runs/{RUN_ID}", headers=AUTH)
        assert response.status_code == 200, response.text
        return response.json()

    answer = get_run(root)["test_forecast"]
    table = pd.read_csv(finished["paths"].test_forecast_csv, float_precision="round_trip")
    assert answer["columns"] == list(table.columns) and answer["series_column"] is None
    assert answer["truncated"] is False and len(answer["rows"]) == len(table)
    assert [r[0] for r in answer["rows"]] == table["timestamp"].tolist()
    numbers = np.array([[np.nan if v is None else v for v in r[1:]] for r in answer["rows"]], dtype=np.float64)
    np.testing.assert_array_equal(numbers, table[["actual", "forecast"]].to_numpy())
    monkeypatch.setattr(runs, "MAX_TEST_ROWS", 5)
    bounded = get_run(root)["test_forecast"]
    assert bounded["rows"] == answer["rows"][:5] and bounded["truncated"] is True
    bare = get_run(tmp_path / "elsewhere")  # the tracked run, without its local files (an older run's case)
    assert bare["run_id"] == RUN_ID and bare["test_forecast"] is None


def test_checkpoints_load_without_pickle(finished: dict[str, Any]) -> None:
    paths: RunPaths = finished["paths"]
    cfg: Config = finished["cfg"]
    for name in ("best.ckpt", "last.ckpt"):
        state = torch.load(paths.checkpoints_dir / name, map_location="cpu", weights_only=True)
        module = ForecastModule(**state["hyper_parameters"])
        module.load_state_dict(state["state_dict"])  # strict: every key matches
        assert state["hyper_parameters"]["spec"]["lookback"] == cfg.data.lookback
        x = torch.zeros(2, cfg.data.lookback, 1)
        assert module(x).shape == (2, cfg.data.horizon, 1)


def test_processed_artifacts(finished: dict[str, Any]) -> None:
    paths: RunPaths = finished["paths"]
    with np.load(paths.processed_npz, allow_pickle=False) as npz:
        assert set(npz.files) == {*NPZ_KEYS, "targets_raw"}
        arrays = {k: npz[k] for k in npz.files}
    contract = json.loads(paths.split_contract_json.read_text(encoding="utf-8"))
    meta = json.loads(paths.meta_json.read_text(encoding="utf-8"))
    pre = json.loads(paths.preprocessor_json.read_text(encoding="utf-8"))
    assert contract["run_id"] == meta["run_id"] == pre["run_id"] == RUN_ID
    assert (contract["lookback"], contract["horizon"]) == (16, 4)
    n = contract["test"]["stop"]
    assert contract["train"]["start"] == 0 and contract["train"]["stop"] == contract["val"]["start"]
    assert arrays["values"].shape == (n, 1) and arrays["values"].dtype == np.float32
    assert arrays["observed_mask"].shape == (n, 1) and arrays["observed_mask"].dtype == bool
    assert arrays["timestamps"].dtype == np.int64 and (np.diff(arrays["timestamps"]) > 0).all()
    assert arrays["feature_names"].tolist() == ["co2"] and arrays["target_indices"].tolist() == [0]
    raw = pd.read_csv(Path(meta["source"]["path"]))["co2"].to_numpy()[:n]  # tiny: no missing rows
    assert np.array_equal(arrays["observed_mask"][:, 0], ~np.isnan(raw))
    np.testing.assert_array_equal(arrays["targets_raw"][:, 0], raw)  # the raw observations metrics score
    assert meta["n_imputed"]["co2"] > 0
    a, b = contract["train"]["start"], contract["train"]["stop"]
    train = arrays["values"][a:b, 0][arrays["observed_mask"][a:b, 0]]
    assert abs(train.mean()) < 1e-4 and train.std() == pytest.approx(1.0, abs=1e-3)  # scaled on train


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_rerun_of_a_finished_run_conflicts_unless_overwrite(isolated: list[str], compose: Compose) -> None:
    overrides = _overrides(isolated, "again")
    first = pipeline.run(compose(overrides), overrides=overrides)
    with pytest.raises(ContractError) as info:
        pipeline.run(compose(overrides), overrides=overrides)
    assert info.value.code is ErrorCode.RUN_CONFLICT and info.value.exit_code == 29
    assert "again" in info.value.message
    replaced = pipeline.run(compose([*overrides, "overwrite=true"]), overrides=overrides)
    assert replaced.result is not None and replaced.mlflow_run_id != first.mlflow_run_id
    client = mlflow.MlflowClient(replaced.tracking_uri)
    assert client.get_run(first.mlflow_run_id).info.lifecycle_stage == "deleted"
    live = client.search_runs(
        [client.get_run(replaced.mlflow_run_id).info.experiment_id], f"tags.`{RUN_ID_TAG}` = 'again'"
    )
    assert [r.info.run_id for r in live] == [replaced.mlflow_run_id]


REFUSALS = [
    (["model=grux"], "grux"),
    (["data.lookback=0"], "data.lookback"),
    (["run_id=../evil"], "../evil"),
]


@pytest.mark.parametrize(("args", "named"), REFUSALS, ids=[a[0] for a, _ in REFUSALS])
def test_cli_refusal_exit_code_and_payload(cli: Cli, args: list[str], named: str) -> None:
    proc = cli(*args, store=False)
    assert proc.returncode == 25, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines  # the payload alone: no log line, no traceback
    payload = json.loads(lines[0])
    assert set(payload) == {"ok", "exit_code", "error"}
    assert set(payload["error"]) == {"code", "message", "type"}
    assert payload["ok"] is False and payload["exit_code"] == 25
    assert payload["error"]["code"] == "CONFIG_ERROR"
    assert named in payload["error"]["message"] and isinstance(payload["error"]["type"], str)
    assert not (cli.root / "mlruns").exists()  # refused before any tracking
