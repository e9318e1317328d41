"""accuracy.py's --lr, --series-embedding and --first-seed: the model a run builds, for one series (S) and M."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from bench_helpers import import_accuracy

CHANNELS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
TRAIN, VAL, TEST = 200, 80, 80


@pytest.fixture
def accuracy(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The benchmark module, imported as its script imports its helpers."""
    return import_accuracy(monkeypatch)


def small_csv(path: Path) -> Path:
    """360 hourly rows of the seven ETTh columns."""
    rng = np.random.default_rng(0)
    n = TRAIN + VAL + TEST
    frame = pd.DataFrame({"date": pd.date_range("2016-07-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S")})
    for i, name in enumerate(CHANNELS):
        frame[name] = np.sin(2 * np.pi * (np.arange(n) + i) / 24) + 0.2 * rng.standard_normal(n)
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_lr_and_series_embedding_reach_the_m_panels_network(accuracy: ModuleType, tmp_path: Path) -> None:
    import _multivariate as multivariate
    from _common import seeded_module

    data = small_csv(tmp_path / "etth.csv")
    argv = ["--data", str(data), "--split", f"{TRAIN},{VAL},{TEST}", "--settings", "M", "--lookback", "24",
            "--hidden", "8", "--layers", "1", "--lr", "0.0003", "--series-embedding", "5"]  # fmt: skip
    args = accuracy.parse_args(argv)
    cfg = multivariate.compose(args, 24, "gru", 0)
    assert (cfg.model.lr, cfg.model.series_embedding) == (0.0003, 5)
    _, windows = multivariate.panel_data(cfg)
    module = seeded_module(dataclasses.asdict(cfg.model), windows.spec, 0)
    assert module.net.embed.weight.shape == (len(CHANNELS), 5)  # one learned vector per channel
    assert module.configure_optimizers().param_groups[0]["lr"] == 0.0003


def test_defaults_keep_the_measured_protocol(accuracy: ModuleType) -> None:
    args = accuracy.parse_args(["--data", "x.csv"])
    assert (args.lr, args.series_embedding, args.first_seed) == (1e-3, 0, 0)
    assert accuracy.parse_args(["--data", "x.csv", "--first-seed", "2"]).first_seed == 2
    assert accuracy.model_config(accuracy.parse_args(["--data", "x.csv", "--lr", "0.01"]), "lstm").lr == 0.01
