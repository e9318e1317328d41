"""SPEC §3: exit codes, the one-line JSON payload, run_id names and credential redaction."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from splineforecast.artifacts import check_run_id
from splineforecast.config import Config
from splineforecast.contracts import check_config
from splineforecast.errors import ContractError, ErrorCode, redact, to_payload

SPEC_CODES = {
    "FILE_NOT_FOUND": 21,
    "ARTIFACT_CONTRACT_ERROR": 22,
    "INPUT_SHAPE_ERROR": 23,
    "RUNNER_EXEC_ERROR": 24,
    "CONFIG_ERROR": 25,
    "INSUFFICIENT_DATA_ERROR": 26,
    "RUN_ID_MISMATCH": 27,
    "DATA_SCHEMA_ERROR": 28,
    "RUN_CONFLICT": 29,
    "INTERRUPTED": 130,
}


def test_error_codes_are_the_spec_table() -> None:
    assert {c.name: c.exit_code for c in ErrorCode} == SPEC_CODES


@pytest.mark.parametrize("code", list(ErrorCode), ids=lambda c: c.name)
def test_payload_is_one_json_line(code: ErrorCode) -> None:
    line = to_payload(code, "`data.lookback` (0) must be > 0\nsecond line", "ValueError")
    assert "\n" not in line
    assert json.loads(line) == {
        "ok": False,
        "exit_code": code.exit_code,
        "error": {"code": code.name, "message": "`data.lookback` (0) must be > 0\nsecond line", "type": "ValueError"},
    }


def test_contract_error_carries_code_and_type() -> None:
    exc = ContractError(ErrorCode.FILE_NOT_FOUND, "no file", "FileNotFoundError")
    assert (exc.exit_code, exc.message, exc.type_name, str(exc)) == (21, "no file", "FileNotFoundError", "no file")
    assert ContractError(ErrorCode.CONFIG_ERROR, "x").type_name == "ValueError"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("could not reach https://alice:s3cret@mlflow.example.com/api", "s3cret"),
        ("postgresql://user:pw@db:5432/mlflow refused", "pw@"),
        ("GET http://host/api?token=abc123&x=1 failed", "abc123"),
        ("uri http://h/?password=hunter2", "hunter2"),
    ],
)
def test_payload_never_holds_credentials(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert secret not in to_payload(ErrorCode.RUNNER_EXEC_ERROR, text, "OSError")
    assert "***" in redact(text)


@pytest.mark.parametrize("run_id", ["t1", "20261126-051600-3fa9c1", "a.b_c-d", "x" * 128])
def test_safe_run_ids(run_id: str) -> None:
    assert check_run_id(run_id) == run_id


@pytest.mark.parametrize("run_id", ["", "../evil", "a/b", "a\\b", ".hidden", "-x", "a..b", "x" * 129, "sp ace"])
def test_unsafe_run_ids_are_config_errors(run_id: str) -> None:
    with pytest.raises(ContractError) as info:
        check_run_id(run_id)
    assert info.value.code is ErrorCode.CONFIG_ERROR


BAD_VALUES = [
    (["spline.lam=-1.0"], "`spline.lam` (-1.0) must be >= 0"),
    (["spline.max_gap=-1"], "`spline.max_gap` (-1) must be >= 0"),
    (["spline.kind=quadratic"], "`spline.kind` (quadratic) must be one of"),
    (["model.norm=median"], "`model.norm` (median) must be one of"),
    (["model.loss=huber"], "`model.loss` (huber) must be one of ['mse', 'mae']"),
    (["model.skip_init=zero"], "`model.skip_init` (zero) must be one of ['random', 'seasonal']"),
    (["model.skip_init=seasonal", "model.skip=false"], "needs `model.skip=true` (False)"),
    (
        ["model.skip_init=seasonal", "data.season_length=30", "data.lookback=24"],
        "`data.season_length` (30) <= `data.lookback` (24)",
    ),
    (["model.calibration=conformal", "model.calibration_window=0"], "`model.calibration_window` (0) must be >= 1"),
    (["model.calibration_window=50"], "set model.calibration=conformal (it is none)"),
    (
        ["model.calibration=conformal", "model.calibration_window=50", "data.series_column=site"],
        "`model.calibration_window` (50) applies to one series",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_VALUES, ids=[o[0] for o, _ in BAD_VALUES])
def test_spline_and_model_values_are_refused_at_startup(
    compose: Callable[[list[str]], Config], overrides: list[str], message: str
) -> None:
    """The startup check and the library (SplineGapFiller, build_network) share one check per setting."""
    cfg = compose(["data=tiny", "run_id=v", *overrides])
    with pytest.raises(ContractError) as err:
        check_config(cfg)
    assert err.value.code is ErrorCode.CONFIG_ERROR and message in err.value.message
