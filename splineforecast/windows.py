"""Sliding windows over one contiguous tensor, and the Lightning DataModule that serves them.

A window starting at row ``s`` reads inputs ``[s, s + lookback)`` and targets
``[s + lookback, s + lookback + horizon)``. A part's windows have all their targets inside
the part; their lookback may reach back into the part before (test windows read the end of val).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from splineforecast.data.splits import PARTS, Split
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.models.spec import DataSpec


def bad_row_counts(values: np.ndarray) -> np.ndarray:
    """(T + 1,) prefix sums of the rows holding an unfilled gap: rows [a, b) hold ``c[b] - c[a]`` of them."""
    return np.concatenate(([0], np.cumsum(np.isnan(values).any(axis=1), dtype=np.int64)))


def window_starts(
    values: np.ndarray,
    part: tuple[int, int],
    lookback: int,
    horizon: int,
    stride: int,
    first: int = 0,
    bad_rows: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Start rows of the complete windows whose targets lie in ``part``.

    Args:
        first: the first row of the series holding ``part``: no window starts before it (in a panel,
            series lie end to end, and no window crosses from one into the next).
        bad_rows: :func:`bad_row_counts` of ``values``, when the caller has it (a panel: once for all series).

    Returns:
        The start rows, and how many windows were dropped for touching an unfilled gap.
    """
    a, b = part
    starts = np.arange(max(first, a - lookback), b - lookback - horizon + 1, stride, dtype=np.int64)
    if starts.size == 0:
        return starts, 0
    # windows touching an unfilled gap: a prefix sum counts bad rows in [s, s + L + H)
    csum = bad_row_counts(values) if bad_rows is None else bad_rows
    bad = csum[starts + lookback + horizon] - csum[starts] > 0
    return starts[~bad], int(bad.sum())


class WindowDataset(Dataset):
    """Windows as views of one tensor; ``__getitems__`` builds a whole batch by indexing.

    Items are ``(x, y, y_mask)``: ``x`` (lookback, F), ``y`` and ``y_mask`` (horizon, n_targets).
    """

    def __init__(
        self,
        values: np.ndarray,
        observed_mask: np.ndarray,
        starts: np.ndarray,
        spec: DataSpec,
        series: np.ndarray | None = None,
    ) -> None:
        span = spec.lookback + spec.horizon
        # a panel: the series index of each window, handed out as a fourth item
        self.series = None if series is None else torch.as_tensor(series, dtype=torch.long)
        self.spec = spec
        self.starts = torch.as_tensor(starts, dtype=torch.long)
        targets = torch.as_tensor(spec.target_indices, dtype=torch.long)
        values_t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        mask_t = torch.from_numpy(np.ascontiguousarray(observed_mask[:, spec.target_indices]))
        # (n_windows, F, span) views: no copy until a batch is indexed
        self._windows = values_t.unfold(0, span, 1)
        self._targets = targets
        self._masks = mask_t.unfold(0, span, 1)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        L = self.spec.lookback
        picked = torch.as_tensor(indices, dtype=torch.long)
        s = self.starts[picked]
        w = self._windows[s]  # (batch, F, lookback + horizon)
        x = w[:, :, :L].transpose(1, 2)  # (batch, lookback, F)
        y = w[:, self._targets, L:].transpose(1, 2)  # (batch, horizon, n_targets)
        m = self._masks[s][:, :, L:].transpose(1, 2)  # (batch, horizon, n_targets)
        if self.series is not None:
            return x.contiguous(), y.contiguous(), m.contiguous(), self.series[picked]
        return x.contiguous(), y.contiguous(), m.contiguous()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[0] for t in self.__getitems__([index]))


def _as_batch(batch: Any) -> Any:
    """The dataset already returns whole batches: nothing to collate."""
    return batch


class EpochShuffle(Sampler[int]):
    """A permutation that depends only on (seed, epoch): a resumed run sees the batches a straight run would.

    Lightning calls ``set_epoch`` at the start of every epoch. The sampler also remembers how many indices
    of the epoch it has handed out (``state_dict``), so a run stopped mid-epoch resumes with the epoch's
    remaining indices, in the same order. Indices are drawn lazily, one batch at a time, and Lightning
    fetches no batch ahead from a loader of known length, so at a batch boundary that count is exactly
    the batches trained times the batch size.
    """

    def __init__(self, n: int, seed: int, groups: np.ndarray | None = None, per_group: int | None = None) -> None:
        self.n, self.seed, self.epoch = n, seed, 0
        self.drawn = 0  # indices of this epoch handed out so far
        self._start = 0  # where the next iteration begins: non-zero only after load_state_dict
        # a panel: at most `per_group` windows of each series (group) per epoch, drawn anew every epoch
        self.groups = None if per_group is None or groups is None else np.asarray(groups, dtype=np.int64)
        self.per_group = per_group
        if self.groups is not None and per_group is not None:
            self.n = int(np.minimum(np.bincount(self.groups), per_group).sum())

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:  # a new epoch starts at its beginning; a resumed one keeps its place
            self.drawn = self._start = 0
        self.epoch = epoch

    def _order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.groups is None or self.per_group is None:
            return torch.randperm(self.n, generator=generator).tolist()
        keys = torch.rand(len(self.groups), generator=generator, dtype=torch.float64).numpy()
        by_group = np.lexsort((keys, self.groups))  # each group's windows together, in a random order
        sizes = np.bincount(self.groups)
        rank = np.arange(len(by_group)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        chosen = by_group[rank < self.per_group]
        return chosen[torch.randperm(len(chosen), generator=generator).numpy()].tolist()

    def __iter__(self) -> Iterator[int]:
        order = self._order()
        self.drawn, self._start = self._start, 0
        for index in order[self.drawn :]:
            self.drawn += 1
            yield index

    def __len__(self) -> int:
        return self.n  # the whole epoch, also when resuming: Lightning counts the batches already trained

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "drawn": self.drawn}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.epoch = int(state_dict["epoch"])
        self.drawn = self._start = int(state_dict["drawn"])


class ResumableLoader(DataLoader):
    """A DataLoader with Lightning's ``state_dict``/``load_state_dict`` protocol: its place in the epoch.

    Lightning saves the train loader's state in each checkpoint and restores it before the resumed
    epoch's first batch. The state is the sampler's. A sampler without one (the
    ``DistributedSamplerWrapper`` Lightning puts in under DDP) has nothing to restore: there the
    resumed epoch's remaining batches are drawn from the start of the epoch's order.
    """

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict() if isinstance(self.sampler, EpochShuffle) else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict and isinstance(self.sampler, EpochShuffle):
            self.sampler.load_state_dict(state_dict)


def window_loader(
    dataset: WindowDataset,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    groups: np.ndarray | None = None,
    per_group: int | None = None,
) -> DataLoader:
    """Batches of ``dataset``: in an (seed, epoch) order that resumes mid-epoch if ``shuffle``, else in order.

    With ``groups`` (the series of each window) and ``per_group``, each epoch draws at most ``per_group``
    windows of each series.
    """
    if shuffle:
        sampler = EpochShuffle(len(dataset), seed, groups, per_group)
        return ResumableLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=_as_batch)
    return DataLoader(dataset, batch_size=batch_size, collate_fn=_as_batch)


def part_windows(
    values: np.ndarray, segments: Sequence[tuple[int, Split]], name: str, spec: DataSpec, stride: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """The window starts of part ``name`` of every series, the series index of each, and the windows dropped."""
    starts, groups, dropped = [], [], 0
    bad_rows = bad_row_counts(values)
    for i, (first, split) in enumerate(segments):
        a, b = split.parts()[name]
        s, d = window_starts(values, (first + a, first + b), spec.lookback, spec.horizon, stride, first, bad_rows)
        starts.append(s)
        groups.append(np.full(len(s), i, dtype=np.int64))
        dropped += d
    return np.concatenate(starts), np.concatenate(groups), dropped


class WindowDataModule(pl.LightningDataModule):
    """Train/val/test WindowDatasets over the processed values of one run.

    ``split`` is the one series' split, or, for a panel, ``(first row, split)`` of each series laid end to end.
    ``max_per_series`` caps the train windows drawn per series in an epoch.
    """

    def __init__(
        self,
        values: np.ndarray,
        observed_mask: np.ndarray,
        split: Split | Sequence[tuple[int, Split]],
        spec: DataSpec,
        stride: int,
        batch_size: int,
        seed: int = 0,
        max_per_series: int | None = None,
    ) -> None:
        super().__init__()
        self.spec, self.batch_size, self.seed, self.max_per_series = spec, batch_size, seed, max_per_series
        segments = [(0, split)] if isinstance(split, Split) else list(split)
        self.datasets: dict[str, WindowDataset] = {}
        self.groups: dict[str, np.ndarray] = {}  # the series index of every window
        self.n_dropped: dict[str, int] = {}
        for name in PARTS:
            # train uses the configured stride; val and test score every window
            step = stride if name == "train" else 1
            starts, groups, dropped = part_windows(values, segments, name, spec, step)
            if starts.size == 0:
                part = segments[0][1].parts()[name]
                where = (
                    f"the {name} part (rows {part[0]}..{part[1] - 1}, {part[1] - part[0]} rows) holds"
                    if len(segments) == 1
                    else f"the {name} parts of the {len(segments)} series hold"
                )
                raise ContractError(
                    ErrorCode.INSUFFICIENT_DATA_ERROR,
                    f"{where} no "
                    f"complete window of lookback {spec.lookback} + horizon {spec.horizon}"
                    + (f" ({dropped} dropped for unfilled gaps)" if dropped else "")
                    + "; lower data.lookback/data.horizon or give that part more rows",
                )
            self.datasets[name] = WindowDataset(values, observed_mask, starts, spec, groups if spec.n_series else None)
            self.groups[name] = groups
            self.n_dropped[name] = dropped

    def train_dataloader(self) -> DataLoader:
        train, groups = self.datasets["train"], self.groups["train"]
        return window_loader(train, self.batch_size, True, self.seed, groups, self.max_per_series)

    def val_dataloader(self) -> DataLoader:
        return window_loader(self.datasets["val"], self.batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return window_loader(self.datasets["test"], self.batch_size, shuffle=False)
