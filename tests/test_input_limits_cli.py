"""Input at the door, through the real command: every cap and bound refuses with its SPEC code, in seconds,
and writes nothing (no artifact tree, no tracking store, no processed.npz).

The refusals run in one process that calls ``splineforecast.__main__.main`` (what ``python -m splineforecast``
runs) once per case and times each call; the 3 GB file is also refused by ``python -m splineforecast`` itself.
A truncated ``last.ckpt`` is refused when a real preprocessed run resumes from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import Cli, run_here

SMALL = ("data=tiny", "trainer=smoke")
GIB3 = 3 << 30

# case -> (overrides, exit code, error.code, pieces of the message)
CASES: dict[str, tuple[list[str], int, str, list[str]]] = {
    "sparse_3gb": (
        ["data.path=big.csv"],
        23,
        "INPUT_SHAPE_ERROR",
        [f"is {GIB3} bytes (3.0 GiB), above data.max_bytes (1073741824 bytes (1.0 GiB))"],
    ),
    "nul_byte": (["data.path=nul.csv"], 28, "DATA_SCHEMA_ERROR", ["line 3 holds a NUL byte"]),
    "invalid_utf8": (["data.path=latin1.csv"], 28, "DATA_SCHEMA_ERROR", ["line 4 is not valid UTF-8 (byte e9"]),
    "columns": (
        ["data.path=wide.csv", "data.max_columns=10"],
        23,
        "INPUT_SHAPE_ERROR",
        ["has 30 columns, above data.max_columns (10)"],
    ),
    "rows": (["data.path=long.csv", "data.max_rows=100"], 23, "INPUT_SHAPE_ERROR", ["more than data.max_rows (100)"]),
    "spec_depth": (
        ["covariate.spec=deep.json"],
        22,
        "ARTIFACT_CONTRACT_ERROR",
        ["nests 100000 levels deep, above the bound of 32"],
    ),
    "spec_size": (["covariate.spec=large.json"], 22, "ARTIFACT_CONTRACT_ERROR", ["above the bound of 1048576 bytes"]),
    "hidden_size": (
        ["model.hidden_size=1000000"],
        25,
        "CONFIG_ERROR",
        ["`model.hidden_size` (1000000) must be <= 4096"],
    ),
    "num_layers": (["model.num_layers=100"], 25, "CONFIG_ERROR", ["`model.num_layers` (100) must be <= 16"]),
    "quantiles": (
        [f"model.quantiles=[{','.join(str(round(q, 3)) for q in np.linspace(0.005, 0.995, 101))}]"],
        25,
        "CONFIG_ERROR",
        ["the number of levels of `model.quantiles` (101) must be <= 99"],
    ),
    "memory": (
        ["model.hidden_size=4096", "model.num_layers=16", "data.lookback=10000", "data.batch_size=4096"],
        25,
        "CONFIG_ERROR",
        ["training needs at least", "model.hidden_size=4096", "above the bound of 274877906944 bytes"],
    ),
    "season": (
        ["data.path=daily30.csv", "data.target=y", "data.freq=D", "data.lookback=4", "data.horizon=2"],
        25,
        "CONFIG_ERROR",
        [
            "`data.season_length` (52) needs 52 rows before the test part, and data.split leaves 24",
            "at least 65 rows (it has 30)",
        ],
    ),
    "override_depth": (
        ["covariate.dynamic=" + "[" * 60_000 + "]" * 60_000],
        25,
        "CONFIG_ERROR",
        ["the override `covariate.dynamic=...` nests 60000 levels deep, above the bound of 32"],
    ),
    "unscored_test": (
        ["data.path=unobserved.csv", "data.target=y"],
        26,
        "INSUFFICIENT_DATA_ERROR",
        ["holds no observed"],
    ),
}

DRIVER = """
import contextlib, io, json, sys, time
from splineforecast.__main__ import main
cases, store = json.loads(sys.argv[1]), sys.argv[2:]
out = {}
for name, args in cases.items():
    sys.argv = ["splineforecast", *args, *store]
    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err):
        rc = main()
    out[name] = {"rc": rc, "seconds": time.perf_counter() - start, "stderr": err.getvalue()}
print(json.dumps(out))
"""


def _inputs(root: Path) -> None:
    """The hostile and the too-short inputs of the cases, in ``root``."""
    with (root / "big.csv").open("wb") as fh:  # sparse: costs no disk
        fh.write(b"date,co2\n")
        os.truncate(fh.fileno(), GIB3)
    (root / "nul.csv").write_bytes(b"date,co2\n1958-03-29,316.1\n1958-04-05,\x00317.3\n")
    (root / "latin1.csv").write_bytes(
        "date,co2,site\n1958-03-29,316.1,a\n1958-04-05,317.3,a\n1958-04-12,1,caf\xe9\n".encode("latin-1")
    )
    days = pd.date_range("2020-01-01", periods=30, freq="D").strftime("%Y-%m-%d")
    pd.DataFrame({"date": days, **{f"c{i}": 1.0 for i in range(29)}}).to_csv(root / "wide.csv", index=False)
    weeks = pd.date_range("1958-03-29", periods=200, freq="W-SAT").strftime("%Y-%m-%d")
    pd.DataFrame({"date": weeks, "co2": 300 + np.sin(np.arange(200))}).to_csv(root / "long.csv", index=False)
    pd.DataFrame({"date": days, "y": 5 + np.sin(np.arange(30))}).to_csv(root / "daily30.csv", index=False)
    unobserved = 5 + np.sin(np.arange(200))
    unobserved[160:] = np.nan  # data=tiny's test part is the last 20%
    pd.DataFrame({"date": weeks, "y": unobserved}).to_csv(root / "unobserved.csv", index=False)
    (root / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "large.json").write_text(json.dumps({"schema_version": "covariate_spec.v1", "pad": "x" * (1 << 21)}))


def _written(root: Path) -> list[str]:
    """What a refusal must not leave: the artifact and tracking trees, and any processed.npz."""
    return sorted(
        [str(p.relative_to(root)) for p in root.rglob("processed.npz")]
        + [name for name in ("artifacts", "mlruns") if (root / name).exists()]
    )


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, dict[str, Any]]:
    cli = Cli(tmp_path_factory.mktemp("door"))
    _inputs(cli.root)
    cases = {name: [*SMALL, *args] for name, (args, *_) in CASES.items()}
    proc = cli.run([sys.executable, "-c", DRIVER, json.dumps(cases), *cli.store], timeout=300)
    assert proc.returncode == 0, proc.stderr
    return cli, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_each_cap_refuses_in_seconds_with_its_code_and_writes_nothing(
    door: tuple[Cli, dict[str, Any]], case: str
) -> None:
    cli, results = door
    _, code, name, pieces = CASES[case]
    got = results[case]
    assert got["rc"] == code, got["stderr"]
    lines = got["stderr"].strip().splitlines()
    assert len(lines) == 1, got["stderr"]  # one JSON line, no traceback
    payload = json.loads(lines[0])
    assert payload["exit_code"] == code and payload["error"]["code"] == name
    for piece in pieces:
        assert piece in payload["error"]["message"]
    assert got["seconds"] < 5, got
    assert _written(cli.root) == []


@pytest.mark.slow
def test_python_m_splineforecast_refuses_a_sparse_3gb_file_by_its_size(door: tuple[Cli, dict[str, Any]]) -> None:
    cli, _ = door
    proc = cli(*SMALL, "data.path=big.csv", timeout=120)
    assert proc.returncode == 23, proc.stderr
    message = json.loads(proc.stderr.strip())["error"]["message"]
    assert f"is {GIB3} bytes (3.0 GiB), above data.max_bytes (1073741824 bytes" in message
    assert _written(cli.root) == []


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_a_truncated_last_ckpt_on_resume_is_refused_naming_the_file_and_the_fix(
    seeded: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A preprocessed run whose training was cut off mid-write of last.ckpt (a real checkpoint, cut in half):
    stage=train would resume from it; the refusal is 22, not torch's 'failed reading zip archive' (24)."""
    run_here(seeded, monkeypatch, *SMALL, "run_id=donor")
    run_here(seeded, monkeypatch, *SMALL, "run_id=cut", "stage=preprocess")
    donor, cut = (seeded.artifacts / "checkpoints" / r / "last.ckpt" for r in ("donor", "cut"))
    cut.parent.mkdir(parents=True)
    cut.write_bytes(donor.read_bytes()[: donor.stat().st_size // 2])
    before = {tree: _tree(seeded.root / tree) for tree in ("artifacts", "mlruns")}
    proc = seeded(*SMALL, "run_id=cut", "stage=train", timeout=300)
    assert proc.returncode == 22, proc.stderr
    payload = json.loads(proc.stderr.strip())
    message = payload["error"]["message"]
    assert payload["error"]["code"] == "ARTIFACT_CONTRACT_ERROR"
    assert f"`{cut}`" in message and f"rm '{cut}'" in message and "overwrite=true" in message
    assert "PytorchStreamReader" not in message
    assert {tree: _tree(seeded.root / tree) for tree in ("artifacts", "mlruns")} == before


@pytest.mark.slow
def test_a_cap_changed_between_preprocess_and_train_does_not_refuse_the_run(
    seeded: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caps guard the door; they are not what a run computes: a run preprocessed under one data.max_rows
    trains under another (no RUN_CONFLICT), and the caps are not logged as the run's params."""
    run_here(seeded, monkeypatch, *SMALL, "run_id=caps", "stage=preprocess", "data.max_rows=5000")
    result = run_here(seeded, monkeypatch, *SMALL, "run_id=caps", "stage=train", "data.max_rows=6000")
    assert result.run_id == "caps" and result.result is not None
    from mlflow import MlflowClient

    params = MlflowClient(tracking_uri=seeded.tracking_uri).get_run(result.mlflow_run_id).data.params
    assert "data.max_rows" not in params and params["data.name"] == "tiny"
