"""The Lightning Trainer with its callbacks: best/last checkpoints, early stopping on val/loss,
atomic checkpoint files, and a clean stop on SIGINT/SIGTERM that leaves a resumable last.ckpt."""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint

from splineforecast.config import TrainerConfig
from splineforecast.errors import Interrupted
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


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temp file in the same folder, then rename: a kill never leaves half a file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)


class GracefulStop(Callback):
    """Turn SIGINT/SIGTERM into a stop at the next batch boundary, with last.ckpt saved first.

    Outside ``fit`` (while ``active`` is false) a signal raises :class:`Interrupted` at once.
    The torch RNG state travels in the checkpoint, so a resumed run draws what a straight one would.
    """

    def __init__(self, last_ckpt: Path) -> None:
        self.last_ckpt, self.signum, self.active = last_ckpt, 0, False

    def handle(self, signum: int, frame: Any) -> None:
        if self.active and not self.signum:
            self.signum = signum  # finish the batch; on_train_batch_end raises
            return
        raise Interrupted(signum)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.signum:
            raise Interrupted(self.signum)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.signum:  # arrived during validation
            raise Interrupted(self.signum)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        sigterm = type(exception).__name__ == "SIGTERMException"  # Lightning's own SIGTERM stop
        if isinstance(exception, Interrupted | KeyboardInterrupt) or sigterm:
            trainer.save_checkpoint(self.last_ckpt)

    def state_dict(self) -> dict[str, Any]:
        return {"torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch_rng"])


@contextmanager
def interruptible(stop: GracefulStop) -> Iterator[None]:
    """Route SIGINT and SIGTERM to ``stop`` (main thread only; elsewhere signals stay as they are)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, stop.handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


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
        # save at validation end, before the epoch's metrics reach MLflow: a kill in between
        # can lose that epoch's metric line but never logs a step twice after resuming
        save_on_train_epoch_end=False,
    )
    stopping = EarlyStopping(monitor="val/loss", mode="min", patience=cfg.patience, check_on_train_epoch_end=False)
    return pl.Trainer(
        max_epochs=cfg.max_epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        num_nodes=cfg.num_nodes,
        gradient_clip_val=cfg.gradient_clip_val,
        limit_train_batches=_batches(cfg.limit_train_batches),
        limit_val_batches=_batches(cfg.limit_val_batches),
        enable_progress_bar=cfg.enable_progress_bar,
        enable_model_summary=cfg.enable_model_summary,
        deterministic=cfg.deterministic,
        logger=False,
        callbacks=[checkpoint, stopping, *callbacks],
        num_sanity_val_steps=0,
        plugins=[AtomicCheckpointIO()],
    )


def fit(
    module: ForecastModule,
    data: WindowDataModule,
    cfg: TrainerConfig,
    checkpoint_dir: Path,
    callbacks: list[Callback],
    stop: GracefulStop,
    resume: bool = False,
) -> TrainResult:
    """Train ``module`` on ``data``; best and last checkpoints land in ``checkpoint_dir``.

    Args:
        stop: the signal handler of the run (see :func:`interruptible`).
        resume: continue from ``checkpoint_dir/last.ckpt`` (weights, optimizer, epoch, callbacks, RNG).

    Raises:
        Interrupted: SIGINT or SIGTERM arrived; last.ckpt was saved at a batch boundary.
    """
    trainer = build_trainer(cfg, checkpoint_dir, [*callbacks, stop])
    last = checkpoint_dir / "last.ckpt"
    stop.active = True
    try:
        trainer.fit(module, datamodule=data, ckpt_path=last if resume else None)
    except SystemExit as exc:  # Lightning's SIGTERMException, or its exit after a raw KeyboardInterrupt
        raise Interrupted(stop.signum or signal.SIGTERM) from exc
    finally:
        stop.active = False
    # read the outcome from last.ckpt: with ddp_spawn the training happened in other processes
    state = torch.load(last, map_location="cpu", weights_only=True)
    scores = [v["best_model_score"] for k, v in state["callbacks"].items() if k.startswith("ModelCheckpoint")]
    best = float(scores[0]) if scores and scores[0] is not None else float("nan")
    return TrainResult(
        best_ckpt=checkpoint_dir / "best.ckpt", last_ckpt=last, epochs=int(state["epoch"]) + 1, best_val_loss=best
    )
