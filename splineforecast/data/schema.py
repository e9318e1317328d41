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


def parse_timestamps(raw: pd.Series, time_format: str | None = None) -> tuple[pd.DatetimeIndex, str | None]:
    """Parse a timestamp column: ISO 8601 unless ``time_format`` is given.

    Returns:
        The naive (UTC where zoned) timestamps, in file order, and a note when zones were converted.
    """
    text = raw.astype("string").str.strip()
    if text.isna().any():
        row = int(np.flatnonzero(text.isna().to_numpy())[0])
        raise _fail(f"column `{raw.name}` line {_line(row)}: missing timestamp; every row needs one")
    zoned = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
    if zoned.any() and not zoned.all():
        row = int(np.flatnonzero((zoned != zoned.iloc[0]).to_numpy())[0])
        raise _fail(
            f"column `{raw.name}` line {_line(row)}: {text.iloc[row]!r} mixes timestamps with and without "
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
        raise _fail(f"column `{raw.name}` line {_line(row)}: cannot parse timestamp {text.iloc[row]!r}; {hint}")
    index = pd.DatetimeIndex(parsed, name=raw.name)
    note = None
    if index.tz is not None:
        index, note = index.tz_convert("UTC").tz_localize(None), "converted to UTC"
    dup = index.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise _fail(
            f"column `{raw.name}` line {_line(row)}: duplicate timestamp {index[row]}; keep one row per timestamp"
        )
    return index, note


def numeric_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Convert every column to float64; refuse non-numeric cells and infinities."""
    out = {}
    for name in frame.columns:
        column = frame[name]
        values = pd.to_numeric(column, errors="coerce")
        bad = values.isna() & column.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise _fail(
                f"column `{name}` line {_line(row)}: non-numeric value {column.iloc[row]!r}; "
                "fix it, or leave the cell empty for a missing value"
            )
        array = values.to_numpy(dtype=np.float64, na_value=np.nan)
        inf = np.isinf(array)
        if inf.any():
            row = int(np.flatnonzero(inf)[0])
            raise _fail(f"column `{name}` line {_line(row)}: infinite value; replace it or leave the cell empty")
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


def regularise(frame: pd.DataFrame, freq: str | None) -> tuple[pd.DataFrame, str, int]:
    """Put sorted rows on a regular grid of ``freq``; missing steps become NaN.

    Returns:
        The regular frame, the frequency used (inferred when ``freq`` is None), and how many
        rows were off the grid (and so averaged into their grid step).
    """
    offset, freq = _offset(freq, frame.index)
    try:  # fixed steps (h, D, 15min): the grid starts at the step holding the first row
        start = frame.index[0].floor(offset)
    except ValueError:  # anchored steps (W-SAT, MS): the anchor at or before the first row
        start = offset.rollback(frame.index[0])
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
