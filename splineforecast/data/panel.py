"""Panels: many series in one table, checked and cut per series.

A long table has one row per series and timestamp (``data.series_column`` holds the id, as text); a wide
table with ``data.target=[a, b, ...]`` makes each listed column one series (its id is the column name).
Every series is validated on its own (messages name the series id and the file line), put on the time
grid, and split on its own: ``data.split`` sizes from each series' end, or calendar cutoffs. A series too
short for a window in some part is left out and counted; the rows a series' split does not use are dropped,
so each kept series is exactly its train, val and test rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from splineforecast.data import schema, splits
from splineforecast.data.covariates import check_static
from splineforecast.data.splits import Split, time_splits
from splineforecast.errors import ContractError, ErrorCode

WIDE_SERIES_COLUMN = "series"  # the series id column of a wide table's panel (ids: the target columns)
WIDE_TARGET = "value"  # the target column of a wide table's panel
# data.scaler: each series scaled by its own train part, the same with the target's scale its in-sample
# seasonal-naive MAE (MASE's scale), or all series by all train parts
SCALERS = ("per_series", "per_series_mase", "global")


@dataclass
class SeriesFrame:
    """One kept series: its rows on the time grid (target, then covariates) and its split (local rows)."""

    id: str
    frame: pd.DataFrame  # DatetimeIndex on the grid; exactly the rows of `split` (train starts at row 0)
    split: Split


@dataclass
class PanelTable:
    """The checked series of a panel, sorted by id, and the ones left out."""

    series_column: str
    target: str  # the target column of every series' frame
    series: list[SeriesFrame]
    left_out: dict[str, str]  # series id -> reason
    freq: str
    rule: str  # from_end | calendar
    notes: dict[str, Any] = field(default_factory=dict)  # what validation did (rows, sorted, off grid, ...)
    wide: list[str] | None = None  # the wide table's target columns, when the panel came from one

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.series]


class SplitSizes(Protocol):
    """The ``data.split`` settings a panel is cut by (config.SplitConfig)."""

    train: float
    val: float
    test: float
    val_start: str | None
    test_start: str | None


def _fail(message: str) -> ContractError:
    return ContractError(ErrorCode.DATA_SCHEMA_ERROR, message)


def _config_error(message: str) -> ContractError:
    return ContractError(ErrorCode.CONFIG_ERROR, message)


def is_panel(series_column: str | None, target: Any) -> bool:
    """A long table (``data.series_column`` set) or a wide one (``data.target`` a list)."""
    return series_column is not None or not isinstance(target, str)


def target_names(target: Any) -> list[str]:
    """``data.target`` as a list of column names; CONFIG_ERROR unless a name or distinct names."""
    if isinstance(target, str):
        if not target.strip():
            raise _config_error(f"`data.target` ({target!r}) must name a column")
        return [target]
    names = list(target) if isinstance(target, Sequence) else None
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise _config_error(
            f"`data.target` ({target!r}) must be a column name, or a non-empty list of column names (a wide panel)"
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise _config_error(f"`data.target` ({names}) names {twice} more than once; list each series column once")
    return names


def calendar_cutoffs(split: SplitSizes) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """``data.split.val_start`` and ``test_start`` as naive (UTC) timestamps, or None when neither is set."""
    given = {"val_start": split.val_start, "test_start": split.test_start}
    if all(v is None for v in given.values()):
        return None
    if any(v is None for v in given.values()):
        raise _config_error(
            f"`data.split.val_start` ({split.val_start}) and `data.split.test_start` ({split.test_start}) "
            "go together: set both calendar cutoffs, or neither (sizes from each series' end)"
        )
    val, test = (_cutoff(k, str(v)) for k, v in given.items())
    if test <= val:
        raise _config_error(
            f"`data.split.test_start` ({split.test_start}) must be after `data.split.val_start` ({split.val_start})"
        )
    return val, test


def _cutoff(key: str, value: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except ValueError:
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise _config_error(f"`data.split.{key}` ({value!r}) is not an ISO timestamp (e.g. 2020-01-01)")
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tz is not None else stamp


# --- validation --------------------------------------------------------------------------------------


def validate_panel(
    raw: pd.DataFrame,
    series_column: str,
    time_column: str,
    target: str,
    freq: str | None,
    numeric: Sequence[str] = (),
    time_format: str | None = None,
    static: Sequence[str] = (),
) -> tuple[dict[str, pd.DataFrame], str, dict[str, Any]]:
    """A long raw text table -> each series' frame on the time grid, or a DATA_SCHEMA_ERROR naming the
    series and the file line.

    Cells are parsed once for the whole table, then grouped: ids (text, stripped) must be present, a
    timestamp appears once per series, static covariates are constant within a series, and every
    series has a target value. Each series is sorted by time and put on the grid as
    ``schema.regularise`` does (``freq``: given, or inferred from the longest series).

    Returns:
        The frames by series id, the frequency, and the notes of what was done to the rows.
    """
    if raw.empty:
        raise _fail("the data file has a header but no rows; supply observations")
    ids = _series_ids(raw[series_column])

    def where(row: int) -> str:
        return f"line {schema.line(row)} (series `{ids.iloc[row]}`)"

    index, zone_note = schema.parse_timestamps(raw[time_column], time_format, unique=False, where=where)
    frame = raw.drop(columns=[time_column, series_column]).set_axis(index)
    must = [c for c in frame.columns if c == target or c in numeric]
    frame[must] = schema.numeric_columns(frame[must], where)
    groups = _Groups(ids, index.asi8)
    groups.check_duplicates(index)
    groups.check_target(frame[target], target)
    for name in static:
        groups.check_static(frame[name], name)
    ordered = frame.iloc[groups.order]
    longest = int(np.argmax(np.diff(groups.bounds)))
    freq = schema.resolve_freq(freq, ordered.index[groups.bounds[longest] : groups.bounds[longest + 1]])
    regular, off_grid = schema.regularise_groups(ordered, groups.bounds, freq)
    notes = {
        "rows": len(raw),
        "series": len(groups.ids),
        "rows_out_of_order": groups.n_unsorted,
        "sorted": groups.n_unsorted > 0,
        "timezone": zone_note or "none",
        "rows_off_grid": off_grid,
        "grid_steps": sum(len(f) for f in regular),
    }
    return dict(zip(groups.ids, regular, strict=True)), freq, notes


def _series_ids(column: pd.Series) -> pd.Series:
    """The ids as stripped text; DATA_SCHEMA_ERROR at the first row without one."""
    text = column.astype("string").str.strip()
    missing = (text.isna() | (text == "")).to_numpy(dtype=bool)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise _fail(
            f"column `{column.name}` line {schema.line(row)}: missing series id; every row of a long table "
            "names its series in data.series_column"
        )
    return text.reset_index(drop=True)


class _Groups:
    """The rows of each series: ``order`` sorts the table by id, then time (stable); ``bounds[g]`` is
    where series ``g`` (of the sorted ``ids``) starts in that order; ``in_file[bounds[g]:bounds[g + 1]]``
    are its rows in file order."""

    def __init__(self, ids: pd.Series, times: np.ndarray) -> None:
        codes, uniques = pd.factorize(ids, sort=True)
        self.ids = [str(i) for i in uniques]
        self.codes, self.times, self.row_ids = codes, times, ids
        self.order = np.lexsort((times, codes))
        self.in_file = np.argsort(codes, kind="stable")
        self.bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(uniques)))])
        same = codes[self.in_file][1:] == codes[self.in_file][:-1]
        self.n_unsorted = int((same & (np.diff(times[self.in_file]) < 0)).sum())

    def check_duplicates(self, index: pd.DatetimeIndex) -> None:
        codes, times = self.codes[self.order], self.times[self.order]
        dup = np.flatnonzero((codes[1:] == codes[:-1]) & (times[1:] == times[:-1]))
        if dup.size:
            k = dup[np.argmin(self.order[dup + 1])]  # the duplicate met first in the file
            first, again = int(self.order[k]), int(self.order[k + 1])
            raise _fail(
                f"series `{self.row_ids.iloc[again]}` line {schema.line(again)}: duplicate timestamp {index[again]} "
                f"(also on line {schema.line(first)}); keep one row per series and timestamp"
            )

    def check_target(self, values: pd.Series, target: str) -> None:
        seen = np.bincount(self.codes, weights=values.notna().to_numpy(), minlength=len(self.ids))
        empty = np.flatnonzero(seen == 0)
        if empty.size:
            first = self.in_file[self.bounds[empty]]
            g, row = int(empty[np.argmin(first)]), int(first.min())
            n = int(self.bounds[g + 1] - self.bounds[g])
            raise _fail(
                f"series `{self.ids[g]}` (first row on line {schema.line(row)}, {n} rows): target column "
                f"`{target}` has no values; fill it or drop the series"
            )

    def check_static(self, values: pd.Series, name: str) -> None:
        cells, _ = pd.factorize(values.to_numpy())  # -1 where missing
        seen, width = cells >= 0, int(cells.max()) + 1
        pairs = np.unique(self.codes[seen].astype(np.int64) * width + cells[seen])  # (series, value) seen
        varying = np.flatnonzero(np.bincount(pairs // max(width, 1), minlength=len(self.ids)) > 1)
        if not varying.size:
            return
        g = int(varying[np.argmin(self.in_file[self.bounds[varying]])])
        rows = self.in_file[self.bounds[g] : self.bounds[g + 1]]
        rows = rows[cells[rows] >= 0]
        first, other = int(rows[0]), int(rows[cells[rows] != cells[rows[0]]][0])
        raise _fail(
            f"series `{self.ids[g]}` line {schema.line(other)}: static covariate `{name}` is "
            f"{str(values.iloc[other])!r} but {str(values.iloc[first])!r} on line {schema.line(first)}; a static "
            "covariate is constant within each series: fix the cells or declare it in covariate.dynamic"
        )


def validate_wide(
    raw: pd.DataFrame,
    time_column: str,
    targets: Sequence[str],
    freq: str | None,
    numeric: Sequence[str] = (),
    time_format: str | None = None,
    static: Sequence[str] = (),
) -> tuple[dict[str, pd.DataFrame], str, dict[str, Any]]:
    """A wide raw table (one time axis) -> one frame per column of ``targets``: that column as
    ``WIDE_TARGET``, then the shared covariates. The table is validated as one series is."""
    for name in targets if not raw.empty else ():
        if raw[name].isna().all():
            raise _fail(
                f"series `{name}` (column `{name}`, lines {schema.line(0)}-{schema.line(len(raw) - 1)}) has no "
                "values; fill it or drop it from data.target"
            )
    frame, freq, notes = schema.validate(raw, time_column, targets[0], freq, [*targets, *numeric], time_format)
    check_static(frame, list(static))
    shared = [c for c in frame.columns if c not in targets]
    frames = {name: frame[[name, *shared]].rename(columns={name: WIDE_TARGET}) for name in targets}
    return frames, freq, {**notes, "series": len(frames)}


# --- splits ------------------------------------------------------------------------------------------


def split_panel(
    frames: dict[str, pd.DataFrame], split: SplitSizes, lookback: int, horizon: int
) -> tuple[list[SeriesFrame], dict[str, str], str]:
    """Cut each series: ``data.split`` sizes from its end (``from_end``), or the calendar cutoffs
    (``calendar``, when ``split.val_start`` and ``split.test_start`` are set).

    A series without one window in some part is left out, with the reason; the rows a split does not
    use are dropped, so each kept frame is exactly its train, val and test rows.

    Returns:
        The kept series, sorted by id; the left-out ids with their reasons; the rule.

    Raises:
        ContractError: INSUFFICIENT_DATA_ERROR when no series is kept; DATA_SCHEMA_ERROR when a kept
            series' train part has a column without an observed value; CONFIG_ERROR for bad sizes or cutoffs.
    """
    cutoffs = calendar_cutoffs(split)
    kept: list[SeriesFrame] = []
    left_out: dict[str, str] = {}
    for sid in sorted(frames):
        frame = frames[sid]
        parts, reason = (
            (_calendar_split(frame.index, cutoffs, split.test), None)
            if cutoffs is not None
            else from_end_split(len(frame), split)
        )
        start, stop = parts.train[0], parts.test[1]  # the rows before train are dropped: train starts at 0
        local = Split(*((a - start, b - start) for a, b in (parts.train, parts.val, parts.test)))
        reason = reason or window_shortfall(local, lookback, horizon)
        if reason is not None:
            left_out[sid] = reason
            continue
        kept.append(SeriesFrame(sid, frame if (start, stop) == (0, len(frame)) else frame.iloc[start:stop], local))
    if not kept:
        shown = "; ".join(f"`{k}`: {v}" for k, v in list(left_out.items())[:3])
        raise ContractError(
            ErrorCode.INSUFFICIENT_DATA_ERROR,
            f"all {len(frames)} series are too short for one window of lookback {lookback} + horizon {horizon} "
            f"in each part ({shown}{'; ...' if len(left_out) > 3 else ''}); lower data.lookback/data.horizon, "
            "change data.split, or supply longer series",
        )
    for s in kept:
        _check_train_observed(s)
    rule = "calendar" if cutoffs is not None else "from_end"
    return kept, left_out, rule


def from_end_split(n: int, split: SplitSizes) -> tuple[Split, str | None]:
    """Fractions: as ``time_splits`` (one series); row counts: test is the last rows, val before it,
    and train up to its size before val."""
    sizes = (split.train, split.val, split.test)
    if all(s < 1 for s in sizes):
        try:
            return time_splits(n, *sizes), None
        except ContractError as exc:
            if exc.code is not ErrorCode.INSUFFICIENT_DATA_ERROR:
                raise
            return Split((0, 0), (0, 0), (0, 0)), exc.message
    n_train, n_val, n_test = (splits._rows(s, n, k) for s, k in zip(sizes, splits.PARTS, strict=True))
    val = n - n_val - n_test
    if val < 1:
        return Split((0, 0), (0, 0), (0, 0)), (
            f"the series has {n} rows; val ({n_val}) and test ({n_test}) leave no train rows"
        )
    return Split((max(0, val - n_train), val), (val, val + n_val), (val + n_val, n)), None


def _calendar_split(index: pd.DatetimeIndex, cutoffs: tuple[pd.Timestamp, pd.Timestamp], test: float) -> Split:
    """Train before val_start, val up to test_start, test from there: ``test`` rows (a count) or to the end."""
    a, b = (int(i) for i in index.searchsorted(list(cutoffs)))
    end = len(index) if test < 1 else min(len(index), b + splits._rows(test, len(index), "test"))
    return Split((0, a), (a, b), (b, end))


def window_shortfall(split: Split, lookback: int, horizon: int) -> str | None:
    """Why a part of ``split`` cannot hold one window (``contracts.check_window_counts``' rule), or None."""
    for name, (a, b) in split.parts().items():
        first = max(0, a - lookback)
        if b - first < lookback + horizon or b - a < horizon:
            need = lookback + horizon if name == "train" else horizon
            return f"the {name} part has {b - a} rows but needs at least {need}"
    return None


def _check_train_observed(series: SeriesFrame) -> None:
    n = series.split.train[1]
    observed = ~pd.isna(series.frame.to_numpy()[:n]).all(axis=0)
    if not observed.all():
        train, empty = series.frame.iloc[:n], list(series.frame.columns[~observed])
        raise _fail(
            f"series `{series.id}`: column `{empty[0]}` has no observed value in the train part "
            f"({train.index[0]} .. {train.index[-1]}); scaling and filling cannot be fitted: drop the column "
            "or the series, or change data.split"
        )
