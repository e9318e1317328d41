"""The covariate_spec.v1 contract (SPEC §3): every rule of ``check_spec`` and ``read_spec``, each refusal
exit 22 with the declared, spec and available names in the message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from splineforecast.data.covariates import check_spec, read_spec
from splineforecast.errors import ContractError, ErrorCode

SPEC = "covariate_spec.v1"


def _spec_error(excinfo: pytest.ExceptionInfo[ContractError]) -> str:
    assert excinfo.value.code is ErrorCode.ARTIFACT_CONTRACT_ERROR and excinfo.value.exit_code == 22
    return excinfo.value.message


# --- check_spec / read_spec ---------------------------------------------------------------------

AVAILABLE = ["date", "y", "temp", "wind", "site", "pressure"]


def _item(name: Any, type_: Any = "numeric", required: Any = False) -> dict[str, Any]:
    return {"name": name, "type": type_, "required": required}


def _valid_spec() -> dict[str, Any]:
    return {
        "schema_version": SPEC,
        "dynamic_covariates": [_item("temp", required=True), _item("wind", "categorical")],
        "static_covariates": [_item("site", "categorical")],
        "imputation_policy": {"temp": "spline"},
    }


def test_valid_spec_returns_the_type_map() -> None:
    types = check_spec(_valid_spec(), ["temp", "wind"], ["site"], AVAILABLE)
    assert types == {"temp": "numeric", "wind": "categorical", "site": "categorical"}
    # an undeclared optional item is fine
    assert check_spec(_valid_spec(), ["temp"], [], AVAILABLE)["wind"] == "categorical"


def test_spec_groups_and_policy_may_be_omitted() -> None:
    assert check_spec({"schema_version": SPEC}, [], [], AVAILABLE) == {}


@pytest.mark.parametrize("root", [[], "covariate_spec.v1", 3, None], ids=["list", "str", "int", "null"])
def test_spec_root_must_be_an_object(root: Any) -> None:
    with pytest.raises(ContractError) as info:
        check_spec(root, [], [], AVAILABLE)
    assert "object" in _spec_error(info)


@pytest.mark.parametrize("version", ["covariate_spec.v2", None, 1, "phase1.split_contract.v1"])
def test_spec_schema_version(version: Any) -> None:
    spec = _valid_spec()
    spec["schema_version"] = version
    if version is None:
        del spec["schema_version"]
    with pytest.raises(ContractError) as info:
        check_spec(spec, ["temp"], [], AVAILABLE)
    assert SPEC in _spec_error(info)


@pytest.mark.parametrize("group", ["dynamic_covariates", "static_covariates"])
@pytest.mark.parametrize("value", [{"temp": {}}, "temp", None], ids=["dict", "str", "null"])
def test_spec_groups_must_be_lists(group: str, value: Any) -> None:
    spec = _valid_spec()
    spec[group] = value
    with pytest.raises(ContractError) as info:
        check_spec(spec, [], [], AVAILABLE)
    message = _spec_error(info)
    assert group in message and "list" in message


@pytest.mark.parametrize("value", [[], "ffill", None], ids=["list", "str", "null"])
def test_spec_imputation_policy_must_be_an_object(value: Any) -> None:
    spec = _valid_spec()
    spec["imputation_policy"] = value
    with pytest.raises(ContractError) as info:
        check_spec(spec, ["temp"], [], AVAILABLE)
    assert "imputation_policy" in _spec_error(info)


@pytest.mark.parametrize("item", ["temp", ["temp"], 1, None], ids=["str", "list", "int", "null"])
def test_spec_item_must_be_an_object(item: Any) -> None:
    spec = _valid_spec()
    spec["dynamic_covariates"].append(item)
    with pytest.raises(ContractError) as info:
        check_spec(spec, ["temp"], [], AVAILABLE)
    assert "dynamic_covariates[2]" in _spec_error(info)


@pytest.mark.parametrize("name", ["", "   ", None, 7], ids=["empty", "blank", "null", "int"])
def test_spec_item_name_must_be_a_non_empty_string(name: Any) -> None:
    spec = _valid_spec()
    spec["static_covariates"].append(_item(name))
    with pytest.raises(ContractError) as info:
        check_spec(spec, ["temp"], [], AVAILABLE)
    message = _spec_error(info)
    assert "static_covariates[1]" in message and "name" in message


def test_spec_item_without_name() -> None:
    spec = _valid_spec()
    spec["dynamic_covariates"].append({"type": "numeric", "required": False})
    with pytest.raises(ContractError) as info:
        check_spec(spec, ["temp"], [], AVAILABLE)
    assert "name" in _spec_error(info)


@pytest.mark.parametrize("type_", ["text", "Numeric", None, 1], ids=["text", "case", "null", "int"])
def test_spec_item_type(type_: Any) -> None:
    spec = _valid_spec()
    spec["dynamic_covariates"].append(_item("pressure", type_))
    with pytest.raises(ContractError) as info:
        check_spec(spec, ["temp"], [], AVAILABLE)
    message = _spec_error(info)
    assert "pressure" in message and "type" in message


@pytest.mark.parametrize("required", ["true", 1, 0, None], ids=["str", "one", "zero", "null"])
def test_spec_item_required_must_be_a_bool(required: Any) -> None:
    spec = _valid_spec()
    spec["dynamic_covariates"].append(_item("pressure", "numeric", required))
    with pytest.raises(ContractError) as info:
        check_spec(spec, ["temp"], [], AVAILABLE)
    message = _spec_error(info)
    assert "pressure" in message and "required" in message


@pytest.mark.parametrize("group", ["dynamic_covariates", "static_covariates"])
def test_spec_duplicate_name_within_a_group(group: str) -> None:
    spec = _valid_spec()
    spec[group] = [_item("dup"), _item("other"), _item("dup", "boolean")]
    with pytest.raises(ContractError) as info:
        check_spec(spec, [], [], AVAILABLE)
    message = _spec_error(info)
    assert "dup" in message and group in message


def test_spec_name_in_both_groups() -> None:
    spec = _valid_spec()
    spec["static_covariates"].append(_item("wind", "categorical"))
    with pytest.raises(ContractError) as info:
        check_spec(spec, ["temp"], [], AVAILABLE)
    message = _spec_error(info)
    assert "wind" in message and "dynamic" in message and "static" in message


def _assert_lists_names(message: str, missing: list[str], declared: list[str], spec: list[str]) -> None:
    """The message names what is missing and lists the declared, spec and available names."""
    for word in ("declared", "spec", "available"):
        assert word in message, (word, message)
    for name in [*missing, *declared, *spec, *AVAILABLE]:
        assert name in message, (name, message)


def test_required_item_not_declared() -> None:
    spec = _valid_spec()
    spec["dynamic_covariates"].append(_item("humidity", required=True))
    # `extra` is declared only (named in no spec, no column): it can appear only through the declared list
    with pytest.raises(ContractError) as info:
        check_spec(spec, ["temp", "extra"], ["site"], AVAILABLE)
    message = _spec_error(info)
    assert "required" in message
    _assert_lists_names(message, ["humidity"], ["temp", "extra", "site"], ["temp", "wind", "site", "humidity"])


def test_required_static_item_not_declared() -> None:
    spec = _valid_spec()
    spec["static_covariates"][0]["required"] = True
    with pytest.raises(ContractError) as info:
        check_spec(spec, ["temp"], [], AVAILABLE)
    _assert_lists_names(_spec_error(info), ["site"], ["temp"], ["temp", "wind", "site"])


@pytest.mark.parametrize(
    ("dynamic", "static", "undefined"),
    [
        (["temp", "ghost"], [], "ghost"),
        (["temp"], ["phantom"], "phantom"),
        (["temp", "site"], [], "site"),  # in the spec, but as static
    ],
    ids=["dynamic", "static", "wrong-group"],
)
def test_declared_covariate_not_in_the_spec(dynamic: list[str], static: list[str], undefined: str) -> None:
    with pytest.raises(ContractError) as info:
        check_spec(_valid_spec(), dynamic, static, [*AVAILABLE, "ghost", "phantom"])
    message = _spec_error(info)
    assert "not in the spec" in message
    _assert_lists_names(message, [undefined], [*dynamic, *static], ["temp", "wind", "site"])
    assert "ghost" in message and "phantom" in message  # the available columns


def test_dynamic_covariate_not_a_data_column() -> None:
    spec = _valid_spec()
    spec["dynamic_covariates"].append(_item("ghost"))
    with pytest.raises(ContractError) as info:
        check_spec(spec, ["temp", "ghost"], ["site"], AVAILABLE)
    message = _spec_error(info)
    assert "column" in message
    _assert_lists_names(message, ["ghost"], ["temp", "ghost", "site"], ["temp", "wind", "site"])


def test_read_spec(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(_valid_spec()), encoding="utf-8")
    assert read_spec(str(path)) == _valid_spec()
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(_valid_spec()).encode())
    assert read_spec(str(bom)) == _valid_spec()


def test_read_spec_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ContractError) as info:
        read_spec(str(tmp_path / "nope.json"))
    assert info.value.code is ErrorCode.FILE_NOT_FOUND and info.value.exit_code == 21
    assert "nope.json" in info.value.message


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b'{"schema_version": "covariate_spec.v1",}', b'{"name": "\xff\xfe"}'],
    ids=["syntax", "empty", "trailing-comma", "not-utf8"],
)
def test_read_spec_invalid_json(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ContractError) as info:
        read_spec(str(path))
    assert "bad.json" in _spec_error(info)
