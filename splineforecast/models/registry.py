"""The names ``model.name`` and ``model.norm`` accept: the one list of each.

Torch-free, so the startup checks, the config schema and the API read them without importing PyTorch.
"""

from __future__ import annotations

from splineforecast.errors import ContractError, ErrorCode

CELLS = {"lstm": "LSTM", "gru": "GRU"}  # model.name -> its torch.nn recurrent layer
MODEL_NAMES = tuple(CELLS)
NORMS = ("last", "mean", "none")  # window-relative normalisation (models/networks.py)


def check_model(name: str, norm: str) -> None:
    """Refuse a model name or norm the registry lacks (CONFIG_ERROR), listing the valid ones."""
    for key, value, valid in (("model.name", name, MODEL_NAMES), ("model.norm", norm, NORMS)):
        if value not in valid:
            raise ContractError(ErrorCode.CONFIG_ERROR, f"`{key}` ({value}) must be one of {list(valid)}")
