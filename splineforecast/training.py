"""The Lightning Trainer with its callbacks: best/last checkpoints and early stopping on val/loss."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint

from splineforecast.config import TrainerConfig
from splineforecast.models.module import ForecastModule
from splineforecast.windows import WindowDataModule


@dataclass
class TrainResult:
    best_ckpt: Path
    last_ckpt: Path
    epochs: int
    best_val_loss: float


def _batches(limit: float) -> int | float:
    """Lightning reads an int as a batch count and a float as a fraction."""
    return int(limit) if limit > 1 else float(limit)


def _quiet_lightning() -> None:
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # our loaders build whole batches in the main process on purpose
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*`isinstance\\(treespec, LeafSpec\\)`.*")


def build_trainer(cfg: TrainerConfig, checkpoint_dir: Path, callbacks: list[Callback]) -> pl.Trainer:
    """A lean Trainer: no default logger (metrics go to MLflow through ``callbacks``)."""
    _quiet_lightning()
    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir,
        filename="best",
        monitor="val/loss",
        mode="min",
        save_top_k=1,
        save_last=True,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    stopping = EarlyStopping(monitor="val/loss", mode="min", patience=cfg.patience)
    return pl.Trainer(
        max_epochs=cfg.max_epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        gradient_clip_val=cfg.gradient_clip_val,
        limit_train_batches=_batches(cfg.limit_train_batches),
        limit_val_batches=_batches(cfg.limit_val_batches),
        enable_progress_bar=cfg.enable_progress_bar,
        enable_model_summary=cfg.enable_model_summary,
        deterministic=cfg.deterministic,
        logger=False,
        callbacks=[checkpoint, stopping, *callbacks],
        num_sanity_val_steps=0,
    )


def fit(
    module: ForecastModule,
    data: WindowDataModule,
    cfg: TrainerConfig,
    checkpoint_dir: Path,
    callbacks: list[Callback],
) -> TrainResult:
    """Train ``module`` on ``data``; best and last checkpoints land in ``checkpoint_dir``."""
    trainer = build_trainer(cfg, checkpoint_dir, callbacks)
    trainer.fit(module, datamodule=data)
    checkpoint = trainer.checkpoint_callback
    assert isinstance(checkpoint, ModelCheckpoint)
    best = float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else float("nan")
    return TrainResult(
        best_ckpt=checkpoint_dir / "best.ckpt",
        last_ckpt=checkpoint_dir / "last.ckpt",
        epochs=trainer.current_epoch,
        best_val_loss=best,
    )
