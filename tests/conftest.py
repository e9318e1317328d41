"""Shared fixtures: a synthetic series with gaps, composed configs, and an isolated tracking store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import OmegaConf

from splineforecast.config import Config, config_dir, register_configs
from splineforecast.data import io

Compose = Callable[[list[str]], Config]


def compose_config(overrides: list[str] | None = None) -> Config:
    """Compose ``configs/config.yaml`` with ``overrides`` into the ``Config`` dataclass."""
    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides or []))
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, Config)
    return config


@pytest.fixture(scope="session")
def compose() -> Compose:
    """``compose(overrides) -> Config``, as the command line would build it."""
    return compose_config


@pytest.fixture
def tiny_frame() -> pd.DataFrame:
    """120 weekly rows of a seeded trend + season + noise series with short and long gaps.

    Gaps: rows 10-12 (3), 40 (1), 70-99 (30: longer than the default max_gap 26).
    """
    rng = np.random.default_rng(7)
    n = 120
    t = np.arange(n, dtype=np.float64)
    y = 300.0 + 0.05 * t + 3.0 * np.sin(2 * np.pi * t / 52) + rng.normal(0.0, 0.2, n)
    y[10:13] = np.nan
    y[40] = np.nan
    y[70:100] = np.nan
    index = pd.date_range("2000-01-01", periods=n, freq="W-SAT", name="date")
    return pd.DataFrame({"y": y}, index=index)


@pytest.fixture
def bundled_head() -> pd.DataFrame:
    """The first 60 rows of the bundled tiny CO2 table, as ``io.read_csv`` reads them (text cells)."""
    path = Path(str(resources.files("splineforecast") / "datasets" / "co2_tiny.csv"))
    return io.read_csv(path).head(60)


def _isolate(mp: pytest.MonkeyPatch, root: Path) -> list[str]:
    mp.chdir(root)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    return [f"tracking.uri=sqlite:///{root}/mlruns/mlflow.db", f"paths.artifacts={root}/artifacts"]


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Overrides that send tracking and artifacts into ``tmp_path`` (also the cwd)."""
    return _isolate(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def isolated_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """Like ``isolated``, shared by one test module: ``(root, overrides)``."""
    root = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        yield root, _isolate(mp, root)


Cli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """``cli(*overrides)`` runs ``python -m splineforecast`` in ``tmp_path`` with its tracking store
    (``sqlite:///<tmp_path>/mlruns/mlflow.db``) and artifacts (``<tmp_path>/a``) there."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}
    store = [f"tracking.uri=sqlite:///{tmp_path}/mlruns/mlflow.db", f"paths.artifacts={tmp_path}/a"]

    def run(*overrides: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "splineforecast", *overrides, *store]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)

    return run
