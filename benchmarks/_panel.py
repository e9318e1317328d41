"""Windows over many series for one global model: series laid end to end, windows started inside each series.

Every series is scaled by its own train part (a StandardScaler, as the package's Preprocessor fits one), and
its last ``horizon`` points are its val part. Windows are the package's ``WindowDataset`` over the one
concatenated array, with start rows built per series, so no window crosses a series: train windows have all
their targets before the val part, each series has one val window (the val part as targets), and the test
forecast reads the last ``lookback`` points of each whole training series.

A series shorter than ``lookback + 2 * horizon`` is left-padded with its first value to that length; padded
points are unobserved, so no loss is taken on them. A series without a train part (``horizon`` points or
fewer) is not windowed at all: the caller forecasts it with a named baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from splineforecast.data.scaling import fit_scaler
from splineforecast.models.spec import DataSpec
from splineforecast.windows import WindowDataset, window_loader


@dataclass
class PanelWindows:
    """The concatenated scaled series and where each series' windows start.

    ``values``/``mask`` are (T, 1); ``ends[i]`` is one past series ``i``'s last row; ``windowed`` lists the
    series indices the model forecasts; ``mean``/``scale`` undo each windowed series' scaling.
    """

    values: np.ndarray
    mask: np.ndarray
    ends: np.ndarray
    windowed: np.ndarray
    padded: np.ndarray
    fallback: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    train_starts: np.ndarray
    val_starts: np.ndarray


def _pad(x: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``x`` left-padded with its first value to ``length``, and the observed mask (False on padding)."""
    n_pad = max(0, length - len(x))
    values = np.concatenate([np.full(n_pad, x[0]), x])
    return values, np.arange(len(values)) >= n_pad


def build_panel(history: Sequence[np.ndarray], lookback: int, horizon: int) -> PanelWindows:
    """Scale, pad and lay the series end to end; the train and val window starts of every windowed series."""
    parts, masks, means, scales, windowed, padded, fallback = [], [], [], [], [], [], []
    for i, x in enumerate(history):
        if len(x) <= horizon:
            fallback.append(i)
            continue
        scaler = fit_scaler(x[:-horizon, None])  # the train part only: the val part never shapes the scaling
        values, mask = _pad(x, lookback + 2 * horizon)
        if len(values) > len(x):
            padded.append(i)
        parts.append((values - scaler.mean_[0]) / scaler.scale_[0])
        masks.append(mask)
        means.append(scaler.mean_[0])
        scales.append(scaler.scale_[0])
        windowed.append(i)
    lengths = np.array([len(p) for p in parts], dtype=np.int64)
    ends = np.cumsum(lengths)
    span = lookback + horizon
    # train windows: targets end at or before the series' val part, i.e. local start <= n - span - horizon
    train = [np.arange(e - n, e - span - horizon + 1) for e, n in zip(ends, lengths, strict=True)]
    return PanelWindows(
        values=np.concatenate(parts).astype(np.float32)[:, None],  # (T, 1)
        mask=np.concatenate(masks)[:, None],
        ends=ends,
        windowed=np.array(windowed, dtype=np.int64),
        padded=np.array(padded, dtype=np.int64),
        fallback=np.array(fallback, dtype=np.int64),
        mean=np.array(means),
        scale=np.array(scales),
        train_starts=np.concatenate(train),
        val_starts=ends - span,
    )


class PanelData(pl.LightningDataModule):
    """Train and val ``WindowDataset``s of a panel, served as the package's ``WindowDataModule`` serves them."""

    def __init__(self, panel: PanelWindows, spec: DataSpec, batch_size: int, seed: int = 0) -> None:
        super().__init__()
        self.spec, self.batch_size, self.seed = spec, batch_size, seed
        self.datasets = {
            "train": WindowDataset(panel.values, panel.mask, panel.train_starts, spec),
            "val": WindowDataset(panel.values, panel.mask, panel.val_starts, spec),
        }

    def train_dataloader(self) -> DataLoader:
        return window_loader(self.datasets["train"], self.batch_size, shuffle=True, seed=self.seed)

    def val_dataloader(self) -> DataLoader:
        return window_loader(self.datasets["val"], self.batch_size, shuffle=False)


def forecast(net: torch.nn.Module, panel: PanelWindows, lookback: int) -> np.ndarray:
    """The (n_windowed, horizon) forecast after each windowed series' end, in original units."""
    rows = panel.ends[:, None] + np.arange(-lookback, 0)[None, :]  # (n_windowed, lookback)
    x = torch.from_numpy(panel.values[rows])  # (n_windowed, lookback, 1)
    net.eval()
    with torch.no_grad():
        scaled = net(x)[:, :, 0].numpy().astype(np.float64)  # (n_windowed, horizon)
    return scaled * panel.scale[:, None] + panel.mean[:, None]
