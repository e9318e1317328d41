"""Preprocessing at scale: spline fill + scaling + windowing of a long synthetic series, and one epoch of loading.

    python benchmarks/scale.py [--rows 10000000] [--gaps 0.01] [--tracemalloc]

The series (``--rows`` minutely rows; a target and three numeric covariates; ``--gaps`` of the points of
each column missing, in runs of 1-10 steps, all within spline.max_gap 26) goes through the package's
Preprocessor (cubic spline fill per part of a 70/15/15 split, StandardScaler on train) and
WindowDataModule (lookback 96, horizon 24, stride 1), then one epoch of the train loader (batch 64) is
read. Wall time per phase; memory as the process peak RSS (resource.getrusage) against the raw float64
array size, or with ``--tracemalloc`` the peak traced allocation of each phase (slower, so its times are
not comparable). ``--data`` is accepted and ignored: the series is synthetic.
"""

from __future__ import annotations

import resource
import time
import tracemalloc
from typing import Any

import _common as common
import numpy as np
import pandas as pd

LOOKBACK, HORIZON, BATCH = 96, 24, 64
COLUMNS = ("y", "c1", "c2", "c3")


def parse_args(argv: list[str] | None = None) -> Any:
    p = common.base_parser(__doc__.splitlines()[0], "scale", data_required=False)
    p.add_argument("--rows", type=int, default=10_000_000, help="rows of the synthetic series (default 10 million)")
    p.add_argument("--gaps", type=float, default=0.01, help="fraction of missing points per column (default 0.01)")
    p.add_argument("--tracemalloc", action="store_true", help="per-phase peak traced memory (slows the phases)")
    p.add_argument("--quick", action="store_true", help="smoke run: 20000 rows")
    args = p.parse_args(argv)
    if args.quick:
        args.rows = 20_000
    return args


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_phase(name: str, fn: Any, traced: bool) -> dict[str, Any]:
    """Run ``fn``; its wall time, the process peak RSS after it, and its traced peak when ``traced``."""
    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    traced_mb = tracemalloc.get_traced_memory()[1] / 2**20 if traced else None
    if traced:
        tracemalloc.stop()
    row = {"phase": name, "seconds": seconds, "peak_rss_mb": peak_rss_mb(), "traced_peak_mb": traced_mb}
    print(f"  {name}: {seconds:.2f} s, peak RSS {row['peak_rss_mb']:.0f} MB", flush=True)
    return row


def synthetic(rows: int, gaps: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(rows, dtype=np.float64)
    data = {}
    for i, name in enumerate(COLUMNS):
        y = np.sin(2 * np.pi * t / (1440 * (i + 1))) + 0.1 * rng.standard_normal(rows)
        n_runs = int(rows * gaps / 5.5)  # mean run length 5.5
        starts = rng.integers(200, rows - 200, n_runs)
        lengths = rng.integers(1, 11, n_runs)
        idx = (starts[:, None] + np.arange(10)[None, :])[np.arange(10)[None, :] < lengths[:, None]]
        y[idx] = np.nan
        data[name] = y
    return pd.DataFrame(data, index=pd.date_range("2000-01-01", periods=rows, freq="min"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from splineforecast.data.preprocess import Preprocessor
    from splineforecast.data.splits import time_splits
    from splineforecast.models.spec import DataSpec
    from splineforecast.windows import WindowDataModule

    if args.data:
        print(f"note: --data {args.data} is ignored; the series is synthetic")
    phases: list[dict[str, Any]] = []
    base_rss = peak_rss_mb()
    state: dict[str, Any] = {}

    def phase(name: str, fn: Any) -> None:
        phases.append(run_phase(name, fn, args.tracemalloc))

    def generate() -> None:
        state["frame"] = synthetic(args.rows, args.gaps)
        state["split"] = time_splits(args.rows, 0.7, 0.15, 0.15)

    def preprocess() -> None:
        covariates = [{"name": c, "role": "dynamic", "type": "numeric"} for c in COLUMNS[1:]]
        pre = Preprocessor("y", covariates, common.SPLINE, "min", "scale")
        state["out"] = pre.fit(state["frame"], state["split"]).transform(state["frame"], state["split"])

    def window() -> None:
        spec = DataSpec(len(COLUMNS), LOOKBACK, HORIZON, (0,))
        out = state["out"]
        state["data"] = WindowDataModule(out.values, out.observed_mask, state["split"], spec, 1, BATCH, seed=0)

    def epoch() -> None:
        n = 0
        for x, _, _ in state["data"].train_dataloader():
            n += len(x)
        state["loaded"] = n

    phase("generate (not ours)", generate)
    phase("preprocess: spline fill + scale", preprocess)
    phase("windowing", window)
    phase("one epoch of train batches", epoch)

    raw_mb = args.rows * len(COLUMNS) * 8 / 2**20
    frame = state["frame"]
    missing = int(frame.isna().to_numpy().sum())
    unfilled = int(np.isnan(state["out"].values).sum())
    windows = {k: len(v) for k, v in state["data"].datasets.items()}
    ours = [p for p in phases if not p["phase"].startswith("generate")]
    for p in phases:
        p["peak_rss_over_raw"] = (p["peak_rss_mb"] - base_rss) / raw_mb
        if p["traced_peak_mb"] is not None:
            p["traced_peak_over_raw"] = p["traced_peak_mb"] / raw_mb
    print(
        f"\nscale ({args.rows:,} rows x {len(COLUMNS)} columns, {missing:,} missing points, {unfilled} left unfilled; "
        f"raw float64 array {raw_mb:.0f} MB; RSS after imports {base_rss:.0f} MB)"
    )
    cols = ["phase", "seconds", "peak_rss_mb", "peak_rss_over_raw"]
    if args.tracemalloc:
        cols += ["traced_peak_mb", "traced_peak_over_raw"]
    print(common.table(phases, cols))
    rate = args.rows / sum(p["seconds"] for p in ours[:2])
    print(f"preprocess + windowing: {rate:,.0f} rows/s; one epoch loaded {state['loaded']:,} train windows {windows}")
    payload = {
        "benchmark": "scale",
        "config": {k: v for k, v in vars(args).items() if k != "out"} | {"split": None},
        "machine": common.machine(),
        "rows": phases,
        "raw_mb": raw_mb,
        "base_rss_mb": base_rss,
        "missing_points": missing,
        "unfilled_points": unfilled,
        "windows": windows,
        "rows_per_second": rate,
        "epoch_windows": state["loaded"],
    }
    print(f"\nwrote {common.write_json(args.out, payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
