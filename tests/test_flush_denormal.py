"""Training treats subnormal floats as zero: a long recurrence's backward pass is many times slower on them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from splineforecast.config import ModelConfig, TrainerConfig
from splineforecast.data.splits import Split
from splineforecast.models.module import ForecastModule
from splineforecast.models.spec import DataSpec
from splineforecast.training import GracefulStop, fit
from splineforecast.windows import WindowDataModule

SUBNORMAL = 1e-39  # below float32's smallest normal number, 1.18e-38


def _subnormal_survives() -> bool:
    return bool((torch.tensor([SUBNORMAL]) * 1.0).item() != 0.0)


@pytest.fixture
def denormals_on() -> object:
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormal floats")
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(False)


def test_fit_flushes_subnormals_in_the_training_process(tmp_path: Path, denormals_on: object) -> None:
    t = np.arange(60, dtype=np.float64)
    values = np.sin(2 * np.pi * t / 12)[:, None]
    spec = DataSpec(n_features=1, lookback=12, horizon=3, target_indices=(0,))
    data = WindowDataModule(values, ~np.isnan(values), Split((0, 40), (40, 50), (50, 60)), spec, 1, 16)
    model = ModelConfig(name="lstm", hidden_size=4, num_layers=1).settle(False, 12, 12)
    module = ForecastModule(dataclasses.asdict(model), dataclasses.asdict(spec))
    cfg = TrainerConfig(max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    assert _subnormal_survives()
    fit(module, data, cfg, tmp_path / "best.ckpt", [], GracefulStop(tmp_path / "last.ckpt"))
    assert not _subnormal_survives()
