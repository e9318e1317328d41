"""ForecastModule: loss, steps and optimizer around a network. No I/O, no data handling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch

from splineforecast.errors import ContractError, ErrorCode
from splineforecast.models.factory import build_network
from splineforecast.models.spec import DataSpec


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over observed target points only (imputed points carry no loss)."""
    weight = mask.to(pred.dtype)
    return ((pred - target) ** 2 * weight).sum() / weight.sum().clamp_min(1.0)


def masked_mae(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over observed target points only."""
    weight = mask.to(pred.dtype)
    return ((pred - target).abs() * weight).sum() / weight.sum().clamp_min(1.0)


def masked_pinball(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Pinball (quantile) loss, the mean over levels, over observed target points only.

    ``pred`` is (..., n_levels), ``target`` and ``mask`` (...); level ``q`` costs ``q * (y - f)`` when the truth
    ``y`` lies above the forecast ``f`` and ``(1 - q) * (f - y)`` below it.
    """
    err = target.unsqueeze(-1) - pred
    loss = torch.maximum(levels * err, (levels - 1.0) * err).mean(dim=-1)
    weight = mask.to(pred.dtype)
    return (loss * weight).sum() / weight.sum().clamp_min(1.0)


LOSS_FUNCTIONS = {"mse": masked_mse, "mae": masked_mae}  # keys: models.registry.LOSSES


class ForecastModule(pl.LightningModule):
    """Trains a network from ``build_network`` with a masked loss (``model.loss``: MSE or MAE; the pinball
    loss with ``model.quantiles``) in scaled space.

    Args:
        model: the model config as a plain dict (``name``, sizes, ``lr``, ...).
        spec: the data shape, as a plain dict of :class:`DataSpec` fields.
    """

    def __init__(self, model: dict[str, Any], spec: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # plain values only: loads with weights_only
        self.lr, self.weight_decay = model["lr"], model["weight_decay"]
        self.loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
        self.loss = LOSS_FUNCTIONS[model.get("loss", "mse")]
        self.net = build_network(model, DataSpec(**{**spec, "target_indices": tuple(spec["target_indices"])}))
        quantiles = model.get("quantiles") or []  # absent in checkpoints before quantiles
        if quantiles:  # the quantile head trains on the pinball loss (model.loss is for a point forecast)
            self.levels: torch.Tensor
            self.register_buffer("levels", torch.tensor(quantiles, dtype=torch.float32), persistent=False)
            self.loss = lambda pred, y, mask: masked_pinball(pred, y, mask, self.levels.to(pred.dtype))

    def forward(self, x: torch.Tensor, series: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x, series)

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        x, y, mask, *series = batch  # a panel's batches carry each window's series index
        loss = self.loss(self(x, *series), y, mask)
        if not torch.isfinite(loss):
            # stop before the optimizer or a checkpoint can take non-finite weights
            raise ContractError(
                ErrorCode.RUNNER_EXEC_ERROR,
                f"{stage} loss became {loss.item()} at epoch {self.current_epoch}, step {self.global_step}; "
                "lower model.lr, keep trainer.gradient_clip_val, or check the data. best.ckpt keeps the last "
                "finite best weights",
                "FloatingPointError",
            )
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x), sync_dist=True)
        return loss

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self(batch[0], *batch[3:])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
