"""MLflow's own records of a run: the data as datasets (the table, the train/val/test parts), the model's
signature and input example (validated and served in fresh processes), the registry (models:/NAME@ALIAS),
the source version tags; and the refusals of tracking.register / tracking.alias."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import Cli

from splineforecast import __version__, pipeline
from splineforecast.artifacts import RunPaths
from splineforecast.config import Config
from splineforecast.contracts import PanelRawInputs, check_processed, check_raw
from splineforecast.errors import ContractError
from splineforecast.lineage import (
    CONTEXT_TAG,
    GIT_COMMIT_TAG,
    VERSION_TAG,
    history_example,
    model_signature,
    run_inputs,
)
from splineforecast.records import ServingSettings

Compose = Callable[[list[str]], Config]

RUN_ID, MODEL, ALIAS = "native", "co2_native", "champion"
LOOKBACK, HORIZON, EXTRA = 16, 4, 4  # data=tiny; the example's rows beyond the lookback
TINY_CSV = Path(str(resources.files("splineforecast") / "datasets" / "co2_tiny.csv"))
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- refusals: nothing is written


@pytest.mark.slow
def test_an_alias_without_a_registered_model_exits_25_and_writes_nothing(cli: Cli) -> None:
    proc = cli("data=tiny", "trainer=smoke", f"tracking.alias={ALIAS}")
    assert proc.returncode == 25, proc.stderr
    payload = json.loads(proc.stderr.strip().splitlines()[-1])
    assert payload["error"]["code"] == "CONFIG_ERROR"
    message = payload["error"]["message"]
    assert f"tracking.alias={ALIAS}" in message and "tracking.register" in message
    assert not cli.artifacts.exists() and not (cli.root / "mlruns").exists()


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["tracking.register='my model'"], "tracking.register='my model'"),
        (["tracking.register=m", "tracking.alias=latest"], "tracking.alias='latest'"),
        (["tracking.register=m", "tracking.alias=v3"], "tracking.alias='v3'"),
        (["tracking.register=m", "tracking.uri=file:///tmp/mlruns"], "the file store `file:///tmp/mlruns`"),
    ],
)
def test_registry_keys_are_checked_at_composition(
    compose: Compose, monkeypatch: pytest.MonkeyPatch, overrides: list[str], named: str
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ContractError) as err:
        compose(["data=tiny", *overrides])
    assert err.value.exit_code == 25 and named in err.value.message


# ---------------------------------------------------------------- the signature and example of a panel


def test_a_panel_models_history_holds_its_series_column(compose: Compose, tmp_path: Path) -> None:
    base = pd.read_csv(TINY_CSV, dtype=str)
    sites = pd.concat([base.assign(site=s) for s in ("north", "south", "west", "east")]).sort_values("date")
    sites.to_csv(tmp_path / "sites.csv", index=False)
    cfg = compose(["data=tiny", f"data.path={tmp_path / 'sites.csv'}", "data.series_column=site"])
    raw = check_raw(cfg)
    example = history_example(raw, None, "date", None, LOOKBACK)
    assert example is not None and list(example.columns) == ["site", "date", "co2"]
    assert example.groupby("site").size().to_dict() == {s: LOOKBACK + EXTRA for s in ("east", "north", "south")}
    assert isinstance(raw, PanelRawInputs)
    train_ends = {s.id: f"{s.frame.index[s.split.train[1] - 1]:%Y-%m-%d}" for s in raw.table.series[:3]}
    assert example.groupby("site")["date"].last().to_dict() == train_ends  # the first three series, by id
    settings = ServingSettings("p", "co2", [], "W-SAT", "date", None, LOOKBACK, HORIZON, series_column="site")
    inputs = json.loads(model_signature(settings)["inputs"])
    assert [(c["name"], c["required"]) for c in inputs] == [("site", True), ("date", True), ("co2", True)]


# ---------------------------------------------------------------- end to end: one registered run


@pytest.fixture(scope="module")
def registered(isolated_module: tuple[Path, list[str]], compose: Compose, migrated_store: Path) -> dict[str, Any]:
    """One finished data=tiny trainer=smoke run, registered as MODEL with ALIAS."""
    root, isolation = isolated_module
    Cli(root).seed_store(migrated_store)
    overrides = ["data=tiny", "trainer=smoke", f"run_id={RUN_ID}", f"tracking.register={MODEL}"]
    overrides += [f"tracking.alias={ALIAS}", *isolation]
    cfg = compose(overrides)
    result = pipeline.run(cfg, overrides=overrides)
    return {"root": root, "cfg": cfg, "result": result, "uri": result.tracking_uri}


def _env(uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
    return {**env, "MLFLOW_TRACKING_URI": uri, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def _run(registered: dict[str, Any]) -> Any:
    import mlflow

    mlflow.set_tracking_uri(registered["uri"])
    (run,) = mlflow.search_runs(experiment_names=["splineforecast"], output_format="list")
    return run


@pytest.mark.slow
def test_search_runs_returns_the_table_and_its_parts_as_datasets(registered: dict[str, Any]) -> None:
    run = _run(registered)
    inputs = {next(t.value for t in d.tags if t.key == CONTEXT_TAG): d.dataset for d in run.inputs.dataset_inputs}
    assert sorted(inputs) == ["raw", "test", "train", "val"]
    assert {d.name for d in inputs.values()} == {"tiny"}  # data=tiny: the Dataset column names it
    assert len({d.digest for d in inputs.values()}) == 4
    table = inputs["raw"]
    assert json.loads(table.source) == {"uri": str(TINY_CSV)}
    assert json.loads(table.profile)["num_rows"] == len(pd.read_csv(TINY_CSV))
    columns = json.loads(table.schema)["mlflow_colspec"]
    assert [(c["name"], c["type"]) for c in columns] == [("date", "datetime"), ("co2", "double")]
    contract = json.loads(RunPaths(registered["root"] / "artifacts", RUN_ID).split_contract_json.read_text())
    for part in ("train", "val", "test"):
        rows = contract[part]["stop"] - contract[part]["start"]
        assert json.loads(inputs[part].profile)["num_rows"] == rows, part
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    assert run.data.tags[VERSION_TAG] == __version__
    assert run.data.tags[GIT_COMMIT_TAG] == commit.stdout.strip()
    assert run.data.tags["splineforecast.registered_model"] == f"{MODEL}/1"


@pytest.mark.slow
def test_a_resumed_run_logs_no_dataset_twice_and_keeps_its_model_version(registered: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    from splineforecast.tracking import Tracker, log_inputs, register_model

    cfg, result = registered["cfg"], registered["result"]
    tracker = Tracker(registered["uri"], cfg.tracking.experiment, RUN_ID)
    tracker.mlflow_run_id = result.mlflow_run_id  # what claim() reopens for a killed run
    paths = RunPaths(Path(cfg.paths.artifacts), RUN_ID)
    log_inputs(tracker, *run_inputs(cfg, paths, None, check_processed(cfg, paths, paths.processed())))
    assert register_model(tracker, MODEL, ALIAS) == "1"
    client = MlflowClient(registered["uri"])
    assert len(client.get_run(result.mlflow_run_id).inputs.dataset_inputs) == 4
    assert [str(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")] == ["1"]


_VALIDATE = """
import json, sys, warnings
import mlflow
from mlflow.models import validate_serving_input
local = mlflow.artifacts.download_artifacts(sys.argv[1])
example = open(local + "/serving_input_example.json").read()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # deprecated for mlflow.models.predict since 3.13
    out = validate_serving_input(sys.argv[1], example)
print(json.dumps({"example": json.loads(example), "forecast": json.loads(out.to_json(orient="records"))}))
"""


@pytest.mark.slow
def test_the_input_example_validates_in_a_fresh_process(registered: dict[str, Any]) -> None:
    root, uri = registered["root"], registered["uri"]
    argv = [sys.executable, "-c", _VALIDATE, f"models:/{MODEL}@{ALIAS}"]
    done = subprocess.run(argv, cwd=root, env=_env(uri), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    split = payload["example"]["dataframe_split"]
    assert split["columns"] == ["date", "co2"] and len(split["data"]) == LOOKBACK + EXTRA
    contract = json.loads(RunPaths(root / "artifacts", RUN_ID).split_contract_json.read_text())
    assert split["data"][-1][0] == contract["train"]["last"][:10]  # the train part's last rows
    forecast = pd.DataFrame(payload["forecast"])
    assert forecast["step"].tolist() == [1, 2, 3, 4] and forecast["co2"].between(300, 340).all()


@pytest.mark.slow
def test_mlflow_models_predict_serves_the_alias(registered: dict[str, Any]) -> None:
    root, uri = registered["root"], registered["uri"]
    local = root / "cli-example"
    import mlflow

    mlflow.set_tracking_uri(uri)
    example = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}@{ALIAS}", dst_path=str(local)))
    command = [str(Path(sys.executable).parent / "mlflow"), "models", "predict", "-m", f"models:/{MODEL}@{ALIAS}"]
    command += ["-i", str(example / "serving_input_example.json"), "--env-manager", "local"]
    done = subprocess.run(command, cwd=root, env=_env(uri), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    predictions = json.loads(done.stdout.strip().splitlines()[-1])["predictions"]
    assert [p["step"] for p in predictions] == [1, 2, 3, 4]
    assert all(300 < p["co2"] < 340 for p in predictions)
