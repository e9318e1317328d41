"""The Lightning Trainer with its callbacks: best and last checkpoints, early stopping on val/loss,
atomic checkpoint files, per-epoch loss logging, the progress bar or epoch lines (``progress.py``), and a
clean stop on SIGINT/SIGTERM that leaves a resumable last checkpoint."""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
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
from splineforecast.progress import LOSSES, MONITOR, EpochLines, shows_bar
from splineforecast.windows import WindowDataModule

_MONITOR = MONITOR  # picks best.ckpt and stops early
_EPOCH_METRICS = LOSSES


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
    """Turn SIGINT/SIGTERM into a stop at the next batch boundary, with the last checkpoint saved first.

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


class FlushDenormal(Callback):
    """Treat subnormal floats as zero in every process that trains (``setup`` runs on each rank, ddp_spawn too).

    A recurrence's gradients through hundreds of steps decay into subnormals, which many CPUs compute on
    far more slowly: a point-wise LSTM's epoch at lookback 336 takes ~9 times longer without this. Values
    that small (below 1.2e-38 in float32) never move a weight: the epoch lines' losses come out the same.
    The setting is global to the process and stays on; where the CPU lacks it, torch returns False and
    nothing changes.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        torch.set_flush_denormal(True)


class EpochMetrics(Callback):
    """Log ``train/loss`` and ``val/loss`` once per epoch (never per step: it costs time), at step = epoch.

    Args:
        log: called as ``log(metrics, step)``, on global rank zero only (DDP: one writer).
    """

    def __init__(self, log: Callable[[dict[str, float], int], None]) -> None:
        self.write = log  # not `log`: Lightning reads a callback's `log` attribute as its own

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k in _EPOCH_METRICS}
        if metrics:
            self.write(metrics, trainer.current_epoch)


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


def _checkpoint(path: Path, monitor: str | None) -> ModelCheckpoint:
    """A checkpoint file at ``path``, rewritten at each validation end (with ``monitor``: only when it improves).

    Saving at validation end comes before the epoch's metrics reach MLflow (``on_train_epoch_end``): a kill
    in between can lose that epoch's metric line but never logs a step twice after resuming.
    """
    checkpoint = ModelCheckpoint(
        dirpath=path.parent,
        filename=path.stem,
        monitor=monitor,
        mode="min",
        save_top_k=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,
        save_on_train_epoch_end=False,
    )
    checkpoint.FILE_EXTENSION = path.suffix  # the artifact layer names the whole file
    return checkpoint


def build_trainer(cfg: TrainerConfig, best_ckpt: Path, last_ckpt: Path, callbacks: list[Callback]) -> pl.Trainer:
    """A lean Trainer: no default logger (metrics go to MLflow through ``callbacks``); it trains with subnormal
    floats flushed to zero (:class:`FlushDenormal`).

    The progress bar shows only where stdout is a terminal and ``cfg.enable_progress_bar`` is on; any
    other run prints one line per epoch to stdout instead (:class:`~splineforecast.progress.EpochLines`).

    Args:
        best_ckpt: rewritten whenever val/loss improves.
        last_ckpt: rewritten at every validation end, so it always holds the last finished epoch
            (Lightning's ``save_last`` writes it only beside a new best one).
    """
    _quiet_lightning()
    stopping = EarlyStopping(monitor=_MONITOR, mode="min", patience=cfg.patience, check_on_train_epoch_end=False)
    # Lightning runs checkpoint callbacks last, in this order: best is written first, so the last
    # checkpoint carries the best one's updated state (fit reads best_val_loss from it)
    checkpoints = [_checkpoint(best_ckpt, _MONITOR), _checkpoint(last_ckpt, None)]
    bar = shows_bar(cfg.enable_progress_bar)  # decided here: ddp_spawn ranks get the trainer as built
    return pl.Trainer(
        max_epochs=cfg.max_epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        num_nodes=cfg.num_nodes,
        gradient_clip_val=cfg.gradient_clip_val,
        limit_train_batches=_batches(cfg.limit_train_batches),
        limit_val_batches=_batches(cfg.limit_val_batches),
        enable_progress_bar=bar,
        enable_model_summary=cfg.enable_model_summary,
        deterministic=cfg.deterministic,
        logger=False,
        # the lines before ``callbacks``: an epoch ended by a signal (GracefulStop raising) still gets its line
        callbacks=[*checkpoints, stopping, EpochLines(enabled=not bar), FlushDenormal(), *callbacks],
        num_sanity_val_steps=0,
        plugins=[AtomicCheckpointIO()],
    )


def _best_score(state: dict[str, Any]) -> float:
    """The best val/loss recorded in a checkpoint (NaN before any validation)."""
    scores = [
        v["best_model_score"]
        for k, v in state["callbacks"].items()
        if k.startswith("ModelCheckpoint") and v.get("monitor") == _MONITOR
    ]
    return float(scores[0]) if scores and scores[0] is not None else float("nan")


def fit(
    module: ForecastModule,
    data: WindowDataModule,
    cfg: TrainerConfig,
    best_ckpt: Path,
    callbacks: list[Callback],
    stop: GracefulStop,
    resume: bool = False,
) -> TrainResult:
    """Train ``module`` on ``data``, keeping the best and the last checkpoint at the given paths.

    Args:
        best_ckpt: where the checkpoint of the lowest val/loss goes (``RunPaths.best_ckpt``).
        stop: the signal handler of the run (see :func:`interruptible`); the checkpoint of the last
            finished epoch goes to its ``last_ckpt`` (``RunPaths.last_ckpt``), the file it saves on a signal.
        resume: continue from ``last_ckpt`` (weights, optimizer, epoch, place in the epoch, callbacks, RNG).

    Returns:
        The checkpoints, the number of epochs trained and the best val/loss.

    Raises:
        Interrupted: SIGINT or SIGTERM arrived; ``last_ckpt`` was saved at a batch boundary.
    """
    last_ckpt = stop.last_ckpt
    trainer = build_trainer(cfg, best_ckpt, last_ckpt, [*callbacks, stop])
    stop.active = True
    try:
        trainer.fit(module, datamodule=data, ckpt_path=last_ckpt if resume else None)
    except SystemExit as exc:  # Lightning's SIGTERMException, or its exit after a raw KeyboardInterrupt
        raise Interrupted(stop.signum or signal.SIGTERM) from exc
    finally:
        stop.active = False
    # read the outcome from the last checkpoint: with ddp_spawn the training happened in other processes
    return checkpoint_result(best_ckpt, last_ckpt)


def checkpoint_result(best_ckpt: Path, last_ckpt: Path) -> TrainResult:
    """What a finished training left in its checkpoints: the epochs trained and the best val/loss."""
    state = torch.load(last_ckpt, map_location="cpu", weights_only=True)
    epochs = int(state["epoch"]) + 1  # saved at the last validation end: the epoch is 0-based
    return TrainResult(best_ckpt=best_ckpt, last_ckpt=last_ckpt, epochs=epochs, best_val_loss=_best_score(state))
