"""Serving: ``forecast`` refusals, weights-only checkpoints (GPU-saved too), the pyfunc model of a
finished run loaded in a fresh process and behind ``mlflow models serve``, and ``stage=predict``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import Cli, find_free_port

from splineforecast import pipeline, serving
from splineforecast.config import Config
from splineforecast.contracts import check
from splineforecast.data.preprocess import Preprocessor
from splineforecast.data.splits import time_splits
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.models.factory import build_network
from splineforecast.models.module import ForecastModule
from splineforecast.models.spec import DataSpec
from splineforecast.records import ServingSettings

Compose = Callable[[list[str]], Config]

RUN_ID = "serve"
LOOKBACK, HORIZON = 16, 4  # data=tiny
MODEL_CFG = {"name": "lstm", "hidden_size": 8, "num_layers": 1, "dropout": 0.0, "norm": "last", "skip": True}
MODEL_CFG_FULL = {**MODEL_CFG, "lr": 1e-3, "weight_decay": 0.0}
SETTINGS = ServingSettings("unit", "y", [], "W-SAT", "date", None, LOOKBACK, HORIZON)
TINY_CSV = Path(str(resources.files("splineforecast") / "datasets" / "co2_tiny.csv"))


# ---------------------------------------------------------------- unit: forecast and checkpoints


@pytest.fixture
def fitted(tiny_frame: pd.DataFrame) -> Preprocessor:
    """A preprocessor fitted on the synthetic series ``y`` (weekly, W-SAT)."""
    spline = {"kind": "cubic", "max_gap": 26, "lam": None, "smooth_observed": False}
    return Preprocessor("y", [], spline, "W-SAT", "unit").fit(tiny_frame, time_splits(len(tiny_frame), 0.6, 0.2, 0.2))


@pytest.fixture
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(MODEL_CFG, DataSpec(1, LOOKBACK, HORIZON, (0,))).eval()


def _history(frame: pd.DataFrame) -> pd.DataFrame:
    """The synthetic frame as a raw table: a time column and text cells, empty where missing."""
    text = frame["y"].map(lambda v: "" if np.isnan(v) else f"{v:.3f}").replace("", None)
    return pd.DataFrame({"date": frame.index.strftime("%Y-%m-%d"), "y": text.to_numpy()})


def test_forecast_continues_the_grid_in_original_units(
    tiny_frame: pd.DataFrame, fitted: Preprocessor, net: torch.nn.Module
) -> None:
    history = _history(tiny_frame.iloc[:60])  # rows 10-12 and 40 are short gaps
    out = serving.forecast(history, fitted, net, SETTINGS)
    assert list(out.columns) == ["date", "step", "y"]
    assert out["step"].tolist() == [1, 2, 3, 4]
    expected = pd.date_range(tiny_frame.index[59], periods=HORIZON + 1, freq="W-SAT")[1:]
    assert (pd.DatetimeIndex(out["date"]) == expected).all()
    assert np.isfinite(out["y"]).all() and out["y"].between(250, 350).all()  # original units, not scaled


def test_forecast_refuses_a_history_shorter_than_lookback(
    tiny_frame: pd.DataFrame, fitted: Preprocessor, net: torch.nn.Module
) -> None:
    with pytest.raises(ContractError) as err:
        serving.forecast(_history(tiny_frame.iloc[: LOOKBACK - 1]), fitted, net, SETTINGS)
    assert err.value.code is ErrorCode.INSUFFICIENT_DATA_ERROR and err.value.exit_code == 26
    assert "lookback 16" in err.value.message


@pytest.mark.parametrize("drop", ["y", "date"])
def test_forecast_refuses_a_missing_column(
    tiny_frame: pd.DataFrame, fitted: Preprocessor, net: torch.nn.Module, drop: str
) -> None:
    history = _history(tiny_frame.iloc[:60]).drop(columns=[drop])
    with pytest.raises(ContractError) as err:
        serving.forecast(history, fitted, net, SETTINGS)
    assert err.value.code is ErrorCode.DATA_SCHEMA_ERROR and err.value.exit_code == 28
    assert f"['{drop}']" in err.value.message


def test_forecast_refuses_an_unfilled_gap_in_the_window(
    tiny_frame: pd.DataFrame, fitted: Preprocessor, net: torch.nn.Module
) -> None:
    history = _history(tiny_frame.iloc[:110])  # rows 70-99 (30 steps > max_gap 26) stay missing
    with pytest.raises(ContractError) as err:
        serving.forecast(history, fitted, net, SETTINGS)
    assert err.value.exit_code == 26 and "max_gap" in err.value.message


def _module_checkpoint(path: Path) -> ForecastModule:
    """A Lightning-shaped checkpoint: plain hyper_parameters, tensors under ``net.`` (and extra keys)."""
    torch.manual_seed(1)
    spec = {"n_features": 1, "lookback": LOOKBACK, "horizon": HORIZON, "target_indices": (0,)}
    module = ForecastModule(MODEL_CFG_FULL, spec)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": {"model": MODEL_CFG_FULL, "spec": spec}}, path)
    return module


def _tag_as_cuda(src: Path, dst: Path) -> None:
    """Rewrite a torch zip checkpoint so every storage says it was saved on ``cuda:0``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            zout.writestr(info.filename, data)


def test_load_network_weights_only_matches_the_module(tmp_path: Path) -> None:
    module = _module_checkpoint(tmp_path / "best.ckpt")
    net, spec = serving.load_network(tmp_path / "best.ckpt")
    assert spec == DataSpec(1, LOOKBACK, HORIZON, (0,))
    x = torch.randn(2, LOOKBACK, 1)
    with torch.no_grad():
        assert torch.equal(net(x), module.eval().net(x))


def test_load_network_of_a_gpu_saved_checkpoint_on_cpu(tmp_path: Path) -> None:
    module = _module_checkpoint(tmp_path / "cpu.ckpt")
    _tag_as_cuda(tmp_path / "cpu.ckpt", tmp_path / "gpu.ckpt")
    if not torch.cuda.is_available():  # the file really is GPU-tagged: a plain load fails here
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "gpu.ckpt", weights_only=True)
    net, _ = serving.load_network(tmp_path / "gpu.ckpt")
    assert all(p.device.type == "cpu" for p in net.parameters())
    x = torch.randn(2, LOOKBACK, 1)
    with torch.no_grad():
        assert torch.equal(net(x), module.eval().net(x))


def test_load_network_refuses_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(ContractError) as err:
        serving.load_network(tmp_path / "none.ckpt")
    assert err.value.exit_code == 21
    torch.save({"weights": torch.ones(2)}, tmp_path / "foreign.ckpt")
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    for name in ("foreign.ckpt", "garbage.ckpt"):
        with pytest.raises(ContractError) as err:
            serving.load_network(tmp_path / name)
        assert err.value.exit_code == 22


def test_stage_predict_contracts(compose: Compose, isolated: list[str]) -> None:
    cfg = compose(["data=tiny", "stage=predict", *isolated])
    with pytest.raises(ContractError) as err:
        check(cfg)  # no run_id given
    assert err.value.exit_code == 25
    cfg = compose(["data=tiny", "stage=predict", "run_id=never-trained", *isolated])
    with pytest.raises(ContractError) as err:
        check(cfg)
    assert err.value.exit_code == 21 and "never-trained" in err.value.message


# ------------------------------------------------------------------- end to end: a finished run


@pytest.fixture(scope="module")
def finished(isolated_module: tuple[Path, list[str]], compose: Compose, migrated_store: Path) -> dict[str, Any]:
    """One finished data=tiny trainer=smoke run, and a 60-row history with gaps written as CSV."""
    root, isolation = isolated_module
    Cli(root).seed_store(migrated_store)
    overrides = ["data=tiny", "trainer=smoke", f"run_id={RUN_ID}", *isolation]
    result = pipeline.run(compose(overrides), overrides=overrides)
    history = pd.read_csv(TINY_CSV, dtype=str).tail(60).reset_index(drop=True)
    history.loc[30:32, "co2"] = None  # a short gap (empty cells) ...
    history = history.drop(index=[45]).reset_index(drop=True)  # ... and a missing step
    history.to_csv(root / "history.csv", index=False)
    last = pd.Timestamp(history["date"].iloc[-1])
    return {
        "root": root,
        "isolation": isolation,
        "result": result,
        "uri": result.tracking_uri,
        "model_uri": f"runs:/{result.mlflow_run_id}/model",
        "history": history,
        "future": pd.date_range(last, periods=HORIZON + 1, freq="W-SAT")[1:],
    }


def _check_forecast(frame: pd.DataFrame, future: pd.DatetimeIndex) -> None:
    assert len(frame) == HORIZON
    assert (pd.DatetimeIndex(pd.to_datetime(frame["date"])) == future).all()
    assert np.isfinite(frame["co2"]).all()
    assert frame["co2"].between(310, 330).all(), frame  # CO2 in ppmv, 1965


def _env(uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
    env.update(MLFLOW_TRACKING_URI=uri, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    # `mlflow models serve` execs `uvicorn` by name: the interpreter's own bin folder first, as in an active venv
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


_FRESH = """
import json, pickle, sys
import mlflow, pandas as pd
import cloudpickle

def refuse(*args, **kwargs):
    raise AssertionError("the pyfunc model must not be unpickled")

pickle.load = pickle.loads = cloudpickle.load = cloudpickle.loads = refuse
uri, model_uri, history_csv = sys.argv[1:4]
mlflow.set_tracking_uri(uri)
local = mlflow.artifacts.download_artifacts(model_uri)
import os
files = sorted(os.path.relpath(os.path.join(d, f), local) for d, _, fs in os.walk(local) for f in fs)
model = mlflow.pyfunc.load_model(model_uri)
out = model.predict(pd.read_csv(history_csv, dtype=str))
print(json.dumps({"files": files, "forecast": json.loads(out.to_json(orient="records", date_format="iso"))}))
"""


@pytest.mark.slow
def test_run_logs_the_model_as_a_run_artifact_and_leaves_the_environment(finished: dict[str, Any]) -> None:
    assert "MLFLOW_TRACKING_URI" not in os.environ  # logging the model set no tracking URI
    import mlflow

    client = mlflow.MlflowClient(finished["uri"])
    run = client.get_run(finished["result"].mlflow_run_id)
    assert run.info.status == "FINISHED"
    listed = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/MLmodel", "model/pyfunc_model.py", "model/artifacts"} <= listed


@pytest.mark.slow
def test_pyfunc_model_predicts_in_a_fresh_process(finished: dict[str, Any]) -> None:
    root = finished["root"]
    done = subprocess.run(
        [sys.executable, "-c", _FRESH, finished["uri"], finished["model_uri"], str(root / "history.csv")],
        cwd=root,
        env=_env(finished["uri"]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    files = set(payload["files"])
    assert {"MLmodel", "pyfunc_model.py", "artifacts/preprocessor.json", "artifacts/best.ckpt"} <= files
    assert "artifacts/serving.json" in files
    assert not any(f.endswith(".pkl") for f in files), files  # models from code: no python_model.pkl
    _check_forecast(pd.DataFrame(payload["forecast"]), finished["future"])


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _wait_ready(server: subprocess.Popen[bytes], url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "mlflow models serve exited early"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise AssertionError(f"{url} not ready after {timeout} s")


@pytest.mark.slow
def test_mlflow_models_serve_answers_invocations(finished: dict[str, Any]) -> None:
    root, port = finished["root"], find_free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", finished["model_uri"]]
    command += ["--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"]
    log = (root / "serve.log").open("wb")
    server = subprocess.Popen(
        command, cwd=root, env=_env(finished["uri"]), stdout=log, stderr=log, start_new_session=True
    )
    try:
        _wait_ready(server, f"http://127.0.0.1:{port}/ping")
        split = json.loads(finished["history"].to_json(orient="split", index=False))
        answer = _post(f"http://127.0.0.1:{port}/invocations", {"dataframe_split": split})
        _check_forecast(pd.DataFrame(answer["predictions"]), finished["future"])
    except BaseException:
        log.flush()
        print((root / "serve.log").read_text(errors="replace")[-3000:])
        raise
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)  # the server's own session: uvicorn and its workers
        except ProcessLookupError:
            pass
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()


@pytest.mark.slow
def test_stage_predict_writes_the_forecast_csv(finished: dict[str, Any]) -> None:
    import mlflow

    root = finished["root"]
    client = mlflow.MlflowClient(finished["uri"])
    experiments = [e.experiment_id for e in client.search_experiments()]
    n_runs = len(client.search_runs(experiments))
    output = root / "out" / "forecast.csv"
    # data=co2 (the default) reads lookback 104: the run's own lookback (16) must win
    cli = Cli(root)  # the store and artifact root of the finished run
    done = cli("stage=predict", f"run_id={RUN_ID}", f"data.path={root / 'history.csv'}", f"predict.output={output}")
    assert done.returncode == 0, done.stderr[-3000:]
    local = root / "artifacts" / "predictions" / RUN_ID / "forecast.csv"
    assert str(local) in done.stdout and str(output) in done.stdout
    for path in (local, output):
        _check_forecast(pd.read_csv(path), finished["future"])
    assert local.read_bytes() == output.read_bytes()
    assert len(client.search_runs(experiments)) == n_runs  # stage=predict opened no MLflow run
