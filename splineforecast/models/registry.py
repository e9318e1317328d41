"""The names ``model.name`` and ``model.norm`` accept: the one list of each.

Torch-free, so the startup checks, the config schema and the API read them without importing PyTorch.
"""

from __future__ import annotations

CELLS = {"lstm": "LSTM", "gru": "GRU"}  # model.name -> its torch.nn recurrent layer
MODEL_NAMES = tuple(CELLS)
NORMS = ("last", "mean", "none")  # window-relative normalisation (models/networks.py)
