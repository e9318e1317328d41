"""The names ``model.name``, ``model.norm``, ``model.loss``, ``model.skip_init``, ``model.decoder`` and
``model.calibration`` accept, and the rules of ``model.quantiles`` and ``model.segment``: the one list of each.

Torch-free, so the startup checks, the config schema and the API read them without importing PyTorch.
"""

from __future__ import annotations

from splineforecast.errors import ContractError, ErrorCode

CELLS = {"lstm": "LSTM", "gru": "GRU"}  # model.name -> its torch.nn recurrent layer
MODEL_NAMES = tuple(CELLS)
NORMS = ("last", "mean", "none")  # window-relative normalisation (models/networks.py)
LOSSES = ("mse", "mae")  # the training loss over observed target points, in scaled space (models/module.py)
# how the skip path starts (models/networks.py): PyTorch's random init, or as the seasonal naive forecast
SKIP_INITS = ("random", "seasonal")
# how intervals are adjusted on the val part (splineforecast/uncertainty.py): not at all, or conformally
CALIBRATIONS = ("none", "conformal")
# how the horizon is decoded (models/networks.py): the last state -> every step at once, or one recurrent step
# per horizon segment from the encoder's state (SegRNN's parallel multi-step decoding)
DECODERS = ("direct", "parallel")
MEDIAN = 0.5  # the quantile level that is the point forecast: model.quantiles must hold it
# the levels of split-conformal intervals around the point forecast (model.calibration=conformal, model.quantiles=[])
CONFORMAL_LEVELS = (0.025, 0.05, 0.1, 0.5, 0.9, 0.95, 0.975)


def check_model(name: str, norm: str, loss: str = "mse", skip_init: str = "random") -> None:
    """Refuse a model name, norm, loss or skip init the registry lacks (CONFIG_ERROR), listing the valid ones."""
    checks = (
        ("model.name", name, MODEL_NAMES),
        ("model.norm", norm, NORMS),
        ("model.loss", loss, LOSSES),
        ("model.skip_init", skip_init, SKIP_INITS),
    )
    for key, value, valid in checks:
        if value not in valid:
            raise ContractError(ErrorCode.CONFIG_ERROR, f"`{key}` ({value}) must be one of {list(valid)}")


def check_quantiles(quantiles: list[float] | tuple[float, ...], calibration: str = "none") -> None:
    """Refuse quantile levels outside (0, 1), unsorted, repeated or without 0.5, and an unknown
    calibration (CONFIG_ERROR), naming the numbers."""
    if calibration not in CALIBRATIONS:
        raise ContractError(
            ErrorCode.CONFIG_ERROR, f"`model.calibration` ({calibration}) must be one of {list(CALIBRATIONS)}"
        )
    levels = [float(q) for q in quantiles]
    if not levels:
        return
    outside = [q for q in levels if not 0.0 < q < 1.0]
    problems = [
        (outside, f"levels {outside} are outside (0, 1)"),
        (sorted(set(levels)) != levels and len(set(levels)) == len(levels), "levels are not in increasing order"),
        (len(set(levels)) != len(levels), f"levels {sorted({q for q in levels if levels.count(q) > 1})} repeat"),
        (MEDIAN not in levels, f"{MEDIAN} (the median: the point forecast every metric scores) is missing"),
    ]
    for failed, why in problems:
        if failed:
            raise ContractError(
                ErrorCode.CONFIG_ERROR,
                f"`model.quantiles` ({levels}): {why}; give increasing levels in (0, 1) holding {MEDIAN}, "
                "e.g. [0.05,0.5,0.95]",
            )


def check_segment(segment: int, decoder: str, lookback: int) -> None:
    """Refuse ``model.segment`` below 1 or above the lookback, and an unknown ``model.decoder`` (CONFIG_ERROR),
    naming the key, the value and the bound."""
    if decoder not in DECODERS:
        raise ContractError(ErrorCode.CONFIG_ERROR, f"`model.decoder` ({decoder}) must be one of {list(DECODERS)}")
    if segment < 1:
        raise ContractError(
            ErrorCode.CONFIG_ERROR, f"`model.segment` ({segment}) must be >= 1 (1 = one recurrent step per time step)"
        )
    if segment > lookback:
        raise ContractError(
            ErrorCode.CONFIG_ERROR,
            f"`model.segment` ({segment}) must be <= `data.lookback` ({lookback}): a segment cannot be longer than "
            "the lookback it is cut from",
        )
