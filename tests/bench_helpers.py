"""A small ETTh1-shaped table for the benchmark smoke tests (tests never read ../shared), and the accuracy
benchmark imported as its script imports its helpers."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def write_small_etth(path: Path, n: int, seed: int) -> Path:
    """``n`` hourly rows with ETTh1's eight columns: daily cycles, a drift and noise in OT."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    day = np.sin(2 * np.pi * t / 24)
    frame = pd.DataFrame({"date": pd.date_range("2016-07-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S")})
    for i, name in enumerate(("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL")):
        frame[name] = 3 + (i % 3) * day + 0.2 * rng.standard_normal(n)
    frame["OT"] = 20 + 5 * day + 0.002 * t + 0.5 * rng.standard_normal(n)
    frame.to_csv(path, index=False)
    return path


def benchmark_env(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Where a benchmark's ``main`` runs in a test's process: in ``root``, without the caller's MLflow store
    or run, with ``benchmarks/`` on the path as its script has it."""
    monkeypatch.chdir(root)
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.syspath_prepend(str(BENCH))


def reimport(name: str, *helpers: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported afresh, with the helper modules it imports (``benchmarks/`` must be
    on the path: :func:`benchmark_env`, or ``monkeypatch.syspath_prepend``)."""
    for module in (name, *helpers):
        sys.modules.pop(module, None)
    return importlib.import_module(name)


def import_accuracy(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``benchmarks/accuracy.py`` freshly imported with ``benchmarks/`` on the path, as its script runs."""
    monkeypatch.syspath_prepend(str(BENCH))
    return reimport("accuracy", "_multivariate", "_common")
