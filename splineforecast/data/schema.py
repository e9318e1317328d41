"""Content checks of the raw table: timestamps, dtypes, infinities, an empty target.

``validate`` turns the raw frame into a float frame on a regular time grid, or
raises DATA_SCHEMA_ERROR naming the column, the row and the fix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from splineforecast.errors import ContractError, ErrorCode


def _fail(message: str) -> ContractError:
    return ContractError(ErrorCode.DATA_SCHEMA_ERROR, message)


def parse_timestamps(raw: pd.Series) -> pd.DatetimeIndex:
    """Parse a timestamp column; refuse unparseable, missing, zoned-mixed or duplicate values."""
    parsed = pd.to_datetime(raw, errors="coerce")
    bad = parsed.isna() & raw.notna() | raw.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise _fail(
            f"column `{raw.name}` row {row}: cannot parse timestamp {raw.iloc[row]!r}; "
            "use ISO 8601 (YYYY-MM-DD[ HH:MM:SS])"
        )
    index = pd.DatetimeIndex(parsed, name=raw.name)
    if index.tz is not None:  # one zone for all rows: compute in UTC, drop the zone
        index = index.tz_convert("UTC").tz_localize(None)
    dup = index.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise _fail(
            f"column `{raw.name}` row {row}: duplicate timestamp {index[row]}; keep one row per timestamp"
        )
    return index


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
                f"column `{name}` row {row}: non-numeric value {column.iloc[row]!r}; "
                "leave the cell empty for a missing value"
            )
        array = values.to_numpy(dtype=np.float64, na_value=np.nan)
        inf = np.isinf(array)
        if inf.any():
            row = int(np.flatnonzero(inf)[0])
            raise _fail(f"column `{name}` row {row}: infinite value; replace it or leave the cell empty")
        out[name] = array
    return pd.DataFrame(out, index=frame.index)


def regularise(frame: pd.DataFrame, freq: str | None) -> tuple[pd.DataFrame, str]:
    """Sort by time and put the rows on a regular grid of ``freq`` (missing steps -> NaN).

    Returns:
        The regular frame and the frequency used (inferred when ``freq`` is None).
    """
    frame = frame.sort_index()
    if freq is None:
        inferred = pd.infer_freq(frame.index[: min(len(frame), 1000)])
        if inferred is None:
            raise ContractError(
                ErrorCode.CONFIG_ERROR,
                "cannot infer the frequency of the timestamps; set data.freq (e.g. h, D, W-SAT)",
            )
        freq = str(inferred)
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except ValueError as exc:
        raise ContractError(
            ErrorCode.CONFIG_ERROR, f"data.freq `{freq}` is not a pandas frequency alias"
        ) from exc
    grid = pd.date_range(frame.index[0], frame.index[-1], freq=offset, name=frame.index.name)
    off_grid = ~frame.index.isin(grid)
    if off_grid.any():
        raise _fail(
            f"timestamp {frame.index[off_grid][0]} is not on the data.freq `{freq}` grid "
            f"starting at {frame.index[0]}; set data.freq to the series' frequency"
        )
    return frame.reindex(grid), freq


def validate(
    raw: pd.DataFrame, time_column: str, target: str, freq: str | None, numeric: list[str] | None = None
) -> tuple[pd.DataFrame, str]:
    """Raw table -> frame on a regular DatetimeIndex, or a DATA_SCHEMA_ERROR.

    Args:
        numeric: the columns that must be numeric (float64 after this); the target always is.
            Other columns (categorical covariates) keep their cells, NaN where missing.
    """
    if raw.empty:
        raise _fail("the data file has a header but no rows; supply observations")
    index = parse_timestamps(raw[time_column])
    frame = raw.drop(columns=[time_column]).set_axis(index)
    must = [c for c in frame.columns if c == target or c in (numeric or [])]
    frame = frame.assign(**numeric_columns(frame[must]))
    if frame[target].isna().all():
        raise _fail(f"target column `{target}` has no values; choose another data.target")
    return regularise(frame, freq)
