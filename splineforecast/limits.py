"""Startup checks of size and scorability: the config's sizes within :mod:`splineforecast.bounds`, a run
whose metrics can be computed, and a ``last.ckpt`` a resume can read.

Torch-free (the checkpoint's full load imports it only when asked), so ``contracts`` calls these before
anything is allocated or written.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

from splineforecast import bounds
from splineforecast.config import Config
from splineforecast.data.splits import Split, time_splits
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.models.registry import CELLS

_GATES = {"LSTM": 4, "GRU": 3}


def check_sizes(cfg: Config) -> None:
    """Every size of ``cfg`` within its bound, and a network whose training memory some machine holds.

    Raises:
        ContractError: CONFIG_ERROR naming the key, the value and the bound (or the estimate).
    """
    d, m = cfg.data, cfg.model
    bounds.check_bounds(
        {
            "data.lookback": d.lookback,
            "data.horizon": d.horizon,
            "data.stride": d.stride,
            "data.batch_size": d.batch_size,
            "data.season_length": d.season_length,
            "data.max_windows_per_series": d.max_windows_per_series,
            "data.max_bytes": d.max_bytes,
            "data.max_rows": d.max_rows,
            "data.max_columns": d.max_columns,
            "model.hidden_size": m.hidden_size,
            "model.num_layers": m.num_layers,
            "model.series_embedding": m.series_embedding,
            "model.quantiles": len(m.quantiles),
            "trainer.max_epochs": cfg.trainer.max_epochs,
            "backtest.folds": cfg.backtest.folds,
        }
    )
    segment = int(getattr(m, "segment", 1))  # SegRNN's steps per recurrent step, where configured
    size = bounds.NetSize(
        cell_gates=_GATES.get(CELLS.get(m.name, ""), 3),
        n_inputs=1 + len(cfg.covariate.dynamic) + len(cfg.covariate.static) + m.series_embedding,
        n_targets=1,
        hidden_size=m.hidden_size,
        num_layers=m.num_layers,
        lookback=d.lookback,
        horizon=d.horizon,
        batch_size=d.batch_size,
        n_levels=max(1, len(m.quantiles)),
        segment=max(1, segment),
    )
    keys = {
        "model.hidden_size": m.hidden_size,
        "model.num_layers": m.num_layers,
        "data.lookback": d.lookback,
        "data.horizon": d.horizon,
        "data.batch_size": d.batch_size,
    }
    bounds.check_train_memory(size, keys)


def rows_needed(season_length: int, sizes: tuple[float, float, float]) -> int | None:
    """The fewest rows whose split (``data.split`` sizes) leaves ``season_length`` rows before the test part;
    None when no row count does (train and val given as row counts)."""

    def enough(n: int) -> bool:
        try:
            return time_splits(n, *sizes).test[0] >= season_length
        except ContractError:
            return False

    low, high = season_length, bounds.BOUNDS["data.max_rows"].high
    if not enough(high):
        return None
    while low < high:  # the rows before the test part grow with n
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid + 1, high)
    return low


def check_scorable(
    target: np.ndarray, observed: np.ndarray, split: Split, season_length: int, sizes: tuple[float, float, float]
) -> None:
    """A run whose test metrics and baselines can all be computed: ``season_length`` rows before the test
    part (the seasonal-naive baseline, scored on the same points as the model, looks one season back from
    every test point), an observed target in the test part that varies (R2), and a pair of observed train
    values a lag apart (the scale of MASE).

    Args:
        target: (T,) the target in any affine scale; ``observed``: (T,) true where it was observed.
        sizes: ``data.split``'s train, val and test sizes, to say how many rows would do.

    Raises:
        ContractError: CONFIG_ERROR naming ``data.season_length`` and the rows needed; INSUFFICIENT_DATA_ERROR
            for a test part with nothing to score, or a train part that gives MASE no scale.
    """
    before, n_rows = split.test[0], len(target)
    if before < season_length:
        need = rows_needed(season_length, sizes)
        more = (
            f"or supply a series of at least {need} rows (it has {n_rows})"
            if need is not None
            else f"or give data.split.train + data.split.val at least {season_length} rows"
        )
        raise ContractError(
            ErrorCode.CONFIG_ERROR,
            f"`data.season_length` ({season_length}) needs {season_length} rows before the test part, and data.split "
            f"leaves {before}: the seasonal-naive baseline and MASE look one season back from every test point, "
            f"so no test point could be scored. Set data.season_length <= {before} (the season of the data's "
            f"frequency, e.g. 7 for daily), {more}",
        )
    a, b = split.test
    seen = target[a:b][observed[a:b]]
    if seen.size == 0 or np.unique(seen).size < 2:
        what = "no observed target value" if seen.size == 0 else f"one observed target value only ({seen[0]:g})"
        raise ContractError(
            ErrorCode.INSUFFICIENT_DATA_ERROR,
            f"the test part (rows {a}..{b - 1}) holds {what}: its metrics (R2 needs two values) cannot be "
            "computed; enlarge data.split.test or supply a series observed there",
        )
    t0, t1 = split.train
    lag = season_length if t1 - t0 >= 2 * season_length else 1  # scaling.seasonal_mae's rule
    train_seen = observed[t0:t1]
    if not (train_seen[lag:] & train_seen[:-lag]).any():
        raise ContractError(
            ErrorCode.INSUFFICIENT_DATA_ERROR,
            f"the train part holds no two observed target values {lag} rows apart (data.season_length "
            f"{season_length}): MASE has no scale; supply a series observed more densely or change data.split",
        )


def check_resumable(path: Path, load: bool = False) -> None:
    """``path`` (the ``last.ckpt`` a resume starts from) is a whole checkpoint: a zip archive whose every member
    reads back with its checksum, and with ``load`` one ``torch.load(weights_only=True)`` reads.

    Raises:
        ContractError: ARTIFACT_CONTRACT_ERROR naming the file and the fix.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
        why = None if broken is None else f"member {broken} fails its checksum"
    except (zipfile.BadZipFile, EOFError, ValueError, struct.error) as exc:
        why = f"not a whole zip archive: {exc}"
    if why is None and load:
        why = _load_problem(path)
    if why is not None:
        raise ContractError(
            ErrorCode.ARTIFACT_CONTRACT_ERROR,
            f"the checkpoint `{path}` a resume of this run_id starts from cannot be read ({why}); it was cut short "
            f"or damaged. Delete it to train this run_id from the start (rm '{path}'), add overwrite=true to "
            "start the run over, or restore the file from a copy, then run the command again",
        )


def _load_problem(path: Path) -> str | None:
    """Why ``torch.load(weights_only=True)`` cannot read ``path``, or None."""
    import pickle

    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        return f"torch.load(weights_only=True): {str(exc).splitlines()[0]}"
    return None
