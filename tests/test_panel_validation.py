"""Each panel validation rule through the real command: the exit code, the one-line JSON payload whose
message names the series and the file line (the header is line 1), and nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable

import pandas as pd
import pytest
from conftest import Cli

WEEKS = list(pd.date_range("2020-01-04", periods=4, freq="W-SAT").strftime("%Y-%m-%d"))
LONG = ("data=tiny", "data.path=panel.csv", "data.series_column=id", "data.target=y", "run_id=p")
STATIC = ("covariate.static=[region]", "covariate.categorical=[region]")
Rows = list[list[str]]


def _long(edit: Callable[[Rows], None]) -> str:
    """Series `a` on lines 2-5 and `b` on lines 6-9 (the same four weeks), after ``edit``."""
    rows = [
        [sid, week, str(i + 1), region]
        for sid, region in (("a", "north"), ("b", "south"))
        for i, week in enumerate(WEEKS)
    ]
    edit(rows)
    return "id,date,y,region\n" + "".join(",".join(r) + "\n" for r in rows)


def _set(row: int, column: int, value: str) -> Callable[[Rows], None]:
    def edit(rows: Rows) -> None:
        rows[row][column] = value

    return edit


def _empty_target(rows: Rows) -> None:
    for r in rows[4:]:
        r[2] = ""


WIDE = "date,a,b\n" + "".join(f"{w},{i},\n" for i, w in enumerate(WEEKS))
CASES = {
    "missing_id": (_long(_set(5, 0, "")), LONG, "column `id` line 7: missing series id"),
    "blank_id": (_long(_set(2, 0, "   ")), LONG, "column `id` line 4: missing series id"),
    "duplicate_in_series": (
        _long(_set(6, 1, WEEKS[1])),
        LONG,
        "series `b` line 8: duplicate timestamp 2020-01-11 00:00:00 (also on line 7)",
    ),
    "static_varies": (
        _long(_set(2, 3, "east")),
        (*LONG, *STATIC),
        "series `a` line 4: static covariate `region` is 'east' but 'north' on line 2",
    ),
    "target_all_missing": (
        _long(_empty_target),
        LONG,
        "series `b` (first row on line 6, 4 rows): target column `y` has no values",
    ),
    "non_numeric": (_long(_set(5, 2, "abc")), LONG, "column `y` line 7 (series `b`): non-numeric value 'abc'"),
    "infinite": (_long(_set(1, 2, "inf")), LONG, "column `y` line 3 (series `a`): infinite value"),
    "bad_timestamp": (
        _long(_set(6, 1, "soon")),
        LONG,
        "column `date` line 8 (series `b`): cannot parse timestamp 'soon'",
    ),
    "mixed_zones": (
        _long(_set(3, 1, WEEKS[3] + "T00:00:00+01:00")),
        LONG,
        "column `date` line 5 (series `a`): '2020-01-25T00:00:00+01:00' mixes timestamps",
    ),
    "wide_column_empty": (
        WIDE,
        ("data=tiny", "data.path=panel.csv", "data.target=[a,b]", "run_id=p"),
        "series `b` (column `b`, lines 2-5) has no values",
    ),
}


def _refusal(cli: Cli, table: str, overrides: tuple[str, ...]) -> tuple[int, dict]:
    (cli.root / "panel.csv").write_text(table)
    done = cli(*overrides)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr  # one JSON line
    assert not cli.artifacts.exists() and not (cli.root / "mlruns").exists()
    return done.returncode, json.loads(lines[0])


@pytest.mark.parametrize("case", list(CASES))
def test_each_rule_refuses_naming_the_series_and_line(cli: Cli, case: str) -> None:
    table, overrides, message = CASES[case]
    code, payload = _refusal(cli, table, overrides)
    assert code == 28 and payload["exit_code"] == 28 and payload["error"]["code"] == "DATA_SCHEMA_ERROR"
    assert message in payload["error"]["message"], payload["error"]["message"]


def test_no_series_long_enough_is_insufficient_data(cli: Cli) -> None:
    code, payload = _refusal(cli, _long(lambda rows: None), LONG)
    assert code == 26 and payload["error"]["code"] == "INSUFFICIENT_DATA_ERROR"
    message = payload["error"]["message"]
    assert "all 2 series are too short" in message and "`a`: the train part has 2 rows but needs at least 20" in message


def test_a_series_column_with_a_list_target_is_a_config_error(cli: Cli) -> None:
    code, payload = _refusal(
        cli, WIDE, ("data=tiny", "data.path=panel.csv", "data.target=[a,b]", "data.series_column=id")
    )
    assert code == 25 and payload["error"]["code"] == "CONFIG_ERROR"
    assert (
        "`data.series_column` (id) and a list `data.target` (['a', 'b']) cannot be combined"
        in payload["error"]["message"]
    )
