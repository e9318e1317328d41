"""The names ``model.name``, ``model.norm``, ``model.loss`` and ``model.skip_init`` accept: the one list of each.

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
