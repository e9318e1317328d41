"""The one way a job's failure reaches the exit code: the JobFailed it raises (see ``__main__``).

A single run's failure passes Hydra untouched (its stderr is the payload alone); a sweep job's is kept
in its JobReturn and, from a worker process, pickled back. Sweeps themselves: tests/test_sweeps.py
and tests/test_cluster_launch.py.
"""

from __future__ import annotations

import json
import pickle
import re

import pytest
from conftest import Cli

from splineforecast.__main__ import JobFailed, SweepJobFailed
from splineforecast.artifacts import RunPaths


@pytest.mark.parametrize("kind", [JobFailed, SweepJobFailed])
def test_a_job_failure_pickles_with_its_exit_code(kind: type[JobFailed]) -> None:
    back = pickle.loads(pickle.dumps(kind(26)))
    assert type(back) is kind and back.exit_code == 26 and "26" in str(back)


def test_only_a_sweep_jobs_failure_is_an_exception() -> None:
    """Hydra's run_job catches Exception into the JobReturn: a sweep job's failure, not a single run's."""
    assert isinstance(SweepJobFailed(21), Exception) and isinstance(SweepJobFailed(21), JobFailed)
    assert not isinstance(JobFailed(21), Exception)


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ("train", "stage=train needs the run_id of a preprocessed run: add run_id=NAME"),
        ("predict", "stage=predict needs the run_id of a trained run: add run_id=NAME"),
    ],
)
def test_a_stage_that_reads_a_run_needs_its_run_id(cli: Cli, stage: str, message: str) -> None:
    """No run_id is made up for stage=train/predict: the check refuses, and the stderr is that line alone."""
    done = cli(f"stage={stage}", "data=tiny")
    assert done.returncode == 25
    (line,) = done.stderr.splitlines()
    payload = json.loads(line)
    assert payload["error"] == {"code": "CONFIG_ERROR", "message": message, "type": "ValueError"}
    assert not cli.artifacts.exists() and not (cli.root / "mlruns").exists()


@pytest.mark.slow
def test_a_preprocess_run_is_named_when_not_given(seeded: Cli) -> None:
    cli = seeded
    done = cli("stage=preprocess", "data=tiny")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_id,) = re.findall(r"^run_id:\s+(\S+)$", done.stdout, flags=re.M)
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", run_id)
    assert RunPaths(cli.artifacts, run_id).processed_npz.is_file()
