"""The rolling origins of stage=backtest: fold names, cutoffs, and each fold's checked inputs.

Fold ``k`` of ``backtest.folds`` ends ``(folds - 1 - k) * backtest.step`` rows before the series' end (each
series' own end, in a panel): its data is the rows before that cutoff, split as ``data.split`` says with
the test part last (fractions of the fold's rows; row counts back from the cutoff, as a panel's are). So
each fold is an ordinary run on a prefix of the checked table, and no fold sees a row after its cutoff.
Imports neither torch, Lightning nor MLflow: a refusal is fast and writes nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from splineforecast.artifacts import check_run_id
from splineforecast.config import Config
from splineforecast.contracts import PanelRawInputs, RawInputs, check_raw, check_window_counts
from splineforecast.data import schema
from splineforecast.data.panel import from_end_split, is_panel
from splineforecast.data.splits import Split
from splineforecast.errors import ContractError, ErrorCode


def fold_run_id(run_id: str, k: int) -> str:
    """The run_id of fold ``k`` of the backtest ``run_id``: the one place this name is made."""
    return f"{run_id}-fold{k}"


def step_of(cfg: Config) -> int:
    """Rows between consecutive origins: ``backtest.step``, or ``data.horizon`` when it is null."""
    return cfg.data.horizon if cfg.backtest.step is None else cfg.backtest.step


def offsets(folds: int, step: int) -> list[int]:
    """How many rows before the series' end each fold's data stops, earliest origin (fold 0) first."""
    return [(folds - 1 - k) * step for k in range(folds)]


@dataclass(frozen=True)
class Fold:
    """One origin of a backtest: its number, run_id, offset from the series' end, and its checked inputs."""

    k: int
    run_id: str
    offset: int
    raw: RawInputs | PanelRawInputs


def _config_error(message: str) -> ContractError:
    return ContractError(ErrorCode.CONFIG_ERROR, message)


def check_backtest_config(cfg: Config) -> None:
    """Refuse backtest settings no run can use (CONFIG_ERROR naming the key and the value)."""
    b = cfg.backtest
    if b.folds < 1:
        raise _config_error(f"`backtest.folds` ({b.folds}) must be >= 1")
    if b.step is not None and b.step < 1:
        raise _config_error(f"`backtest.step` ({b.step}) must be >= 1, or null for data.horizon")
    if cfg.stage != "backtest":
        return
    s = cfg.data.split
    if s.val_start is not None or s.test_start is not None:
        raise _config_error(
            f"stage=backtest moves the cutoff, but data.split.val_start ({s.val_start}) and data.split.test_start "
            f"({s.test_start}) cut every fold on one calendar: unset them"
        )
    sizes = (s.train, s.val, s.test)
    if all(0 < v < 1 for v in sizes) and abs(sum(sizes) - 1) > 1e-9:
        raise _config_error(
            f"stage=backtest needs each fold's test part to end at its cutoff: data.split fractions "
            f"{list(sizes)} sum to {sum(sizes):g}, not 1; make them sum to 1 or give row counts"
        )
    if cfg.data.processed is not None:
        raise _config_error(
            f"stage=backtest preprocesses every fold from the data file; unset data.processed ({cfg.data.processed})"
        )
    if cfg.run_id is not None:
        check_run_id(fold_run_id(cfg.run_id, b.folds - 1))


def check_folds(cfg: Config) -> list[Fold]:
    """The checked inputs of every fold of ``cfg``'s backtest (whose run_id is set), earliest first.

    Raises:
        ContractError: the table's own refusals; INSUFFICIENT_DATA_ERROR when a fold's prefix cannot hold
            a window in each part (naming the fold, its rows and backtest.folds x backtest.step).
    """
    assert cfg.run_id is not None
    cuts = offsets(cfg.backtest.folds, step_of(cfg))
    if is_panel(cfg.data.series_column, cfg.data.target):
        return _panel_folds(cfg, cuts)
    raw = check_raw(cfg)
    assert isinstance(raw, RawInputs)
    return [_series_fold(cfg, raw, k, offset) for k, offset in enumerate(cuts)]


def _where(cfg: Config, k: int, offset: int, n: int | None = None) -> str:
    b, rows = cfg.backtest, "" if n is None else f"; the series has {n} rows, so it keeps {n - offset}"
    return (
        f"backtest fold {k} of {b.folds} ends {offset} rows before the series' end "
        f"(backtest.folds {b.folds} x backtest.step {step_of(cfg)}{rows})"
    )


def _short(cfg: Config, k: int, offset: int, reason: str, n: int | None = None) -> ContractError:
    return ContractError(
        ErrorCode.INSUFFICIENT_DATA_ERROR,
        f"{_where(cfg, k, offset, n)}: {reason}; lower backtest.folds or backtest.step, "
        "or lower data.lookback/data.horizon",
    )


def _series_fold(cfg: Config, raw: RawInputs, k: int, offset: int) -> Fold:
    """Fold ``k`` of one series: the checked frame's rows before the cutoff, split with test last."""
    d, n = cfg.data, len(raw.frame)
    if n - offset < 1:
        raise _short(cfg, k, offset, "no rows are left", n)
    split, reason = from_end_split(n - offset, d.split)
    if reason is not None:
        raise _short(cfg, k, offset, reason, n)
    start = split.train[0]  # rows before train (row-count splits) are not the fold's
    local = Split(*((a - start, b - start) for a, b in split.parts().values()))
    try:
        check_window_counts(local, d.lookback, d.horizon)
    except ContractError as exc:
        raise _short(cfg, k, offset, exc.message.split(";")[0], n) from exc
    frame = raw.frame.iloc[start : n - offset]
    schema.check_train_columns(frame.iloc[: local.train[1]], d.target)
    notes = {**raw.notes, "backtest": {"fold": k, "offset": offset, "rows": [start, n - offset]}}
    fold_raw = dataclasses.replace(raw, frame=frame, split=local, notes=notes)
    return Fold(k, fold_run_id(cfg.run_id or "", k), offset, fold_raw)


def _panel_folds(cfg: Config, cuts: list[int]) -> list[Fold]:
    """Every series cut at its own end minus the fold's offset, then split per series as a panel is.

    With ``backtest.refit=false`` fold 0's model forecasts every fold, so a later fold keeps only the
    series fold 0 trained on (the others are left out, with the reason).
    """
    from splineforecast.panel_checks import panel_frames, split_frames  # it builds on contracts

    read = panel_frames(cfg)
    folds: list[Fold] = []
    for k, offset in enumerate(cuts):
        frames = {sid: f.iloc[: len(f) - offset] for sid, f in read.frames.items() if len(f) > offset}
        left_out = {sid: f"it ends before fold {k}'s cutoff" for sid in read.frames if sid not in frames}
        if folds and not cfg.backtest.refit:
            first = set(folds[0].raw.table.ids)  # type: ignore[union-attr]
            left_out.update({s: "fold 0 (backtest.refit=false) did not train on it" for s in frames if s not in first})
            frames = {sid: f for sid, f in frames.items() if sid in first}
        try:
            raw = split_frames(cfg, read, frames, left_out)
        except ContractError as exc:
            if exc.code is not ErrorCode.INSUFFICIENT_DATA_ERROR:
                raise
            raise _short(cfg, k, offset, exc.message.split("; lower")[0]) from exc
        raw.table.notes["backtest"] = {"fold": k, "offset": offset}
        folds.append(Fold(k, fold_run_id(cfg.run_id or "", k), offset, raw))
    return folds
