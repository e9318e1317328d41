"""Checks of size and scorability: the config's sizes within :mod:`splineforecast.bounds`, a run whose
metrics can be computed (at startup, and its scores once computed), and a ``last.ckpt`` a resume can read.

Torch-free (the checkpoint's full load imports it only when asked), so ``contracts`` calls these before
anything is allocated or written.
"""

from __future__ import annotations

import math
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from splineforecast import bounds
from splineforecast.config import Config
from splineforecast.data.splits import Split, time_splits
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.models.registry import CELLS
from splineforecast.records import EvalResult

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


def rows_needed(
    season_length: int, sizes: tuple[float, float, float], split_of: Callable[[int], Split] | None = None
) -> int | None:
    """The fewest rows whose split (``data.split`` sizes, or ``split_of(n)``: a panel series' split of ``n``
    rows) leaves ``season_length`` rows from the start of train to the test part; None when no row count
    does (train and val given as row counts)."""
    cut = split_of or (lambda n: time_splits(n, *sizes))

    def enough(n: int) -> bool:
        try:
            split = cut(n)
        except ContractError:
            return False
        return split.test[0] - split.train[0] >= season_length  # rows before train are dropped (a panel)

    low, high = season_length, bounds.BOUNDS["data.max_rows"].high
    if not enough(high):
        return None
    while low < high:  # the rows before the test part grow with n
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid + 1, high)
    return low


def more_rows(season_length: int, n_rows: int, need: int | None) -> str:
    """The second fix of a season longer than the rows before the test part: a series of ``need`` rows."""
    if need is not None:
        return f"or supply a series of at least {need} rows (it has {n_rows})"
    return f"or give data.split.train + data.split.val at least {season_length} rows"


def check_scorable(
    target: np.ndarray,
    observed: np.ndarray,
    split: Split,
    season_length: int,
    sizes: tuple[float, float, float],
    more: Callable[[], str] | None = None,
) -> None:
    """A run whose test metrics and baselines can all be computed: ``season_length`` rows before the test
    part (the seasonal-naive baseline, scored on the same points as the model, looks one season back from
    every test point), an observed target in the test part that varies (R2), and a pair of observed train
    values a lag apart that differ (the scale of MASE).

    Args:
        target: (T,) the target in any affine scale; ``observed``: (T,) true where it was observed.
        sizes: ``data.split``'s train, val and test sizes, to say how many rows would do.
        more: the second fix of a season too long (default :func:`more_rows` of ``sizes``; a panel's own).

    Raises:
        ContractError: CONFIG_ERROR naming ``data.season_length`` and the rows needed; INSUFFICIENT_DATA_ERROR
            for a test part with nothing to score, or a train part that gives MASE no scale.
    """
    before = split.test[0]
    if before < season_length:
        fix = more() if more else more_rows(season_length, len(target), rows_needed(season_length, sizes))
        raise ContractError(
            ErrorCode.CONFIG_ERROR,
            f"`data.season_length` ({season_length}) needs {season_length} rows before the test part, and data.split "
            f"leaves {before}: the seasonal-naive baseline and MASE look one season back from every test point, "
            f"so no test point could be scored. Set data.season_length <= {before} (the season of the data's "
            f"frequency, e.g. 7 for daily), {fix}",
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
    _check_mase_scale(target, observed, split.train, season_length)


def _check_mase_scale(target: np.ndarray, observed: np.ndarray, train: tuple[int, int], season_length: int) -> None:
    """The train part's seasonal-naive MAE (MASE's scale, ``scaling.seasonal_mae``) exists and is not 0."""
    t0, t1 = train
    lag = season_length if t1 - t0 >= 2 * season_length else 1  # scaling.seasonal_mae's rule
    y, seen = target[t0:t1], observed[t0:t1]
    pairs = seen[lag:] & seen[:-lag]
    if not pairs.any():
        raise ContractError(
            ErrorCode.INSUFFICIENT_DATA_ERROR,
            f"the train part holds no two observed target values {lag} rows apart (data.season_length "
            f"{season_length}): MASE has no scale; supply a series observed more densely or change data.split",
        )
    if not (y[lag:][pairs] != y[:-lag][pairs]).any():
        raise ContractError(
            ErrorCode.INSUFFICIENT_DATA_ERROR,
            f"every pair of observed train values {lag} rows apart is equal (data.season_length {season_length}): "
            "the train part's seasonal-naive MAE, MASE's scale, is 0, so MASE cannot be computed; supply a "
            "series that varies in its train part, change data.split, or set data.season_length to another lag",
        )


def result_values(result: EvalResult) -> dict[str, float]:
    """Every score a run records as its result, by the name MLflow logs it under (``mae``, ``naive/mase``,
    ``mean_mase``, ``crps``, ...), and each per-step score as ``per_horizon/<forecaster>/<score>[<step>]``."""
    values: dict[str, float] = {}
    groups = {"model": result.metrics, **result.baselines}
    panel = (
        {}
        if result.panel is None
        else {n: {f"mean_{k}": v for k, v in m.items()} for n, m in result.panel.mean.items()}
    )
    levels = (result.uncertainty or {}).get("scores", {})
    for table in (groups, panel, levels):
        for name, scores in table.items():
            values.update({(k if name == "model" else f"{name}/{k}"): float(v) for k, v in scores.items()})
    steps = [result.scores.per_horizon, (result.uncertainty or {}).get("per_horizon", {})]
    for table in steps:
        for name, scores in table.items():
            for k, per_step in scores.items():
                values.update({f"per_horizon/{name}/{k}[{h + 1}]": float(v) for h, v in enumerate(per_step)})
    return values


def _why(name: str, result: EvalResult) -> str:
    """Why the score ``name`` of ``result`` has no finite value."""
    if result.scores.n_points == 0:
        return "no test point was scored (no observed test point has a forecast of the model and every baseline)"
    if name.startswith("per_horizon/"):
        return "no test point was scored at that horizon step"
    score = name.rsplit("/", 1)[-1].removeprefix("mean_")
    reasons = {
        "r2": "the scored test points hold one value, and R2 needs two",
        "mase": "the train part's seasonal-naive MAE, MASE's scale, is 0",
        "msis": "the train part's seasonal-naive MAE, MSIS's scale, is 0",
        "mape": "an actual of 0 meets a floor of 0 (the train part's mean absolute target is 0)",
    }
    why = reasons.get(score.split("_", 1)[0], "the forecasts or the truth it is computed from are not finite")
    return why if result.panel is None else f"no series of the panel has a finite {score} (in each, {why})"


def check_metrics(result: EvalResult) -> None:
    """After scoring: every score the run would record as its result (:func:`result_values`: the model's,
    the baselines', the panel's means, the interval scores, each horizon step's) is finite.

    The baselines' scores count: they are logged to the run beside the model's, and the model is judged by
    them. A run that fails here records no result: the caller writes no metrics.json and ends its MLflow
    run FAILED.

    Raises:
        ContractError: INSUFFICIENT_DATA_ERROR naming the first scores that are NaN or infinite and why.
    """
    bad = {k: v for k, v in result_values(result).items() if not math.isfinite(v)}
    if not bad:
        return
    first = next(iter(bad))
    shown = ", ".join(f"{k} = {v}" for k, v in list(bad.items())[:4]) + (
        f" (and {len(bad) - 4} more)" if len(bad) > 4 else ""
    )
    raise ContractError(
        ErrorCode.INSUFFICIENT_DATA_ERROR,
        f"the run's test scores cannot all be computed: {shown}; {first}: {_why(first, result)}. The run "
        "records no metrics. Score more test points (enlarge data.split.test; raise spline.max_gap where "
        "unfilled gaps drop test windows) or supply data that varies where it is scored, then start the run "
        "over with overwrite=true",
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
