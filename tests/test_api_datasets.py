"""Uploaded data sets (``POST /api/v1/datasets``) with FastAPI's TestClient: the CLI's own table checks,
the stored file and its list, the overrides a job on it gets, and every refusal leaving nothing behind."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from api_helpers import AUTH, TestClient, assert_refused, client_for, settings_for
from conftest import compose_config

from splineforecast.api import Settings, SettingsError
from splineforecast.api.datasets import DatasetStore
from splineforecast.api.jobs import TrainRequest, UnknownDataset, build_overrides
from splineforecast.contracts import check_raw
from splineforecast.errors import ContractError

TINY = (resources.files("splineforecast") / "datasets" / "co2_tiny.csv").read_text(encoding="utf-8")
URL = "/api/v1/datasets"


def _post(client: TestClient, **body: Any) -> Any:
    return client.post(URL, headers=AUTH, json={"name": "mine", "target": "co2", "csv": TINY, **body})


def _data_dir(client: TestClient) -> Path:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    assert isinstance(settings, Settings)
    return settings.data_dir


def _uploads(client: TestClient) -> DatasetStore:
    uploads = client.app.state.jobs.uploads  # type: ignore[attr-defined]
    assert isinstance(uploads, DatasetStore)
    return uploads


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _cli_refusal(tmp_path: Path, text: str, *overrides: str) -> ContractError:
    """What the CLI's startup checks say of the table ``text`` (as ``python -m splineforecast`` runs them)."""
    path = tmp_path / "mine.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ContractError) as refused:
        check_raw(compose_config(["data=tiny", f"data.path={path}", *overrides]))
    return refused.value


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return client_for(tmp_path)


def test_a_good_upload_is_stored_listed_and_trained_on_by_the_cli_checks(client: TestClient, tmp_path: Path) -> None:
    text = TINY.replace("date,co2", "when,level", 1)
    answer = _post(client, name="co2_renamed", time_column="when", target="level", csv=text)
    assert answer.status_code == 201, answer.text
    shown = answer.json()["dataset"]
    assert {k: shown[k] for k in ("name", "time_column", "target", "freq", "rows", "columns", "steps")} == {
        "name": "co2_renamed",
        "time_column": "when",
        "target": "level",
        "freq": "W-SAT",
        "rows": 400,
        "columns": ["when", "level"],
        "steps": 400,
    }
    assert (shown["start"], shown["end"], shown["bytes"]) == ("1958-03-29T00:00:00", "1965-11-20T00:00:00", len(text))
    assert "file" not in shown and str(tmp_path) not in answer.text  # where it is stored is not shown
    listed = client.get(URL, headers=AUTH).json()
    assert listed["datasets"] == ["co2", "co2_renamed", "tiny"] and listed["uploaded"] == [shown]
    assert listed["max_upload_bytes"] == 5_000_000

    stored = [p for p in _data_dir(client).iterdir() if p.suffix == ".csv"]
    assert len(stored) == 1 and len(stored[0].stem) == 32 and stored[0].read_text(encoding="utf-8") == text
    overrides = build_overrides(
        TrainRequest(dataset="co2_renamed", epochs=2), client.app.state.settings, "api-1", _uploads(client)
    )  # type: ignore[attr-defined]
    data = [
        "data=tiny",
        'data.name="co2_renamed"',
        f"data.path={json.dumps(str(stored[0]))}",
        "data.bundled=null",
        'data.time_column="when"',
        'data.target="level"',
        'data.freq="W-SAT"',
    ]
    assert overrides[: len(data) + 5] == [
        *data,
        "model=lstm",
        "model.hidden_size=32",
        "model.num_layers=1",
        "trainer.max_epochs=2",
        "spline=cubic",
    ]
    raw = check_raw(compose_config([o for o in overrides if not o.startswith("hydra.")]))  # the CLI reads it
    assert (raw.n_rows, raw.freq, raw.source) == (400, "W-SAT", stored[0])


def test_the_list_survives_a_new_app_on_the_same_state_dir(client: TestClient, tmp_path: Path) -> None:
    assert _post(client).status_code == 201
    again = client_for(tmp_path)
    assert again.get(URL, headers=AUTH).json()["uploaded"] == client.get(URL, headers=AUTH).json()["uploaded"]
    assert [u.name for u in _uploads(again).list()] == ["mine"]
    assert 'data.name="mine"' in build_overrides(
        TrainRequest(dataset="mine"), again.app.state.settings, "api-2", _uploads(again)
    )  # type: ignore[attr-defined]
    assert_refused(_post(again), 409, "DATASET_EXISTS")
    with pytest.raises(UnknownDataset, match=r"uploaded: \['mine'\]"):
        build_overrides(TrainRequest(dataset="gone"), again.app.state.settings, "api-3", _uploads(again))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "overrides", "words"),
    [
        (TINY.replace("1958-04-05", "05/04/1958", 1), [], "column `date` line 3: cannot parse timestamp '05/04/1958'"),
        (TINY.replace("1958-04-12", "1958-04-05", 1), [], "column `date` line 4: duplicate timestamp 1958-04-05"),
        (TINY.replace("317.6", "high", 1), [], "column `co2` line 4: non-numeric value 'high'"),
        (TINY, ["data.target=level"], "column(s) ['level'] not in `mine.csv`; available columns: ['date', 'co2']"),
        ("date,co2\n", [], "the data file has a header but no rows"),
    ],
)
def test_a_refused_table_answers_the_cli_error_and_writes_nothing(
    client: TestClient, tmp_path: Path, text: str, overrides: list[str], words: str
) -> None:
    cli = _cli_refusal(tmp_path, text, *overrides)
    target = overrides[0].split("=")[1] if overrides else "co2"
    answer = _post(client, csv=text, target=target)
    assert answer.status_code == 422, answer.text
    expected = cli.message.replace(str(tmp_path / "mine.csv"), "mine.csv")
    assert words in expected
    assert answer.json() == {
        "ok": False,
        "exit_code": 28,
        "error": {"code": "DATA_SCHEMA_ERROR", "message": expected, "type": cli.type_name},
    }
    assert [f for f in _files(_data_dir(client)) if not f.startswith(".datasets.lock")] == []
    assert client.get(URL, headers=AUTH).json()["uploaded"] == []


def test_an_upload_over_the_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    client = client_for(tmp_path, max_upload=1000, max_body=500)
    garbage = "not,a,table\n" + "x" * 989  # 1001 bytes: parsed, it would be a 422
    assert_refused(_post(client, csv=garbage), 413, "PAYLOAD_TOO_LARGE")
    assert "1001 bytes; at most 1000 (SPLINE_MAX_UPLOAD_BYTES)" in _post(client, csv=garbage).json()["error"]["message"]
    assert_refused(_post(client, csv="é" * 501), 413, "PAYLOAD_TOO_LARGE")  # UTF-8 bytes, not characters
    body_limit = client.app.state.settings.upload_body  # type: ignore[attr-defined]
    assert body_limit == 6 * 1000 + 65_536
    huge = {"name": "mine", "target": "co2", "csv": "x" * body_limit}
    assert_refused(client.post(URL, headers=AUTH, json=huge), 413, "PAYLOAD_TOO_LARGE")  # the body layer
    assert _files(_data_dir(client)) == []
    # a CSV within SPLINE_MAX_UPLOAD_BYTES is not capped by SPLINE_MAX_BODY_BYTES, which still bounds the rest
    roomy = client_for(tmp_path, max_upload=len(TINY), max_body=500)
    assert len(TINY) > 500 and _post(roomy).status_code == 201
    jobs = roomy.post("/api/v1/jobs", headers=AUTH, json={"dataset": "tiny", "x": "y" * 600})
    assert_refused(jobs, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Mine"},
        {"name": "../mine"},
        {"name": "a" * 33},
        {"name": ""},
        {"target": "co2; rm -rf"},
        {"target": "${oc.env:HOME}"},
        {"time_column": 'date"'},
        {"time_column": "co2"},
        {"csv": None},
        {"path": "/etc/passwd"},
    ],
)
def test_bad_names_and_columns_are_refused(client: TestClient, body: dict[str, Any]) -> None:
    answer = _post(client, **body)
    assert_refused(answer, 422, "VALIDATION_ERROR")
    assert answer.json()["details"] and _files(_data_dir(client)) == []


def test_a_name_that_is_taken_is_refused_and_the_first_kept(client: TestClient) -> None:
    first = _post(client)
    assert first.status_code == 201
    before = _files(_data_dir(client))
    for name in ("mine", "tiny", "co2"):
        answer = _post(client, name=name, csv=TINY.replace("316.1", "1.0"))
        assert_refused(answer, 409, "DATASET_EXISTS")
        assert f"a data set named {name!r} exists already" in answer.json()["error"]["message"]
    assert _files(_data_dir(client)) == before
    assert client.get(URL, headers=AUTH).json()["uploaded"] == [first.json()["dataset"]]


def test_a_tampered_list_is_refused_not_trusted(client: TestClient) -> None:
    assert _post(client).status_code == 201
    path = _data_dir(client) / "datasets.json"
    data = json.loads(path.read_text())
    data["datasets"][0]["file"] = "../../outside.csv"
    path.write_text(json.dumps(data))
    answer = client.get(URL, headers=AUTH)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "ARTIFACT_CONTRACT_ERROR"
    with pytest.raises(ContractError, match="datasets.json"):
        build_overrides(TrainRequest(dataset="mine"), client.app.state.settings, "api-1", _uploads(client))  # type: ignore[attr-defined]


def test_upload_settings_are_read_and_checked(tmp_path: Path) -> None:
    for bad in ("0", "abc", "100000001"):
        with pytest.raises(SettingsError, match="SPLINE_MAX_UPLOAD_BYTES"):
            Settings.from_env({"SPLINE_MAX_UPLOAD_BYTES": bad})
    settings = Settings.from_env({"SPLINE_MAX_UPLOAD_BYTES": "2000", "SPLINE_DATA_ROOT": str(tmp_path / "d")})
    assert (settings.max_upload, settings.data_dir) == (2000, tmp_path / "d")
    assert settings_for(tmp_path).data_dir == tmp_path / "state" / "datasets"
    assert Settings.from_env({}).max_upload == 5_000_000
