"""Sliding windows: counts, shapes, dropped gaps, batches, where val/test windows may read, and the
train order that resumes mid-epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lightning_fabric.utilities.types import _Stateful  # how Lightning tells a resumable loader
from torch.utils.data import DataLoader

from splineforecast.data.splits import Split
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.windows import (
    DataSpec,
    EpochShuffle,
    WindowDataModule,
    WindowDataset,
    window_loader,
    window_starts,
)

FAST = settings(max_examples=50, deadline=None)


def _values(n: int, n_features: int = 3) -> np.ndarray:
    """Column 0 holds the row number, so every window tells where it starts."""
    rng = np.random.default_rng(n)
    out = rng.normal(size=(n, n_features)).astype(np.float32)
    out[:, 0] = np.arange(n)
    return out


@FAST
@given(
    n=st.integers(2, 300),
    lookback=st.integers(1, 40),
    horizon=st.integers(1, 20),
    stride=st.integers(1, 10),
)
def test_train_window_count(n: int, lookback: int, horizon: int, stride: int) -> None:
    starts, dropped = window_starts(_values(n), (0, n), lookback, horizon, stride)
    expected = (n - lookback - horizon) // stride + 1 if n >= lookback + horizon else 0
    assert len(starts) == expected and dropped == 0
    if expected:
        assert starts[0] == 0 and starts[-1] + lookback + horizon <= n
        assert (np.diff(starts) == stride).all()


def test_item_shapes_and_contents() -> None:
    values = _values(50, n_features=3)
    mask = np.random.default_rng(1).random((50, 3)) > 0.3
    spec = DataSpec(n_features=3, lookback=7, horizon=4, target_indices=(2, 0))
    starts, _ = window_starts(values, (0, 50), 7, 4, 3)
    dataset = WindowDataset(values, mask, starts, spec)
    assert len(dataset) == (50 - 7 - 4) // 3 + 1
    for i, s in enumerate(starts):
        x, y, m = dataset[i]
        assert x.shape == (7, 3) and y.shape == (4, 2) and m.shape == (4, 2)
        assert x.dtype == torch.float32 and m.dtype == torch.bool
        np.testing.assert_array_equal(x.numpy(), values[s : s + 7])
        np.testing.assert_array_equal(y.numpy(), values[s + 7 : s + 11][:, [2, 0]])
        np.testing.assert_array_equal(m.numpy(), mask[s + 7 : s + 11][:, [2, 0]])


@FAST
@given(
    n=st.integers(10, 120),
    lookback=st.integers(1, 12),
    horizon=st.integers(1, 6),
    stride=st.integers(1, 4),
    nan_rows=st.lists(st.integers(0, 119), max_size=4),
    nan_col=st.integers(0, 2),
)
def test_windows_touching_an_unfilled_gap_are_dropped_and_counted(
    n: int, lookback: int, horizon: int, stride: int, nan_rows: list[int], nan_col: int
) -> None:
    values = _values(n)
    rows = [r for r in nan_rows if r < n]
    values[rows, nan_col] = np.nan  # a gap in any column, target or not
    starts, dropped = window_starts(values, (0, n), lookback, horizon, stride)
    candidates = range(0, n - lookback - horizon + 1, stride)
    clean = [s for s in candidates if not any(s <= r < s + lookback + horizon for r in rows)]
    assert starts.tolist() == clean
    assert dropped == len(candidates) - len(clean)


@pytest.mark.parametrize("shuffle", [False, True])
def test_loader_batches_equal_manual_slices(shuffle: bool) -> None:
    n, lookback, horizon = 80, 9, 5
    values = _values(n)
    mask = np.random.default_rng(3).random((n, 3)) > 0.2
    spec = DataSpec(n_features=3, lookback=lookback, horizon=horizon, target_indices=(1,))
    starts, _ = window_starts(values, (0, n), lookback, horizon, 2)
    dataset = WindowDataset(values, mask, starts, spec)
    torch.manual_seed(0)
    seen = []
    batches = list(window_loader(dataset, batch_size=7, shuffle=shuffle))
    assert [len(b[0]) for b in batches] == [7] * (len(starts) // 7) + ([len(starts) % 7] if len(starts) % 7 else [])
    for x, y, m in batches:
        assert x.shape[1:] == (lookback, 3) and y.shape[1:] == (horizon, 1) and m.shape[1:] == (horizon, 1)
        for xi, yi, mi in zip(x.numpy(), y.numpy(), m.numpy(), strict=True):
            s = int(xi[0, 0])
            seen.append(s)
            np.testing.assert_array_equal(xi, values[s : s + lookback])
            np.testing.assert_array_equal(yi, values[s + lookback : s + lookback + horizon, [1]])
            np.testing.assert_array_equal(mi, mask[s + lookback : s + lookback + horizon, [1]])
    assert sorted(seen) == starts.tolist()
    assert (seen == starts.tolist()) is not shuffle


@FAST
@given(
    a=st.integers(20, 60),
    val_len=st.integers(1, 30),
    lookback=st.integers(1, 15),
    horizon=st.integers(1, 5),
)
def test_val_windows_read_back_but_predict_inside_the_part(a: int, val_len: int, lookback: int, horizon: int) -> None:
    b = a + val_len
    values = _values(b + 10)
    starts, _ = window_starts(values, (a, b), lookback, horizon, 1)
    targets = starts + lookback
    assert (targets >= a).all() and (targets + horizon <= b).all()
    assert len(starts) == max(0, val_len - horizon + 1)
    if len(starts):
        assert starts[0] == a - lookback  # the first window's lookback lies wholly in the part before


def test_datamodule_parts_strides_and_refusals() -> None:
    n = 100
    values = _values(n, n_features=2)
    values[5, 1] = np.nan  # an unfilled gap in train
    mask = ~np.isnan(values)
    split = Split(train=(0, 60), val=(60, 80), test=(80, 100))
    spec = DataSpec(n_features=2, lookback=10, horizon=3, target_indices=(0,))
    data = WindowDataModule(values, mask, split, spec, stride=2, batch_size=4)
    train, val, test = (data.datasets[k] for k in ("train", "val", "test"))
    assert train.starts.tolist() == list(range(6, 48, 2))  # windows over row 5 dropped
    assert data.n_dropped == {"train": 3, "val": 0, "test": 0}
    assert val.starts.tolist() == list(range(50, 68))  # stride 1 outside train
    assert test.starts.tolist() == list(range(70, 88))
    x, y, _ = val[0]
    np.testing.assert_array_equal(x.numpy(), values[50:60])  # the lookback of val's first window is train
    np.testing.assert_array_equal(y.numpy()[:, 0], values[60:63, 0])
    first = next(iter(data.val_dataloader()))
    np.testing.assert_array_equal(first[0].numpy(), np.stack([values[s : s + 10] for s in range(50, 54)]))
    with pytest.raises(ContractError) as info:
        WindowDataModule(values, mask, Split((0, 60), (60, 62), (62, 100)), spec, stride=1, batch_size=4)
    assert info.value.code is ErrorCode.INSUFFICIENT_DATA_ERROR and "val" in info.value.message


def _order(n: int, seed: int, epoch: int) -> list[int]:
    sampler = EpochShuffle(n, seed)
    sampler.set_epoch(epoch)
    return list(sampler)


@FAST
@given(n=st.integers(1, 200), seed=st.integers(0, 10_000), epoch=st.integers(0, 50), data=st.data())
def test_epoch_shuffle_resumes_mid_epoch_with_the_remaining_indices(
    n: int, seed: int, epoch: int, data: st.DataObject
) -> None:
    k = data.draw(st.integers(0, n), label="drawn before the stop")
    straight = _order(n, seed, epoch)
    assert sorted(straight) == list(range(n))
    stopped = EpochShuffle(n, seed)
    stopped.set_epoch(epoch)
    it = iter(stopped)
    assert [next(it) for _ in range(k)] == straight[:k]
    state = stopped.state_dict()
    assert state == {"epoch": epoch, "drawn": k}

    resumed = EpochShuffle(n, seed)
    resumed.load_state_dict(state)
    resumed.set_epoch(epoch)  # Lightning sets the epoch again after loading the state
    assert list(resumed) == straight[k:]
    assert len(resumed) == n  # the whole epoch: Lightning counts the batches already trained
    resumed.set_epoch(epoch + 1)  # and the next epoch is whole, in a straight run's order
    assert list(resumed) == _order(n, seed, epoch + 1)
    assert list(resumed) == _order(n, seed, epoch + 1)  # a second pass of an epoch starts at its beginning


def test_train_loader_resumes_the_remaining_batches_in_order() -> None:
    n, lookback, horizon, batch = 60, 5, 2, 4
    values = _values(n)
    spec = DataSpec(n_features=3, lookback=lookback, horizon=horizon, target_indices=(0,))
    starts, _ = window_starts(values, (0, n), lookback, horizon, 1)
    dataset = WindowDataset(values, ~np.isnan(values), starts, spec)

    def loader(epoch: int) -> DataLoader:
        out = window_loader(dataset, batch_size=batch, shuffle=True, seed=3)
        out.sampler.set_epoch(epoch)
        return out

    def rows(batches: list) -> list[list[int]]:
        return [b[0][:, 0, 0].int().tolist() for b in batches]  # column 0 holds each window's start row

    straight = rows(list(loader(2)))
    stopped = loader(2)
    assert isinstance(stopped, _Stateful)
    it = iter(stopped)
    first = rows([next(it) for _ in range(5)])
    state = stopped.state_dict()
    assert state == {"epoch": 2, "drawn": 5 * batch}

    resumed = window_loader(dataset, batch_size=batch, shuffle=True, seed=3)
    resumed.load_state_dict(state)
    rest = rows(list(resumed))
    assert first + rest == straight and len(rest) == len(straight) - 5
    assert not isinstance(window_loader(dataset, batch_size=batch, shuffle=False), _Stateful)
