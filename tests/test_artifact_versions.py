"""Artifacts across versions: a run made by splineforecast 0.1.0 still serves, and every reader refuses a
schema version it does not know (exit 22, the file and both versions named, nothing written).

The run in tests/fixtures/legacy_run was written by 0.1.0: metadata without `schema_version`, no
serving.json, and a pyfunc model whose code is that version's pyfunc_model.py.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import Cli, run_here

from splineforecast.api.runs import RunStore
from splineforecast.artifacts import RunPaths
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.records import EvalResult, Meta, ServingSettings, SplitContract

LEGACY = Path(__file__).parent / "fixtures" / "legacy_run"
TINY_CSV = Path(str(resources.files("splineforecast") / "datasets" / "co2_tiny.csv"))
HORIZON = 4  # the legacy run: data=tiny (lookback 16, horizon 4)


@pytest.fixture
def legacy(cli: Cli) -> Cli:
    """The 0.1.0 run copied under the cli's artifact root (run_id ``legacy``)."""
    shutil.copytree(LEGACY / "artifacts", cli.artifacts)
    return cli


def _tree(*roots: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for root in roots if root.exists() for p in sorted(root.rglob("*")) if p.is_file()}


def _payload(stderr: str) -> dict:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, lines  # the payload alone
    return json.loads(lines[0])


def _future(history: pd.DataFrame) -> pd.DatetimeIndex:
    return pd.date_range(history["date"].iloc[-1], periods=HORIZON + 1, freq="W-SAT")[1:]


@pytest.mark.slow
def test_a_legacy_run_forecasts_in_stage_predict(legacy: Cli) -> None:
    done = legacy("stage=predict", "run_id=legacy", "data=tiny")
    assert done.returncode == 0, done.stderr[-2000:]
    out = pd.read_csv(legacy.artifacts / "predictions" / "legacy" / "forecast.csv")
    assert list(out.columns) == ["date", "step", "co2"]
    assert (pd.DatetimeIndex(out["date"]) == _future(pd.read_csv(TINY_CSV))).all()
    assert out["co2"].between(310, 330).all(), out  # ppmv in 1965: original units


def test_a_legacy_pyfunc_model_loads_and_agrees_with_the_new_code(tmp_path: Path) -> None:
    history = pd.read_csv(TINY_CSV, dtype=str).tail(40)
    old = mlflow.pyfunc.load_model(str(LEGACY / "model")).predict(history)  # 0.1.0's pyfunc_model.py
    assert "splineforecast.serving.v1" in (LEGACY / "model" / "artifacts" / "serving.json").read_text()
    from splineforecast.serving import load_run_forecaster

    paths = RunPaths(tmp_path, "legacy")
    shutil.copytree(LEGACY / "artifacts", tmp_path, dirs_exist_ok=True)
    assert not paths.serving_json.exists()  # 0.1.0 wrote none: settings come from its config and files
    new = load_run_forecaster(paths).predict(history)
    assert (pd.DatetimeIndex(old["date"]) == _future(history)).all()
    pd.testing.assert_frame_equal(old, new)


def _bump(path: Path, key: str, value: str) -> None:
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, key: value}))


TRAIN_READERS = {
    "meta": ("processed/legacy/meta.json", "schema_version", Meta.SCHEMA),
    "split_contract": ("processed/legacy/split_contract.json", "schema_version", SplitContract.SCHEMA),
    "preprocessor": ("preprocessor/legacy/preprocessor.json", "format", "splineforecast.preprocessor.v1"),
}


@pytest.mark.parametrize("reader", sorted(TRAIN_READERS))
def test_stage_train_refuses_an_unknown_version(legacy: Cli, reader: str) -> None:
    name, key, known = TRAIN_READERS[reader]
    newer = known.rsplit(".", 1)[0] + ".v9"
    _bump(legacy.artifacts / name, key, newer)
    before = _tree(legacy.artifacts, legacy.root / "mlruns")
    done = legacy("stage=train", "run_id=legacy", "data=tiny", "trainer=smoke")
    assert done.returncode == 22, done.stderr[-2000:]
    error = _payload(done.stderr)["error"]
    assert error["code"] == "ARTIFACT_CONTRACT_ERROR"
    assert name.rsplit("/", 1)[1] in error["message"] and repr(newer) in error["message"]
    assert repr(known) in error["message"]
    assert _tree(legacy.artifacts, legacy.root / "mlruns") == before  # nothing written, no MLflow store


def test_stage_predict_refuses_an_unknown_serving_version(legacy: Cli) -> None:
    serving = legacy.artifacts / "model" / "legacy" / "serving.json"
    serving.parent.mkdir(parents=True)
    serving.write_text(json.dumps({"format": "splineforecast.serving.v9", "run_id": "legacy"}))
    before = _tree(legacy.artifacts)
    done = legacy("stage=predict", "run_id=legacy", "data=tiny")
    assert done.returncode == 22, done.stderr[-2000:]
    message = _payload(done.stderr)["error"]["message"]
    assert "serving.json" in message and "'splineforecast.serving.v9'" in message
    assert repr(ServingSettings.FORMAT) in message
    assert _tree(legacy.artifacts) == before  # no predictions folder


def test_metrics_json_of_an_unknown_version_is_refused_where_it_is_read(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path, "r")
    paths.metrics_json.parent.mkdir(parents=True)
    paths.metrics_json.write_text(json.dumps({"schema_version": "splineforecast.metrics.v9", "run_id": "r"}))
    store = RunStore(f"sqlite:///{tmp_path}/mlflow.db", "splineforecast", tmp_path)
    with pytest.raises(ContractError) as err:
        store.evaluation("r")
    assert err.value.code is ErrorCode.ARTIFACT_CONTRACT_ERROR
    assert "metrics.json" in err.value.message and repr(EvalResult.SCHEMA) in err.value.message


def test_legacy_metadata_without_a_version_reads_as_todays_layout() -> None:
    root = LEGACY / "artifacts"
    files = RunPaths(root, "legacy").processed()
    meta = files.read_meta()
    assert "schema_version" not in json.loads(files.meta_json.read_text())
    assert meta.run_id == "legacy" and meta.target == "co2" and meta.feature_names == ["co2"]
    assert meta.to_json()["schema_version"] == Meta.SCHEMA  # written back with today's version
    assert files.read_split_contract().split.n_rows == 400


@pytest.mark.slow
def test_stage_train_trains_from_legacy_processed_artifacts(
    legacy: Cli, migrated_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy.seed_store(migrated_store)
    run_here(legacy, monkeypatch, "stage=train", "run_id=legacy", "data=tiny", "trainer=smoke")  # in this process
    result = RunPaths(legacy.artifacts, "legacy").read_eval()
    assert result.run_id == "legacy" and result.training.epochs == 1 and result.scores.n_points > 0
    settings = RunPaths(legacy.artifacts, "legacy").read_serving()
    assert (settings.lookback, settings.horizon, settings.time_column) == (16, 4, "date")
