"""Shared pieces of the benchmark scripts: the ETTh protocol, data loading, tables and JSON output.

Protocol (the standard ETTh split): train = rows 0..8639, val = 8640..11519, test = 11520..14399;
StandardScaler statistics from train only (the package's Preprocessor); lookback 96; every stride-1
test window (its lookback may reach into val).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = "OT"
LOADS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL")
DEFAULT_SPLIT = (8640, 2880, 2880)
SPLINE = {"kind": "cubic", "max_gap": 26, "lam": None, "smooth_observed": False}


def split_arg(text: str) -> tuple[int, int, int]:
    """``TRAIN,VAL,TEST`` row counts."""
    parts = [int(p) for p in text.split(",")]
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"--split wants three positive row counts TRAIN,VAL,TEST, got {text!r}")
    return parts[0], parts[1], parts[2]


def base_parser(description: str, name: str, data_required: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", required=data_required, help="an ETTh-format CSV (date,HUFL,...,LULL,OT)")
    parser.add_argument("--out", default=str(RESULTS / f"{name}.json"), help="the JSON written (default %(default)s)")
    parser.add_argument(
        "--split",
        type=split_arg,
        default=DEFAULT_SPLIT,
        help="TRAIN,VAL,TEST row counts from the first row (default 8640,2880,2880)",
    )
    return parser


def make_split(sizes: Sequence[int]) -> Any:
    from splineforecast.data.splits import Split

    a, b, c = sizes
    return Split(train=(0, a), val=(a, a + b), test=(a + b, a + b + c))


def dynamic_covariates(names: Sequence[str]) -> list[dict[str, str]]:
    """Preprocessor covariate entries: each column a dynamic numeric covariate."""
    return [{"name": c, "role": "dynamic", "type": "numeric"} for c in names]


def window_data(
    values: np.ndarray, mask: np.ndarray, split: Any, lookback: int, horizon: int, batch_size: int, seed: int = 0
) -> Any:
    """The package's WindowDataModule over processed values: the target in column 0, every stride-1 window."""
    from splineforecast.models.spec import DataSpec
    from splineforecast.windows import WindowDataModule

    spec = DataSpec(values.shape[1], lookback, horizon, (0,))
    return WindowDataModule(values, mask, split, spec, 1, batch_size, seed)


def seeded_module(model_cfg: dict[str, Any], spec: Any, seed: int) -> Any:
    """A ForecastModule built right after seeding everything, so that the seed fixes its initial weights."""
    import dataclasses

    import pytorch_lightning as pl

    from splineforecast.models.module import ForecastModule

    pl.seed_everything(seed, workers=True, verbose=False)
    return ForecastModule(model_cfg, dataclasses.asdict(spec))


@contextlib.contextmanager
def checkpoint_paths(run_id: str) -> Iterator[Any]:
    """The RunPaths of a run in a temporary folder, removed on exit: the checkpoints are the run's, not kept."""
    from splineforecast.artifacts import RunPaths

    with tempfile.TemporaryDirectory(prefix="bench-ckpt-") as tmp:
        yield RunPaths(Path(tmp), run_id)


def read_etth(path: str | os.PathLike[str], n_rows: int) -> pd.DataFrame:
    """The first ``n_rows`` rows of an ETTh-format CSV, indexed by its hourly timestamps."""
    frame = pd.read_csv(path)
    missing = [c for c in ("date", *LOADS, TARGET) if c not in frame.columns]
    if missing:
        sys.exit(f"{path}: not an ETTh-format file, missing columns {missing}")
    if len(frame) < n_rows:
        sys.exit(f"{path}: {len(frame)} rows, the split needs {n_rows} (pass --split TRAIN,VAL,TEST)")
    frame = frame.iloc[:n_rows]
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date")))
    return frame.astype(np.float64)


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain fixed-width table."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    vals = [float(v) for v in values]
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def time_summary(seconds: Sequence[float]) -> dict[str, float]:
    """Median, min and max of repeated timings."""
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds)}


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def run_config(args: argparse.Namespace, **overrides: Any) -> dict[str, Any]:
    """The options of a run as recorded in its JSON: all but ``--out``, the split as a list unless overridden."""
    return {k: v for k, v in vars(args).items() if k != "out"} | {"split": list(args.split), **overrides}


def save_result(out: str | os.PathLike[str], benchmark: str, config: dict[str, Any], **fields: Any) -> None:
    """Write the benchmark's JSON (its name, config, the machine, then ``fields``) and say where."""
    payload = {"benchmark": benchmark, "config": config, "machine": machine(), **fields}
    print(f"\nwrote {write_json(out, payload)}")


def write_json(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return out
