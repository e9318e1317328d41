"""The operations scripts of SPEC §6, run for real: scripts/run_e2e.sh and scripts/smoke_test.sh."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import Cli
from mlflow import MlflowClient

from splineforecast.artifacts import RunPaths
from splineforecast.tracking import RUN_ID_TAG

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
RUN_E2E = SCRIPTS / "run_e2e.sh"
SMOKE = SCRIPTS / "smoke_test.sh"
SCRIPT_ENV = ("RUN_ID", "EPOCHS", "LOOKBACK", "HORIZON")  # what the scripts read, besides PYTHON

pytestmark = pytest.mark.slow


@pytest.fixture
def scripts(cli: Cli) -> Cli:
    """``cli`` for the scripts: none of their variables from the caller, ``PYTHON`` this interpreter."""
    for name in SCRIPT_ENV:
        cli.env.pop(name, None)
    cli.env["PYTHON"] = sys.executable
    return cli


def _payload(stderr: str) -> dict[str, object]:
    lines = stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    payload = json.loads(lines[-1])
    assert isinstance(payload, dict)
    return payload


@pytest.mark.parametrize("script", [RUN_E2E, SMOKE], ids=lambda p: p.name)
def test_scripts_are_executable_bash(script: Path) -> None:
    assert script.stat().st_mode & stat.S_IXUSR
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_smoke_gate_passes(scripts: Cli) -> None:
    proc = scripts.run([str(SMOKE)], env={"MLFLOW_TRACKING_URI": f"sqlite:///{scripts.root}/elsewhere.db"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].endswith(" passed, 0 failed"), proc.stdout
    assert not [line for line in lines if line.startswith("FAIL")]
    assert sum(line.startswith("PASS ") for line in lines) == int(lines[-1].split()[0]) >= 9
    assert any("mismatch" in line for line in lines if line.startswith("PASS "))
    assert list(scripts.root.iterdir()) == []  # ran in its own folder, ignored MLFLOW_TRACKING_URI
    temp = lines[0].rsplit(" in ", 1)[1]
    assert not Path(temp).exists(), "the temporary folder was left behind"


def test_smoke_gate_fails_when_the_run_does_nothing(scripts: Cli) -> None:
    """A `python -m splineforecast` that exits 0 but writes nothing fails every later check."""
    fake = scripts.root / "python"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'if [[ "${1:-}" == -m && "${2:-}" == splineforecast ]]; then exit 0; fi\n'
        f'exec "{sys.executable}" "$@"\n'
    )
    fake.chmod(0o755)
    proc = scripts.run([str(SMOKE)], env={"PYTHON": str(fake)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert "PASS run exits 0" in lines
    fails = [line for line in lines if line.startswith("FAIL ")]
    assert lines[-1] == f"1 passed, {len(fails)} failed", proc.stdout
    assert len(fails) == 8
    assert any(line.startswith("FAIL run_id mismatch") and "exit 0" in line for line in fails)


def test_run_e2e_trains_with_the_env_overrides(scripts: Cli) -> None:
    """The command run to the end in a new folder, as a new user runs it, through the script."""
    env = {"RUN_ID": "e2e-1", "EPOCHS": "1", "LOOKBACK": "16", "HORIZON": "4"}
    proc = scripts.run([str(RUN_E2E), "data=tiny", "trainer=smoke", *scripts.store], env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^run_id:\s+e2e-1$", proc.stdout, re.MULTILINE), proc.stdout
    ui = re.search(r"^MLflow UI:\s+(.+?) -m mlflow ui --backend-store-uri (\S+)", proc.stdout, re.MULTILINE)
    assert ui and ui.group(1) == sys.executable and ui.group(2) == scripts.tracking_uri  # works without a venv
    paths = RunPaths(scripts.artifacts, "e2e-1")
    metrics = json.loads(paths.metrics_json.read_text())
    assert metrics["run_id"] == "e2e-1"
    assert set(metrics["metrics"]) >= {"mae", "mse", "rmse", "mape", "r2", "mase"}
    config = yaml.safe_load(paths.config_yaml.read_text())
    assert (config["trainer"]["max_epochs"], config["data"]["lookback"], config["data"]["horizon"]) == (1, 16, 4)
    client = MlflowClient(scripts.tracking_uri)  # the store the overrides named holds the run, once
    (run,) = client.search_runs(
        [client.get_experiment_by_name("splineforecast").experiment_id], f"tags.`{RUN_ID_TAG}` = 'e2e-1'"
    )
    assert run.info.status == "FINISHED" and run.data.metrics["mae"] == pytest.approx(metrics["metrics"]["mae"])


def test_run_e2e_maps_env_and_passes_arguments_through(scripts: Cli) -> None:
    """Variables become overrides; leading Hydra flags stay in front; an argument wins over a variable."""
    env = {"RUN_ID": "007", "EPOCHS": "3", "LOOKBACK": "20", "HORIZON": "2"}
    proc = scripts.run([str(RUN_E2E), "--cfg", "job", "data=tiny", "model=gru", "data.horizon=5"], env=env)
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load(proc.stdout)
    assert config["run_id"] == "007"  # a string, as typed
    assert config["trainer"]["max_epochs"] == 3
    assert config["data"]["lookback"] == 20
    assert config["data"]["horizon"] == 5
    assert config["model"]["name"] == "gru"


@pytest.mark.parametrize(
    ("variable", "value"), [("EPOCHS", "abc"), ("LOOKBACK", "0"), ("HORIZON", "-3"), ("EPOCHS", '1"\n')]
)
def test_run_e2e_refuses_a_bad_number(scripts: Cli, variable: str, value: str) -> None:
    # the check comes first: the interpreter it would run does not even exist
    proc = scripts.run([str(RUN_E2E)], env={"PYTHON": "/nonexistent/python", variable: value})
    assert proc.returncode == 25, proc.stderr
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1
    payload = _payload(proc.stderr)
    assert payload["ok"] is False and payload["exit_code"] == 25
    error = payload["error"]
    assert isinstance(error, dict)
    assert error["code"] == "CONFIG_ERROR" and error["type"] == "ValueError"
    assert variable in error["message"] and "positive integer" in error["message"]


def test_run_e2e_exits_with_the_package_code(scripts: Cli) -> None:
    proc = scripts.run([str(RUN_E2E), "model=grux", *scripts.store])
    assert proc.returncode == 25, proc.stderr
    assert _payload(proc.stderr)["error"]["code"] == "CONFIG_ERROR"  # type: ignore[index]
    assert not scripts.artifacts.exists() and not (scripts.root / "mlruns").exists()
