"""Panels: each series validated and put on its grid, split from its end or by calendar cutoffs, checked
through ``check_raw`` (long and wide tables), and the config keys of panels."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from splineforecast.config import Config, SplitConfig
from splineforecast.contracts import PanelRawInputs, RawInputs, check_config, check_raw, check_window_counts
from splineforecast.data import schema
from splineforecast.data.panel import WIDE_SERIES_COLUMN, WIDE_TARGET, split_panel, validate_panel, window_shortfall
from splineforecast.data.splits import Split, time_splits
from splineforecast.errors import ContractError, ErrorCode

Compose = Callable[[list[str]], Config]
FREQS = {"h": "10min", "D": "5h", "W-SAT": "2D", "MS": "4D"}  # a grid and a shift that lands off it
STAMP = "%Y-%m-%d %H:%M:%S"
PANEL = ["data.series_column=id", "data.target=y"]


@st.composite
def long_tables(draw: st.DrawFn) -> tuple[pd.DataFrame, str]:
    """A shuffled long text table of 1-4 series (gaps, rows off the grid, a categorical column) and its freq."""
    freq = draw(st.sampled_from(sorted(FREQS)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    parts = []
    for k in range(draw(st.integers(1, 4))):
        grid = pd.date_range("2020-01-04", periods=40, freq=freq)[draw(st.integers(0, 10)) :]
        steps = grid[np.sort(rng.choice(len(grid), size=draw(st.integers(3, len(grid))), replace=False))]
        shift = pd.Timedelta(FREQS[freq])
        moved = steps + pd.to_timedelta((rng.random(len(steps)) < 0.2).astype(int) * shift)  # off grid, alone
        stamps = moved.append(steps[rng.random(len(steps)) < 0.3] + shift / 2)  # off grid, beside another row
        y = rng.normal(size=len(stamps)).round(3).astype(str)
        y[rng.random(len(stamps)) < 0.2] = ""
        y[0] = "1.5"  # every series has a target value
        cat = rng.choice(["a", "b", ""], size=len(stamps))
        parts.append(pd.DataFrame({"id": f"s{k}", "date": stamps.strftime(STAMP), "y": y, "c": cat}))
    table = pd.concat(parts).sample(frac=1.0, random_state=int(rng.integers(1000)))
    text = pd.read_csv(StringIO(table.to_csv(index=False)), dtype=str)
    return text, freq


@settings(max_examples=40, deadline=None)
@given(long_tables())
def test_each_series_is_on_its_grid_as_one_series_would_be(table: tuple[pd.DataFrame, str]) -> None:
    raw, freq = table
    frames, used, notes = validate_panel(raw, "id", "date", "y", freq, ["y"])
    assert used == freq and sorted(frames) == sorted(raw["id"].unique())
    off_grid = 0
    for sid, frame in frames.items():
        alone, _, one = schema.validate(raw[raw["id"] == sid].drop(columns="id"), "date", "y", freq, ["y"])
        pd.testing.assert_frame_equal(frame, alone)
        off_grid += one["rows_off_grid"]
    assert notes["rows_off_grid"] == off_grid and notes["series"] == len(frames)
    assert notes["grid_steps"] == sum(len(f) for f in frames.values()) and notes["rows"] == len(raw)


def _text(rows: list[tuple[str, ...]], columns: str = "id,date,y") -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns.split(","), dtype="str")


def test_series_on_grids_of_other_phases_are_placed_one_by_one() -> None:
    """Two-month steps from January and from February share no grid: each gets its own, as alone."""
    months = pd.date_range("2020-01-01", periods=12, freq="MS").strftime("%Y-%m-%d")
    rows = [("a", m, str(i)) for i, m in enumerate(months[0::2])] + [("b", m, "1") for m in months[1::2]]
    frames, _, _ = validate_panel(_text(rows), "id", "date", "y", "2MS", ["y"])
    for sid in ("a", "b"):
        alone, _, _ = schema.validate(_text(rows)[_text(rows)["id"] == sid].drop(columns="id"), "date", "y", "2MS")
        pd.testing.assert_frame_equal(frames[sid], alone)
    assert frames["b"].index[0] == pd.Timestamp("2020-02-01")


def test_ids_are_stripped_text_and_a_timestamp_may_repeat_across_series() -> None:
    rows = [
        ("007", "2020-01-01", "1"),
        (" 7 ", "2020-01-01", "2"),
        ("7", "2020-01-02", "3"),
        ("007", "2020-01-02", "4"),
    ]
    rows += [("007", "2020-01-03", "5"), ("7", "2020-01-03", "6")]
    frames, freq, _ = validate_panel(_text(rows), "id", "date", "y", None)
    assert freq == "D" and sorted(frames) == ["007", "7"]
    assert frames["7"]["y"].tolist() == [2.0, 3.0, 6.0] and frames["007"]["y"].tolist() == [1.0, 4.0, 5.0]


def test_the_frequency_is_inferred_from_the_longest_series() -> None:
    days = pd.date_range("2020-01-01", periods=6, freq="D").strftime("%Y-%m-%d")
    rows = [("long", d, "1") for d in days] + [("short", days[0], "1"), ("short", days[4], "2")]
    frames, freq, _ = validate_panel(_text(rows), "id", "date", "y", None)
    assert freq == "D" and len(frames["short"]) == 5 and frames["short"]["y"].isna().sum() == 3


def _series(n: int, start: str = "2020-01-04") -> pd.DataFrame:
    index = pd.date_range(start, periods=n, freq="W-SAT", name="date")
    return pd.DataFrame({"y": np.arange(n, dtype=np.float64)}, index=index)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 300),
    train=st.floats(0.3, 0.8),
    val=st.floats(0.05, 0.3),
    lookback=st.integers(1, 20),
    horizon=st.integers(1, 6),
)
def test_fractions_split_each_series_as_one_series(
    n: int, train: float, val: float, lookback: int, horizon: int
) -> None:
    assume(train + val < 0.95)
    sizes = (train, val, round(1.0 - train - val, 6))
    kept, left_out, rule = _split_or_none({"s": _series(n)}, SplitConfig(*sizes), lookback, horizon)
    try:
        expected = time_splits(n, *sizes)
        check_window_counts(expected, lookback, horizon)
    except ContractError as exc:
        assert exc.code is ErrorCode.INSUFFICIENT_DATA_ERROR and not kept and "s" in left_out
        return
    assert rule == "from_end" and kept[0].split == expected and left_out == {}
    pd.testing.assert_frame_equal(kept[0].frame, _series(n).iloc[: expected.n_rows])


def _split_or_none(frames: dict[str, pd.DataFrame], split: SplitConfig, lookback: int, horizon: int) -> tuple:
    """split_panel's answer, or ([], left_out, rule) when it kept none (its INSUFFICIENT_DATA_ERROR)."""
    try:
        return split_panel(frames, split, lookback, horizon)
    except ContractError as exc:
        assert exc.code is ErrorCode.INSUFFICIENT_DATA_ERROR, exc.message
        reasons = {sid: exc.message for sid in frames}
        return [], reasons, None


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 200),
    sizes=st.tuples(st.integers(1, 150), st.integers(1, 30), st.integers(1, 30)),
    lookback=st.integers(1, 12),
    horizon=st.integers(1, 6),
)
def test_row_counts_are_taken_from_each_series_end(
    n: int, sizes: tuple[int, int, int], lookback: int, horizon: int
) -> None:
    n_train, n_val, n_test = sizes
    kept, left_out, _ = _split_or_none({"s": _series(n)}, SplitConfig(*map(float, sizes)), lookback, horizon)
    train_rows = min(n_train, n - n_val - n_test)
    fits = train_rows >= lookback + horizon and min(n_val, n_test) >= horizon
    assert bool(kept) == fits and ("s" in left_out) != fits
    if fits:
        s = kept[0]
        used = train_rows + n_val + n_test
        assert s.split == Split((0, train_rows), (train_rows, train_rows + n_val), (train_rows + n_val, used))
        pd.testing.assert_frame_equal(s.frame, _series(n).iloc[n - used :])


@settings(max_examples=100, deadline=None)
@given(bounds=st.lists(st.integers(0, 60), min_size=4, max_size=4), lookback=st.integers(1, 20))
def test_window_shortfall_is_the_window_count_check(bounds: list[int], lookback: int) -> None:
    a, b, c, d = sorted(bounds)
    split, horizon = Split((a, b), (b, c), (c, d)), 1 + lookback % 5
    reason = window_shortfall(split, lookback, horizon)
    try:
        check_window_counts(split, lookback, horizon)
    except ContractError as exc:
        assert reason is not None and exc.message.startswith(reason)
    else:
        assert reason is None


def test_short_series_are_left_out_with_the_part_and_its_rows_named() -> None:
    frames = {"long": _series(100), "short": _series(30), "tiny": _series(6)}
    kept, left_out, rule = split_panel(frames, SplitConfig(60.0, 10.0, 10.0), 16, 4)
    assert [s.id for s in kept] == ["long"] and rule == "from_end"
    assert left_out == {
        "short": "the train part has 10 rows but needs at least 20",
        "tiny": "the series has 6 rows; val (10) and test (10) leave no train rows",
    }
    assert kept[0].split == Split((0, 60), (60, 70), (70, 80)) and kept[0].frame.index[0] == frames["long"].index[20]


def test_no_series_left_is_insufficient_data_naming_the_count_and_reasons() -> None:
    with pytest.raises(ContractError) as err:
        split_panel({"a": _series(12), "b": _series(15)}, SplitConfig(), 16, 4)
    assert err.value.code is ErrorCode.INSUFFICIENT_DATA_ERROR
    assert "all 2 series" in err.value.message and "`a`: the train part has 8 rows" in err.value.message


def test_calendar_cutoffs_cut_aligned_series_and_leave_out_ragged_ones() -> None:
    frames = {"full": _series(60), "late": _series(20, "2020-09-05"), "early_end": _series(44)}
    cal = SplitConfig(val_start="2020-08-01", test_start="2020-09-26", test=6.0)  # rows 30 and 38 of `full`
    kept, left_out, rule = split_panel(frames, cal, 8, 4)
    assert rule == "calendar" and [s.id for s in kept] == ["early_end", "full"]
    assert kept[1].split == Split((0, 30), (30, 38), (38, 44)) and len(kept[1].frame) == 44
    assert kept[0].split == Split((0, 30), (30, 38), (38, 44))
    assert left_out == {"late": "the train part has 0 rows but needs at least 12"}
    to_end = split_panel(frames, SplitConfig(val_start="2020-08-01", test_start="2020-09-26"), 8, 4)[0]
    assert to_end[1].split.test == (38, 60) and to_end[0].split.test == (38, 44)


def test_a_train_part_without_observations_is_refused_but_a_constant_target_is_not() -> None:
    frame = _series(40).assign(y=1.0, x=np.r_[np.full(28, np.nan), np.ones(12)])
    with pytest.raises(ContractError) as err:
        split_panel({"ok": _series(40).assign(x=1.0), "gap": frame}, SplitConfig(), 4, 2)
    assert err.value.code is ErrorCode.DATA_SCHEMA_ERROR
    assert "series `gap`: column `x` has no observed value in the train part" in err.value.message
    kept, _, _ = split_panel({"flat": frame.assign(x=2.0)}, SplitConfig(), 4, 2)
    assert kept[0].frame["y"].nunique() == 1


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    """The bundled tiny CO2 table with a series column `id` (one series, `co2`)."""
    source = Path(str(resources.files("splineforecast") / "datasets" / "co2_tiny.csv"))
    table = pd.read_csv(source, dtype=str)
    path = tmp_path / "long.csv"
    table.assign(id="only")[["id", *table.columns]].to_csv(path, index=False)
    return path


def test_one_series_keeps_todays_raw_inputs_and_a_panel_of_it_gives_the_same_rows(
    compose: Compose, tiny_csv: Path
) -> None:
    one = check_raw(compose(["data=tiny", "run_id=p"]))
    assert type(one) is RawInputs
    panel = check_raw(compose(["data=tiny", "run_id=p", f"data.path={tiny_csv}", "data.series_column=id"]))
    assert isinstance(panel, PanelRawInputs) and panel.table.ids == ["only"] and panel.table.left_out == {}
    (series,) = panel.table.series
    pd.testing.assert_frame_equal(series.frame, one.frame.iloc[: one.split.n_rows])
    assert series.split == one.split and panel.freq == one.freq == "W-SAT" and panel.n_rows == one.n_rows
    assert (panel.table.series_column, panel.table.target, panel.table.rule) == ("id", "co2", "from_end")


def test_a_long_table_is_checked_into_kept_and_left_out_series(compose: Compose, tmp_path: Path) -> None:
    weeks = pd.date_range("2020-01-04", periods=50, freq="W-SAT").strftime("%Y-%m-%d")
    rows = [("b", w, str(i), "north") for i, w in enumerate(weeks)] + [
        ("a", w, str(i % 3), "south") for i, w in enumerate(weeks[:30])
    ]
    rows += [("c", w, "2", "east") for w in weeks[:5]]
    (tmp_path / "p.csv").write_text("id,date,y,region\n" + "\n".join(",".join(r) for r in rows) + "\n")
    path, small = tmp_path / "p.csv", ["data.lookback=4", "data.horizon=2", "data.season_length=4"]
    cov = ["covariate.static=[region]", "covariate.categorical=[region]"]
    raw = check_raw(compose(["data=tiny", "run_id=p", f"data.path={path}", *PANEL, *small, *cov]))
    assert isinstance(raw, PanelRawInputs) and raw.table.ids == ["a", "b"] and raw.n_rows == 85
    assert raw.table.left_out == {"c": "the train part has 3 rows but needs at least 6"}
    a, b = raw.table.series
    assert a.split == time_splits(30, 0.6, 0.2, 0.2) and b.split == time_splits(50, 0.6, 0.2, 0.2)
    assert list(b.frame.columns) == ["y", "region"] and b.frame["y"].tolist() == list(map(float, range(50)))
    assert raw.notes["series"] == 3 and raw.notes["series_left_out"] == 1 and raw.covariates[0].name == "region"


def test_a_wide_table_makes_each_listed_column_a_series(compose: Compose, tmp_path: Path) -> None:
    weeks = pd.date_range("2020-01-04", periods=40, freq="W-SAT").strftime("%Y-%m-%d")
    lines = [f"{w},{i},{2 * i},{i % 3},ignored" for i, w in enumerate(weeks)]
    (tmp_path / "w.csv").write_text("date,a,b,x,z\n" + "\n".join(lines) + "\n")
    cfg = compose(
        ["data=tiny", "run_id=w", f"data.path={tmp_path / 'w.csv'}", "data.target=[b,a]", "covariate.dynamic=[x]"]
        + ["data.season_length=4"]  # a season the 8-row test parts can score
    )
    raw = check_raw(cfg)
    assert isinstance(raw, PanelRawInputs) and raw.table.ids == ["a", "b"] and raw.table.wide == ["b", "a"]
    assert (raw.table.series_column, raw.table.target) == (WIDE_SERIES_COLUMN, WIDE_TARGET)
    a, b = raw.table.series
    assert list(a.frame.columns) == [WIDE_TARGET, "x"] and (b.frame[WIDE_TARGET] == 2 * a.frame[WIDE_TARGET]).all()
    assert (a.frame["x"] == b.frame["x"]).all() and a.split == time_splits(40, 0.6, 0.2, 0.2)


BAD_CONFIG = [
    (["data.scaler=minmax"], "`data.scaler` (minmax) must be one of ['per_series', 'per_series_mase', 'global']"),
    ([*PANEL, "data.max_windows_per_series=0"], "`data.max_windows_per_series` (0) must be >= 1"),
    ([*PANEL, "model.series_embedding=-1"], "`model.series_embedding` (-1) must be >= 0"),
    (["data.n_jobs=0"], "`data.n_jobs` (0) must be >= 1, or -1"),
    (["data.n_jobs=-2"], "`data.n_jobs` (-2) must be >= 1, or -1"),
    (["data.target=[]"], "`data.target` ([]) must be a column name, or a non-empty list"),
    (["data.target=[a,'']"], "`data.target` (['a', '']) must be a column name"),
    (["data.target=[a,b,a]"], "names ['a'] more than once"),
    (["data.target=[a,date]"], "`data.target` (['a', 'date']) lists the time column `date`"),
    (["data.target=[a,b]", "data.series_column=id"], "`data.series_column` (id) and a list `data.target`"),
    (["data.series_column=date"], "`data.series_column` ('date') is the time column"),
    (["data.series_column=co2"], "`data.series_column` ('co2') is the target"),
    (["data.series_column=x", "covariate.dynamic=[x]"], "`data.series_column` ('x') is a covariate"),
    (["data.max_windows_per_series=5"], "`data.max_windows_per_series` (5) applies to panels only"),
    (["model.series_embedding=8"], "`model.series_embedding` (8) applies to panels only"),
    ([*PANEL, "data.split.val_start=2020-01-01"], "`data.split.val_start` (2020-01-01) and `data.split.test_start`"),
    (
        [*PANEL, "data.split.val_start=2020-03-01", "data.split.test_start=2020-02-01"],
        "`data.split.test_start` (2020-02-01) must be after `data.split.val_start` (2020-03-01)",
    ),
    (
        [*PANEL, "data.split.val_start=soon", "data.split.test_start=2020-02-01"],
        "`data.split.val_start` ('soon') is not an ISO timestamp",
    ),
    (["data.target=[a,b]", "covariate.dynamic=[b]"], "the target `b` cannot also be a covariate"),
    (["data.target=[a,b]", "covariate.dynamic=[value]"], f"covariate `{WIDE_TARGET}` has the name"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_CONFIG, ids=[" ".join(o) for o, _ in BAD_CONFIG])
def test_panel_keys_are_refused_naming_key_and_value(compose: Compose, overrides: list[str], message: str) -> None:
    with pytest.raises(ContractError) as err:
        check_config(compose(["data=tiny", "run_id=v", *overrides]))
    assert err.value.code is ErrorCode.CONFIG_ERROR and message in err.value.message


@pytest.mark.parametrize(
    "overrides",
    [
        [*PANEL, "data.scaler=global", "data.max_windows_per_series=3", "data.n_jobs=-1", "model.series_embedding=4"],
        [*PANEL, "data.split.val_start=2020-01-01", "data.split.test_start=2020-06-01"],
        ["data.target=[a,b]", "covariate.dynamic=[x]"],
        ["data.n_jobs=2", "data.scaler=global"],  # harmless for one series
    ],
)
def test_panel_keys_in_range_pass(compose: Compose, overrides: list[str]) -> None:
    check_config(compose(["data=tiny", "run_id=v", *overrides]))
