"""``model.name`` -> network builder. Values come from config, wiring stays in Python."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from splineforecast.models.networks import RecurrentForecaster
from splineforecast.models.registry import MODEL_NAMES, check_model, check_quantiles
from splineforecast.models.spec import DataSpec


def _recurrent(cell: str) -> Callable[[dict[str, Any], DataSpec], nn.Module]:
    def build(cfg: dict[str, Any], spec: DataSpec) -> nn.Module:
        return RecurrentForecaster(
            cell,
            n_features=spec.n_features,
            target_indices=spec.target_indices,
            lookback=spec.lookback,
            horizon=spec.horizon,
            hidden_size=cfg["hidden_size"],
            num_layers=cfg["num_layers"],
            dropout=cfg["dropout"],
            norm=cfg["norm"],
            skip=cfg["skip"],
            n_series=spec.n_series,
            series_embedding=cfg.get("series_embedding", 0),  # absent in checkpoints of 0.1.0
            season_length=spec.season_length if cfg.get("skip_init", "random") == "seasonal" else 0,
            quantiles=tuple(cfg.get("quantiles") or ()),  # absent in checkpoints before quantiles
            segment=cfg.get("segment", 1),  # absent in checkpoints before segments: point-wise
            decoder=cfg.get("decoder", "direct"),
        )

    return build


REGISTRY: dict[str, Callable[[dict[str, Any], DataSpec], nn.Module]] = {name: _recurrent(name) for name in MODEL_NAMES}


def build_network(cfg: dict[str, Any], spec: DataSpec) -> nn.Module:
    """Build the network named by ``cfg["name"]`` for data of shape ``spec``."""
    check_model(cfg["name"], cfg["norm"], cfg.get("loss", "mse"), cfg.get("skip_init", "random"))
    check_quantiles(cfg.get("quantiles") or [], cfg.get("calibration", "none"))
    return REGISTRY[cfg["name"]](cfg, spec)
