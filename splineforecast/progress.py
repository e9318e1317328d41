"""What a training run shows while it trains: Lightning's progress bar in a terminal, one line per epoch
anywhere else (a log file, a pipe, a job runner capturing stdout).

A line reads ``epoch 3/40  train/loss 0.01230  val/loss 0.01500  best 0.01480 (epoch 2)  elapsed 12s  left ~2m36s``:
plain ASCII, no carriage return, flushed as it is written. ``left`` is the mean epoch time of this process
times the epochs up to ``trainer.max_epochs``: an upper bound, since early stopping may end the run sooner.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

MONITOR = "val/loss"
LOSSES = ("train/loss", MONITOR)  # logged by ForecastModule once per epoch


def shows_bar(enable_progress_bar: bool, stream: IO[str] | None = None) -> bool:
    """Whether a run shows the progress bar: only when ``trainer.enable_progress_bar`` is on and ``stream``
    (default: stdout, where Lightning draws the bar) is a terminal; otherwise it prints epoch lines."""
    stream = sys.stdout if stream is None else stream
    try:
        return enable_progress_bar and stream.isatty()
    except (AttributeError, ValueError):  # no stdout at all, or a closed one
        return False


def duration(seconds: float) -> str:
    """``0.4s``, ``12s``, ``2m36s``, ``1h05m``: tenths under 10 s, whole minutes from an hour on."""
    if seconds < 9.95:
        return f"{max(seconds, 0.0):.1f}s"
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    return f"{total // 3600}h{total // 60 % 60:02d}m"


def _number(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:#.4g}"


class EpochLines(Callback):
    """Print one line per finished epoch to stdout (global rank zero only).

    The best val/loss and its epoch travel in the checkpoint, so a resumed run goes on counting where it
    stopped. Present in every run (``enabled`` false under the bar), so any run's checkpoint resumes
    with either display without Lightning missing a callback's state.

    Args:
        enabled: print the lines; false: only keep the best val/loss.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.best: float | None = None
        self.best_epoch: int | None = None
        self._started = 0.0
        self._finished = 0  # epochs finished in this process, for the mean epoch time

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started, self._finished = time.monotonic(), 0
        if self.best is None:  # a checkpoint from before this callback: take the score best.ckpt holds
            scores = [c.best_model_score for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
            known = [float(s) for s in scores if s is not None and math.isfinite(float(s))]
            self.best = min(known) if known else None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # here, before the checkpoints are written at this same hook, so they hold this epoch's best
        if trainer.sanity_checking or MONITOR not in trainer.callback_metrics:
            return
        val = float(trainer.callback_metrics[MONITOR])
        if self.best is None or val < self.best:
            self.best, self.best_epoch = val, trainer.current_epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not any(k in trainer.callback_metrics for k in LOSSES):
            return  # resumed from a checkpoint of this epoch's validation end: the epoch had its line
        self._finished += 1
        if not (self.enabled and trainer.is_global_zero):
            return
        line = self.line(trainer, time.monotonic() - self._started)
        try:
            print(line, flush=True)
        except OSError:  # a closed pipe must not end the training
            self.enabled = False

    def line(self, trainer: pl.Trainer, elapsed: float) -> str:
        """The line of the epoch ``trainer`` just finished, ``elapsed`` seconds after this process began training."""
        metrics = trainer.callback_metrics
        epoch, last = trainer.current_epoch + 1, trainer.max_epochs or 0
        losses = "  ".join(f"{k} {_number(float(metrics[k]) if k in metrics else None)}" for k in LOSSES)
        best = _number(self.best) + ("" if self.best_epoch is None else f" (epoch {self.best_epoch + 1})")
        if trainer.should_stop:
            left = "0.0s (early stop)" if epoch < last else "0.0s"
        else:
            left = "~" + duration(elapsed / max(self._finished, 1) * max(last - epoch, 0))
        return f"epoch {epoch}/{last}  {losses}  best {best}  elapsed {duration(elapsed)}  left {left}"

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.best_epoch = state_dict["best"], state_dict["best_epoch"]
