"""Startup checks of a panel's raw table (``data.series_column``, or ``data.target`` as a list).

The counterpart of ``contracts.check_raw`` for many series: the file, the declared covariates, each
series validated and put on the grid (messages name the series id and the file line), then split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from splineforecast.config import Config
from splineforecast.contracts import PanelRawInputs, read_declared
from splineforecast.data import io
from splineforecast.data.covariates import Covariate
from splineforecast.data.panel import (
    SCALERS,
    WIDE_SERIES_COLUMN,
    WIDE_TARGET,
    PanelTable,
    SeriesFrame,
    calendar_cutoffs,
    from_end_split,
    split_panel,
    target_names,
    validate_panel,
    validate_wide,
)
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.limits import check_scorable, more_rows, rows_needed


def _config_error(message: str) -> ContractError:
    return ContractError(ErrorCode.CONFIG_ERROR, message)


def check_panel_config(cfg: Config) -> None:
    """Refuse panel settings no run can use (CONFIG_ERROR naming the key and the value): data.target,
    data.series_column, data.scaler, data.max_windows_per_series, data.n_jobs, model.series_embedding and
    the calendar cutoffs; the panel-only ones are refused for one series."""
    d = cfg.data
    targets = target_names(d.target)
    if d.scaler not in SCALERS:
        raise _config_error(f"`data.scaler` ({d.scaler}) must be one of {list(SCALERS)}")
    if d.max_windows_per_series is not None and d.max_windows_per_series < 1:
        raise _config_error(f"`data.max_windows_per_series` ({d.max_windows_per_series}) must be >= 1, or null")
    if cfg.model.series_embedding < 0:
        raise _config_error(f"`model.series_embedding` ({cfg.model.series_embedding}) must be >= 0")
    if d.n_jobs == 0 or d.n_jobs < -1:
        raise _config_error(f"`data.n_jobs` ({d.n_jobs}) must be >= 1, or -1 for every core")
    calendar_cutoffs(d.split)
    if not isinstance(d.target, str) and d.time_column in targets:
        raise _config_error(f"`data.target` ({targets}) lists the time column `{d.time_column}`")
    if d.series_column is not None:
        _check_series_column(cfg, targets)
    elif isinstance(d.target, str):  # one series: the panel-only keys have nothing to act on
        only: dict[str, Any] = {
            "data.max_windows_per_series": d.max_windows_per_series,
            "model.series_embedding": cfg.model.series_embedding or None,
            "data.split.val_start": d.split.val_start,
            "data.split.test_start": d.split.test_start,
        }
        for key, value in only.items():
            if value is not None:
                raise _config_error(
                    f"`{key}` ({value}) applies to panels only: set data.series_column=COLUMN (a long table) "
                    f"or data.target=[a,b,...] (a wide table), or unset {key}"
                )


def _check_series_column(cfg: Config, targets: list[str]) -> None:
    column = cfg.data.series_column
    if not isinstance(cfg.data.target, str):
        raise _config_error(
            f"`data.series_column` ({column}) and a list `data.target` ({targets}) cannot be combined: a long "
            "table has one target column; a wide table's series are its listed columns (no series column)"
        )
    roles = {cfg.data.time_column: "the time column (data.time_column)", targets[0]: "the target (data.target)"}
    roles.update(dict.fromkeys([*cfg.covariate.dynamic, *cfg.covariate.static], "a covariate"))
    if not str(column).strip() or column in roles:
        what = roles.get(str(column), "no column name")
        raise _config_error(f"`data.series_column` ({column!r}) is {what}; the series ids need a column of their own")


@dataclass
class PanelFrames:
    """A panel's validated series on the grid, before they are split (what ``check_panel_raw`` splits)."""

    source: Path
    n_rows: int
    frames: dict[str, pd.DataFrame]  # series id -> its rows on the grid
    freq: str
    notes: dict[str, Any]
    series_column: str
    target: str
    wide: list[str] | None
    covariates: list[Covariate]


def check_panel_raw(cfg: Config) -> PanelRawInputs:
    """Check the raw table of a panel (stage=all/preprocess): file, covariates, each series, splits.

    Raises:
        ContractError: the first failed check (FILE_NOT_FOUND, DATA_SCHEMA_ERROR naming the series and
            line, CONFIG_ERROR, INSUFFICIENT_DATA_ERROR when no series holds a window in every part; the
            code of :func:`~splineforecast.limits.check_scorable` when no series can be scored).
    """
    read = panel_frames(cfg)
    return split_frames(cfg, read, read.frames)


def panel_frames(cfg: Config) -> PanelFrames:
    """Read the panel's table and validate every series, each put on the grid (not yet split)."""
    d, cov = cfg.data, cfg.covariate
    source, table, covariates = read_declared(cfg)
    numeric = [c.name for c in covariates if c.type == "numeric"]
    covariate_names = [*cov.dynamic, *cov.static]
    if d.series_column is None:  # a wide table: each listed column is one series
        wide = target_names(d.target)
        raw = io.select(table, source, d.time_column, [*wide, *covariate_names])
        frames, freq, notes = validate_wide(raw, d.time_column, wide, d.freq, numeric, d.time_format, cov.static)
        series_column, target = WIDE_SERIES_COLUMN, WIDE_TARGET
    else:
        wide, series_column, target = None, d.series_column, d.target
        raw = io.select(table, source, d.time_column, [series_column, target, *covariate_names])
        frames, freq, notes = validate_panel(
            raw, series_column, d.time_column, target, d.freq, numeric, d.time_format, cov.static
        )
    return PanelFrames(source, len(raw), frames, freq, notes, series_column, target, wide, covariates)


def split_frames(
    cfg: Config, read: PanelFrames, frames: dict[str, pd.DataFrame], left_out: dict[str, str] | None = None
) -> PanelRawInputs:
    """Split ``frames`` (``read``'s, or a backtest fold's prefixes of them) as data.split says; ``left_out``:
    series already left out, with the reason."""
    d = cfg.data
    series, short, rule = split_panel(frames, d.split, d.lookback, d.horizon)
    series, unscorable = scorable_series(cfg, series, read.target, {k: len(v) for k, v in frames.items()})
    short = {**(left_out or {}), **short, **unscorable}
    notes = {**read.notes, "series_kept": len(series), "series_left_out": len(short)}
    panel = PanelTable(read.series_column, read.target, series, short, read.freq, rule, notes, read.wide)
    return PanelRawInputs(read.source, read.n_rows, panel, read.covariates)


def scorable_series(
    cfg: Config, series: list[SeriesFrame], target: str, n_rows: dict[str, int]
) -> tuple[list[SeriesFrame], dict[str, str]]:
    """The series whose test metrics can be computed (``limits.check_scorable``, each on its own split),
    and the others with the reason; a series left out here is neither trained on nor scored, like one too
    short for a window, so the panel's means are over the series scored.

    Args:
        target: the target column of every series' frame.
        n_rows: each series' rows on the grid, before the split dropped any (what a longer series counts).

    Raises:
        ContractError: the first series' refusal (CONFIG_ERROR naming data.season_length and the rows
            needed, or INSUFFICIENT_DATA_ERROR) when no series can be scored.
    """
    d = cfg.data
    kept: list[SeriesFrame] = []
    refused: dict[str, ContractError] = {}
    for s in series:
        y = s.frame[target].to_numpy(dtype=float)
        try:
            check_scorable(y, ~pd.isna(y), s.split, d.season_length, _sizes(cfg), _more(cfg, n_rows[s.id]))
        except ContractError as exc:
            refused[s.id] = exc
            continue
        kept.append(s)
    if not kept:
        sid, first = next(iter(refused.items()))
        others = f" (and {len(refused) - 1} more series likewise)" if len(refused) > 1 else ""
        raise ContractError(
            first.code, f"no series of the panel can be scored; series `{sid}`{others}: {first.message}"
        )
    return kept, {sid: f"cannot be scored: {exc.message}" for sid, exc in refused.items()}


def _sizes(cfg: Config) -> tuple[float, float, float]:
    s = cfg.data.split
    return s.train, s.val, s.test


def _more(cfg: Config, n_rows: int) -> Callable[[], str]:
    """The second fix of a season longer than a series' rows before its test part, as its split rule says."""
    d = cfg.data

    def more() -> str:
        if calendar_cutoffs(d.split) is not None:
            return f"or give each series at least {d.season_length} rows before data.split.test_start"
        need = rows_needed(d.season_length, _sizes(cfg), lambda n: from_end_split(n, d.split)[0])
        return more_rows(d.season_length, n_rows, need)

    return more
