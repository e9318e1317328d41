"""Content checks of the raw table: timestamps, dtypes, infinities, empty or constant columns.

``validate`` turns the raw text table into a frame on a regular time grid, or raises
DATA_SCHEMA_ERROR naming the column, the file line (header = line 1) and the fix.

Policies (recorded in meta.json under ``data_checks``):
* unsorted rows are sorted by time (stable), and counted;
* timestamps with a UTC offset are converted to UTC and the zone dropped; a mix of zoned
  and zone-less timestamps is refused;
* rows off the ``data.freq`` grid are put on it first: values are averaged per grid step
  (categorical cells take the last value), and counted;
* missing grid steps become missing values (NaN), to be filled by the spline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from splineforecast.errors import ContractError, ErrorCode

HEADER_LINES = 1


def _fail(message: str) -> ContractError:
    return ContractError(ErrorCode.DATA_SCHEMA_ERROR, message)


def _line(row: int) -> int:
    """File line of a 0-based data row."""
    return row + HEADER_LINES + 1


def line(row: int) -> int:
    """File line of a 0-based data row (the header is line 1)."""
    return _line(row)


Where = Callable[[int], str]  # how a message names a 0-based data row ("line 7", "line 7 (series `a`)")


def _at_line(row: int) -> str:
    return f"line {_line(row)}"


def parse_timestamps(
    raw: pd.Series, time_format: str | None = None, unique: bool = True, where: Where = _at_line
) -> tuple[pd.DatetimeIndex, str | None]:
    """Parse a timestamp column: ISO 8601 unless ``time_format`` is given.

    Args:
        unique: refuse a timestamp seen twice in the column (a panel checks duplicates per series).
        where: names a row in messages.

    Returns:
        The naive (UTC where zoned) timestamps, in file order, and a note when zones were converted.
    """
    text = raw.astype("string").str.strip()
    if text.isna().any():
        row = int(np.flatnonzero(text.isna().to_numpy())[0])
        raise _fail(f"column `{raw.name}` {where(row)}: missing timestamp; every row needs one")
    zoned = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
    if zoned.any() and not zoned.all():
        row = int(np.flatnonzero((zoned != zoned.iloc[0]).to_numpy())[0])
        raise _fail(
            f"column `{raw.name}` {where(row)}: {text.iloc[row]!r} mixes timestamps with and without "
            "a UTC offset; give every timestamp an offset, or none"
        )
    fmt = time_format or "ISO8601"
    parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=bool(zoned.all()))
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        hint = (
            f"it does not match data.time_format `{time_format}`"
            if time_format
            else "write ISO 8601 (YYYY-MM-DD[ HH:MM:SS]), or set data.time_format (e.g. %d/%m/%Y) "
            "so day and month cannot be confused"
        )
        raise _fail(f"column `{raw.name}` {where(row)}: cannot parse timestamp {text.iloc[row]!r}; {hint}")
    index = pd.DatetimeIndex(parsed, name=raw.name)
    note = None
    if index.tz is not None:
        index, note = index.tz_convert("UTC").tz_localize(None), "converted to UTC"
    dup = index.duplicated() if unique else np.zeros(0, dtype=bool)
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise _fail(
            f"column `{raw.name}` line {_line(row)}: duplicate timestamp {index[row]}; keep one row per timestamp"
        )
    return index, note


def numeric_columns(frame: pd.DataFrame, where: Where = _at_line) -> pd.DataFrame:
    """Convert every column to float64; refuse non-numeric cells and infinities (``where`` names a row)."""
    out = {}
    for name in frame.columns:
        column = frame[name]
        values = pd.to_numeric(column, errors="coerce")
        bad = values.isna() & column.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise _fail(
                f"column `{name}` {where(row)}: non-numeric value {column.iloc[row]!r}; "
                "fix it, or leave the cell empty for a missing value"
            )
        array = values.to_numpy(dtype=np.float64, na_value=np.nan)
        inf = np.isinf(array)
        if inf.any():
            row = int(np.flatnonzero(inf)[0])
            raise _fail(f"column `{name}` {where(row)}: infinite value; replace it or leave the cell empty")
        out[name] = array
    return pd.DataFrame(out, index=frame.index)


def _offset(freq: str | None, index: pd.DatetimeIndex) -> tuple[pd.DateOffset, str]:
    if freq is None:
        inferred = pd.infer_freq(index[: min(len(index), 1000)]) if len(index) >= 3 else None
        if inferred is None:
            raise ContractError(
                ErrorCode.CONFIG_ERROR,
                "cannot infer the frequency of the timestamps; set data.freq (e.g. h, D, W-SAT)",
            )
        freq = str(inferred)
    try:
        return pd.tseries.frequencies.to_offset(freq), freq
    except ValueError as exc:
        raise ContractError(ErrorCode.CONFIG_ERROR, f"data.freq `{freq}` is not a pandas frequency alias") from exc


def resolve_freq(freq: str | None, index: pd.DatetimeIndex) -> str:
    """``freq`` when it is a pandas alias, else the frequency inferred from the sorted ``index``.

    Raises:
        ContractError: CONFIG_ERROR when ``freq`` is no alias, or none can be inferred.
    """
    return _offset(freq, index)[1]


def grid_start(offset: pd.DateOffset, first: pd.Timestamp) -> pd.Timestamp:
    """The first grid step of a series whose first row is at ``first``."""
    try:  # fixed steps (h, D, 15min): the grid starts at the step holding the first row
        return first.floor(offset)
    except ValueError:  # anchored steps (W-SAT, MS): the anchor at or before the first row
        return offset.rollback(first)


def regularise(frame: pd.DataFrame, freq: str | None) -> tuple[pd.DataFrame, str, int]:
    """Put sorted rows on a regular grid of ``freq``; missing steps become NaN.

    Returns:
        The regular frame, the frequency used (inferred when ``freq`` is None), and how many
        rows were off the grid (and so averaged into their grid step).
    """
    offset, freq = _offset(freq, frame.index)
    start = grid_start(offset, frame.index[0])
    grid = pd.date_range(start, frame.index[-1], freq=offset, name=frame.index.name)
    off_grid = int((~frame.index.isin(grid)).sum())
    if off_grid:
        numeric = frame.select_dtypes("number").columns
        how = {c: ("mean" if c in numeric else "last") for c in frame.columns}
        # each row goes to the grid step at or before it
        step = grid[np.searchsorted(grid.asi8, frame.index.asi8, side="right") - 1]
        frame = frame.groupby(step).agg(how)
        frame.index.name = grid.name
    return frame.reindex(grid), freq, off_grid


def validate(
    raw: pd.DataFrame,
    time_column: str,
    target: str,
    freq: str | None,
    numeric: list[str] | None = None,
    time_format: str | None = None,
) -> tuple[pd.DataFrame, str, dict[str, Any]]:
    """Raw text table -> frame on a regular DatetimeIndex, or a DATA_SCHEMA_ERROR.

    Args:
        numeric: the columns that must be numeric (float64 after this); the target always is.
            Other columns (categorical covariates) keep their cells, NaN where missing.
        time_format: strftime format of the timestamps; None means ISO 8601.

    Returns:
        The frame, the frequency, and the notes of what was done to the rows (for meta.json).
    """
    if raw.empty:
        raise _fail("the data file has a header but no rows; supply observations")
    index, zone_note = parse_timestamps(raw[time_column], time_format)
    frame = raw.drop(columns=[time_column]).set_axis(index)
    must = [c for c in frame.columns if c == target or c in (numeric or [])]
    frame[must] = numeric_columns(frame[must])
    if frame[target].isna().all():
        raise _fail(f"target column `{target}` has no values; choose another data.target")
    n_unsorted = int((np.diff(index.asi8) < 0).sum())
    frame = frame.sort_index(kind="stable")
    frame, freq, off_grid = regularise(frame, freq)
    notes = {
        "rows": len(raw),
        "rows_out_of_order": n_unsorted,
        "sorted": n_unsorted > 0,
        "timezone": zone_note or "none",
        "rows_off_grid": off_grid,
        "grid_steps": len(frame),
    }
    return frame, freq, notes


def check_train_columns(train: pd.DataFrame, target: str) -> None:
    """Every feature has an observed value in the train part, and the target varies there."""
    for name in train.columns:
        if train[name].isna().all():
            raise _fail(
                f"column `{name}` has no observed value in the train part ({train.index[0]} .. "
                f"{train.index[-1]}); scaling cannot be fitted: drop it or change data.split"
            )
    values = train[target].dropna()
    if values.nunique() < 2:
        raise _fail(
            f"target `{target}` is constant ({float(values.iloc[0])}) over the train part; there is nothing to learn"
        )


def regularise_groups(frame: pd.DataFrame, bounds: np.ndarray, freq: str) -> tuple[list[pd.DataFrame], int]:
    """``regularise`` of each group of rows ``frame.iloc[bounds[g]:bounds[g + 1]]`` (each sorted by time).

    The groups' grids are slices of one grid when their starts lie on it (the usual case), so the
    placing, and the averaging of rows off the grid, run once over all rows; otherwise group by group.

    Returns:
        The regular frame of each group, in order, and how many rows were off the grid in all.
    """
    offset, freq = _offset(freq, frame.index)
    bounds = np.asarray(bounds, dtype=np.int64)
    index = frame.index
    firsts, lasts = index[bounds[:-1]], index[bounds[1:] - 1]
    unique_firsts = firsts.unique()
    unique_starts = pd.DatetimeIndex([grid_start(offset, t) for t in unique_firsts]).as_unit(index.unit)
    starts = unique_starts[unique_firsts.get_indexer(firsts)]
    grid = _shared_grid(offset, starts, lasts, len(frame), index.name)
    if grid is None:
        done = [regularise(frame.iloc[a:b], freq) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        return [f for f, _, _ in done], sum(n for _, _, n in done)
    step = grid.searchsorted(index, side="right") - 1  # each row's grid step: the one at or before it
    off_grid = grid[step] != index
    first, last = grid.get_indexer(starts), grid.searchsorted(lasts, side="right") - 1
    ends = np.concatenate([[0], np.cumsum(last - first + 1)])
    group = np.repeat(np.arange(len(firsts)), np.diff(bounds))
    slot = ends[group] + step - first[group]  # the row's place in all groups' grids end to end
    if off_grid.any():
        numeric = frame.select_dtypes("number").columns
        frame = frame.set_axis(slot).groupby(level=0).agg({c: ("mean" if c in numeric else "last") for c in frame})
        slot = frame.index.to_numpy()
    placed = pd.DataFrame({c: _spread(frame[c], slot, int(ends[-1])) for c in frame.columns})
    out = []
    for a, b, f in zip(ends[:-1], ends[1:], first, strict=True):
        piece = placed.iloc[a:b]  # slicing one frame is cheaper than building many
        piece.index = grid[f : f + b - a]  # a slice of the grid: its freq kept
        out.append(piece)
    return out, int(off_grid.sum())


def _shared_grid(
    offset: pd.DateOffset, starts: pd.DatetimeIndex, lasts: pd.DatetimeIndex, n_rows: int, name: Any
) -> pd.DatetimeIndex | None:
    """One grid holding every group's grid, or None (a grid far longer than the rows, or starts off it)."""
    try:
        steps = (lasts.max() - starts.min()) / pd.Timedelta(offset)
    except (ValueError, TypeError):  # calendar steps (W-SAT, MS, B): at least a day, or an hour
        steps = (lasts.max() - starts.min()) / pd.Timedelta(hours=1)
    if steps > 4 * n_rows + 1_000_000:
        return None
    grid = pd.date_range(starts.min(), lasts.max(), freq=offset, name=name, unit=starts.unit)
    return grid if bool(starts.isin(grid).all()) else None


def _spread(column: pd.Series, slot: np.ndarray, size: int) -> Any:
    """``column``'s values at ``slot`` of an array of ``size``, missing elsewhere (its dtype kept)."""
    if column.dtype == np.float64:
        out = np.full(size, np.nan)
        out[slot] = column.to_numpy()
        return out
    source = np.full(size, -1, dtype=np.int64)
    source[slot] = np.arange(len(column))
    return column.array.take(source, allow_fill=True)
