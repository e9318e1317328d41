"""Every SPEC §3 exit code from the real command: code, one-line payload, and nothing written.

A module-scoped finished run (``base``) gives the refusals that need artifacts something to
refuse; each refusal must leave the artifact and tracking trees exactly as they were.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import Cli, run_here

BASE = "base"
SMALL = ("data=tiny", "trainer=smoke")


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its sha256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def codes(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path) -> Cli:
    """The command in a folder holding one finished run ``base`` and the hostile inputs of the tests.

    ``base`` is trained in this process: the refusals, each a command of its own, are the subject.
    """
    cli = Cli(tmp_path_factory.mktemp("codes"))
    root = cli.root
    cli.seed_store(migrated_store)
    with pytest.MonkeyPatch.context() as mp:
        run_here(cli, mp, *SMALL, f"run_id={BASE}")
    (root / "bad.csv").write_text("date,co2\n2020-01-04,1.0\n2020-01-11,abc\n")
    (root / "afile").write_text("not a folder")
    # processed artifacts in the run layout, each broken in one way
    src = root / "artifacts" / "processed" / BASE
    no_contract = root / "inputs" / "a" / "processed" / BASE
    shutil.copytree(src, no_contract)
    (no_contract / "split_contract.json").unlink()
    wrong_schema = root / "inputs" / "b" / "processed" / BASE
    shutil.copytree(src, wrong_schema)
    contract = json.loads((wrong_schema / "split_contract.json").read_text())
    (wrong_schema / "split_contract.json").write_text(json.dumps({**contract, "schema_version": "v0"}))
    shapes = root / "inputs" / "c" / "processed" / BASE
    shutil.copytree(src, shapes)
    with np.load(src / "processed.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["feature_names"] = np.asarray(["co2", "extra"])
    with (shapes / "processed.npz").open("wb") as fh:
        np.savez(fh, **arrays)
    no_keys = root / "inputs" / "d" / "processed" / BASE
    shutil.copytree(src, no_keys)
    with (no_keys / "processed.npz").open("wb") as fh:
        np.savez(fh, values=arrays["values"], observed_mask=arrays["observed_mask"])
    (root / "spec.json").write_text(json.dumps({"schema_version": "covariate_spec.v0"}))
    return cli


CASES = {
    "file_not_found": (21, "FILE_NOT_FOUND", ["data.path=missing.csv"]),
    "split_contract_missing": (
        22,
        "ARTIFACT_CONTRACT_ERROR",
        ["stage=train", f"run_id={BASE}", f"data.processed=inputs/a/processed/{BASE}/processed.npz"],
    ),
    "split_contract_schema": (
        22,
        "ARTIFACT_CONTRACT_ERROR",
        ["stage=train", f"run_id={BASE}", f"data.processed=inputs/b/processed/{BASE}/processed.npz"],
    ),
    "npz_keys_missing": (
        22,
        "ARTIFACT_CONTRACT_ERROR",
        ["stage=train", f"run_id={BASE}", f"data.processed=inputs/d/processed/{BASE}/processed.npz"],
    ),
    "covariate_spec_invalid": (22, "ARTIFACT_CONTRACT_ERROR", ["covariate.spec=spec.json", "run_id=cov"]),
    "shapes_disagree": (
        23,
        "INPUT_SHAPE_ERROR",
        ["stage=train", f"run_id={BASE}", f"data.processed=inputs/c/processed/{BASE}/processed.npz"],
    ),
    "io_fault": (24, "RUNNER_EXEC_ERROR", ["paths.artifacts=afile/artifacts"]),
    "bad_value": (25, "CONFIG_ERROR", ["data.lookback=0"]),
    "unknown_option": (25, "CONFIG_ERROR", ["model=grux"]),
    "misspelt_key": (25, "CONFIG_ERROR", ["model.hiden_size=8"]),
    "unsafe_run_id": (25, "CONFIG_ERROR", ["run_id=../evil"]),
    "too_short": (26, "INSUFFICIENT_DATA_ERROR", ["data.lookback=300"]),
    "run_id_mismatch": (
        27,
        "RUN_ID_MISMATCH",
        ["stage=train", "run_id=other", f"data.processed=artifacts/processed/{BASE}/processed.npz"],
    ),
    "bad_cell": (28, "DATA_SCHEMA_ERROR", ["data.path=bad.csv"]),
    "finished_run_id": (29, "RUN_CONFLICT", [f"run_id={BASE}"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_refusal_code_payload_and_untouched_trees(codes: Cli, case: str) -> None:
    code, name, args = CASES[case]
    root = codes.root
    before = {tree: _tree(root / tree) for tree in ("artifacts", "mlruns")}
    assert all(before.values()), "the finished run `base` left both trees"
    proc = codes(*SMALL, *args)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # one JSON line, no traceback
    payload = json.loads(lines[0])
    assert payload["ok"] is False and payload["exit_code"] == code
    assert payload["error"]["code"] == name
    assert isinstance(payload["error"]["message"], str) and payload["error"]["message"].strip()
    assert isinstance(payload["error"]["type"], str) and payload["error"]["type"].isidentifier()
    assert "Traceback" not in proc.stderr
    assert {tree: _tree(root / tree) for tree in ("artifacts", "mlruns")} == before


@pytest.mark.parametrize(
    ("args", "code"),
    [(["data.lookback=0"], 25), (["data.path=missing.csv"], 21), (["model=grux"], 25)],
    ids=["bad_value", "file_not_found", "unknown_option"],
)
def test_contract_failures_import_no_heavy_library(cli: Cli, args: list[str], code: int) -> None:
    """SPEC §3: each refusal has its own code (lookback <= 0 and an unknown option are CONFIG_ERROR, a
    missing input is FILE_NOT_FOUND), given before torch, Lightning or MLflow is imported."""
    source = (
        "import json, sys\n"
        "from splineforecast.__main__ import main\n"
        f"sys.argv = ['splineforecast', *{[*args, *cli.store]!r}]\n"
        "rc = main()\n"
        "heavy = [m for m in ('torch', 'pytorch_lightning', 'lightning', 'mlflow') if m in sys.modules]\n"
        "print(json.dumps({'rc': rc, 'heavy': heavy}))\n"
    )
    proc = cli.run([sys.executable, "-c", source], timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == code
    assert result["heavy"] == []
    assert not cli.artifacts.exists() and not (cli.root / "mlruns").exists()
