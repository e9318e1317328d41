"""A small ETTh1-shaped table for the benchmark smoke tests (tests never read ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


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
