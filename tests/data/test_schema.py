"""Content checks of the raw table (DATA_SCHEMA_ERROR), reading it, and the regular time grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from splineforecast.data import io, schema
from splineforecast.errors import ContractError, ErrorCode

DAYS = ["2020-01-01", "2020-01-02", "2020-01-03"]


def _raw(dates: list, values: list) -> pd.DataFrame:
    """A raw table as ``io.read_csv`` returns it: text cells, NaN where empty."""
    as_text = lambda v: None if v is None else str(v)  # noqa: E731
    return pd.DataFrame({"date": [as_text(d) for d in dates], "y": [as_text(v) for v in values]}, dtype="str")


def _validate(raw: pd.DataFrame, freq: str | None = "D", time_format: str | None = None):
    return schema.validate(raw, "date", "y", freq, time_format=time_format)


def _schema_error(raw: pd.DataFrame, freq: str | None = "D", time_format: str | None = None) -> str:
    with pytest.raises(ContractError) as info:
        _validate(raw, freq, time_format)
    assert info.value.code is ErrorCode.DATA_SCHEMA_ERROR
    assert info.value.exit_code == 28
    return info.value.message


def test_bundled_head_validates_onto_a_weekly_grid(bundled_head: pd.DataFrame) -> None:
    frame, freq, notes = schema.validate(bundled_head, "date", "co2", None)
    assert freq == "W-SAT"
    assert len(frame) == 60 and frame.index[0] == pd.Timestamp("1958-03-29")
    assert frame["co2"].dtype == np.float64
    assert frame["co2"].isna().sum() == bundled_head["co2"].isna().sum() > 0
    np.testing.assert_array_equal(frame["co2"].to_numpy(), bundled_head["co2"].astype(float).to_numpy())
    assert notes["rows_off_grid"] == 0 and notes["rows_out_of_order"] == 0


def test_duplicate_timestamp() -> None:
    message = _schema_error(_raw(["2020-01-01", "2020-01-02", "2020-01-02"], [1, 2, 3]))
    assert "duplicate" in message and "line 4" in message  # header is line 1


@pytest.mark.parametrize("bad", ["not a date", "2020-13-45", "01/02/2020", None])
def test_unparseable_ambiguous_or_missing_timestamp(bad: str | None) -> None:
    message = _schema_error(_raw(["2020-01-01", bad, "2020-01-03"], [1, 2, 3]))
    assert "`date` line 3" in message


def test_time_format_reads_day_first_dates_and_refuses_others() -> None:
    frame, _, _ = _validate(_raw(["03/04/2020", "04/04/2020", "05/04/2020"], [1, 2, 3]), time_format="%d/%m/%Y")
    assert frame.index[0] == pd.Timestamp("2020-04-03")
    message = _schema_error(_raw(["03/04/2020", "2020-04-04", "05/04/2020"], [1, 2, 3]), time_format="%d/%m/%Y")
    assert "line 3" in message and "%d/%m/%Y" in message


def test_zoned_mixed_with_zoneless_is_a_schema_error() -> None:
    message = _schema_error(_raw(["2020-01-01T00:00+01:00", "2020-01-02T00:00", "2020-01-03T00:00+01:00"], [1, 2, 3]))
    assert "line 3" in message


def test_offsets_are_converted_to_naive_utc() -> None:
    dates = ["2020-01-01T01:00+01:00", "2020-01-02T02:00+02:00", "2020-01-03T00:00Z"]
    frame, freq, notes = _validate(_raw(dates, [1, 2, 3]), freq=None)
    assert frame.index.tz is None and freq == "D"
    assert list(frame.index) == list(pd.date_range("2020-01-01", periods=3, freq="D"))
    assert notes["timezone"] == "converted to UTC"


@pytest.mark.parametrize("cell", ["abc", "1,5", "12a"])
def test_non_numeric_cell(cell: str) -> None:
    message = _schema_error(_raw(DAYS, ["1.0", cell, "3"]))
    assert "non-numeric" in message and "line 3" in message and "`y`" in message


@pytest.mark.parametrize("cell", ["inf", "-inf", "Infinity"])
def test_infinity(cell: str) -> None:
    message = _schema_error(_raw(DAYS, ["1.0", "2.0", cell]))
    assert "infinite" in message and "line 4" in message


def test_all_missing_target() -> None:
    message = _schema_error(_raw(DAYS[:2], [None, None]))
    assert "`y`" in message


def test_header_without_rows() -> None:
    _schema_error(_raw([], []))


def test_regularise_puts_missing_rows_on_the_grid_as_nan() -> None:
    raw = _raw(["2020-01-05", "2020-01-01", "2020-01-02", "2020-01-06"], ["5", "1", None, "6.5"])
    frame, freq, notes = _validate(raw, freq="D")
    assert freq == "D"
    assert list(frame.index) == list(pd.date_range("2020-01-01", "2020-01-06", freq="D"))
    np.testing.assert_array_equal(frame["y"].to_numpy(), [1.0, np.nan, np.nan, np.nan, 5.0, 6.5])
    assert notes["sorted"] is True and notes["rows_out_of_order"] == 1 and notes["grid_steps"] == 6


def test_regularise_infers_the_frequency_from_regular_rows() -> None:
    index = pd.DatetimeIndex(pd.date_range("2021-01-01", periods=6, freq="h"), name="date")
    frame, freq, off_grid = schema.regularise(pd.DataFrame({"y": np.arange(6.0)}, index=index), None)
    assert freq == "h" and off_grid == 0
    np.testing.assert_array_equal(frame["y"].to_numpy(), np.arange(6.0))


def test_rows_off_the_grid_are_averaged_into_their_step() -> None:
    raw = _raw(["2020-01-05", "2020-01-12", "2020-01-13", "2020-01-26"], ["1", "2", "4", "8"])  # Sun, Sun, Mon, Sun
    frame, _, notes = _validate(raw, freq="W-SAT")
    assert list(frame.index) == list(pd.date_range("2020-01-04", periods=4, freq="W-SAT"))
    np.testing.assert_array_equal(frame["y"].to_numpy(), [1.0, 3.0, np.nan, 8.0])
    assert notes["rows_off_grid"] == 4


@pytest.mark.parametrize("freq", ["fortnightly", None])
def test_unknown_or_uninferable_frequency_is_a_config_error(freq: str | None) -> None:
    index = pd.DatetimeIndex(["2020-01-01", "2020-01-02", "2020-01-04"], name="date")
    with pytest.raises(ContractError) as info:
        schema.regularise(pd.DataFrame({"y": [1.0, 2.0, 3.0]}, index=index), freq)
    assert info.value.code is ErrorCode.CONFIG_ERROR


@pytest.mark.parametrize(
    ("train", "named"),
    [
        (pd.DataFrame({"y": [2.0, 2.0, np.nan, 2.0]}), "constant"),
        (pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "z": [np.nan] * 4}), "`z`"),
    ],
)
def test_train_columns_must_be_observed_and_the_target_must_vary(train: pd.DataFrame, named: str) -> None:
    train.index = pd.date_range("2020-01-01", periods=4, freq="D")
    with pytest.raises(ContractError) as info:
        schema.check_train_columns(train, "y")
    assert info.value.code is ErrorCode.DATA_SCHEMA_ERROR and named in info.value.message


def test_read_table_names_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("date,co2\n2020-01-01,1\n", encoding="utf-8")
    with pytest.raises(ContractError) as info:
        io.read_table(path, "date", ["OT"])
    assert info.value.code is ErrorCode.DATA_SCHEMA_ERROR
    assert "['OT']" in info.value.message and "co2" in info.value.message


def test_read_table_empty_file_bom_and_delimiter_hint(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ContractError) as info:
        io.read_table(empty, "date", ["y"])
    assert info.value.code is ErrorCode.DATA_SCHEMA_ERROR
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffdate,y,extra\n2020-01-01,1.5,x\n".encode())
    table = io.read_table(bom, "date", ["y"])
    assert list(table.columns) == ["date", "y"] and table["y"].iloc[0] == "1.5"
    semi = tmp_path / "semi.csv"
    semi.write_text("date;y\n2020-01-01;1\n", encoding="utf-8")
    with pytest.raises(ContractError) as info:
        io.read_table(semi, "date", ["y"])
    assert info.value.code is ErrorCode.DATA_SCHEMA_ERROR and "data.delimiter=';'" in info.value.message
    assert list(io.read_table(semi, "date", ["y"], delimiter=";").columns) == ["date", "y"]


def test_resolve_path(tmp_path: Path) -> None:
    assert io.resolve_path(None, "co2_tiny.csv").name == "co2_tiny.csv"
    for path, bundled in [(str(tmp_path / "nope.csv"), None), (str(tmp_path), None), (None, "nope.csv")]:
        with pytest.raises(ContractError) as info:
            io.resolve_path(path, bundled)
        assert info.value.code is ErrorCode.FILE_NOT_FOUND
    with pytest.raises(ContractError) as info:
        io.resolve_path(None, None)
    assert info.value.code is ErrorCode.CONFIG_ERROR
