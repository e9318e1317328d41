"""ForecastModule: loss, steps and optimizer around a network. No I/O, no data handling."""

from __future__ import annotations

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


LOSS_FUNCTIONS = {"mse": masked_mse, "mae": masked_mae}  # keys: models.registry.LOSSES


class ForecastModule(pl.LightningModule):
    """Trains a network from ``build_network`` with a masked loss (``model.loss``: MSE or MAE) in scaled space.

    Args:
        model: the model config as a plain dict (``name``, sizes, ``lr``, ...).
        spec: the data shape, as a plain dict of :class:`DataSpec` fields.
    """

    def __init__(self, model: dict[str, Any], spec: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # plain values only: loads with weights_only
        self.lr, self.weight_decay = model["lr"], model["weight_decay"]
        self.loss = LOSS_FUNCTIONS[model.get("loss", "mse")]
        self.net = build_network(model, DataSpec(**{**spec, "target_indices": tuple(spec["target_indices"])}))

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
