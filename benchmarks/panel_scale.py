"""Panels at scale: preprocessing N series x 1,000 steps, its memory, window loading, and a Dask cluster.

    python benchmarks/panel_scale.py [--series 1000,10000] [--steps 1000] [--gaps 0.01] [--cluster] [--n-jobs 2]

Each size runs in a fresh Python process, so that its peak RSS (``resource.getrusage``) is its own. A
synthetic panel (N series of ``--steps`` daily steps, a target only, ``--gaps`` of its points missing in
runs of 1-10 steps, each series split 70/15/15) goes through the package's PanelPreprocessor (shared
categories, per-series scaling on train, cubic spline fill per part) on the serial path, then the
WindowDataModule over the result (lookback 96, horizon 24, stride 1) and ``--batches`` train batches of 64
are read. Memory is the peak RSS growth since the imports, and since the panel was built, over the size of
the raw float32 array (N x steps x 4 bytes). ``--cluster`` also preprocesses on a ``distributed.LocalCluster``
(2 worker processes, 1 thread each, on 127.0.0.1) and ``--n-jobs`` in loky processes; both are checked
bit-identical to the serial arrays. ``--profile N`` prints the cProfile of one serial preprocessing of N
series; ``--quick`` is a smoke run (the cluster's 2 workers are threads of the size's process, still over TCP).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import subprocess
import sys
import time
from typing import Any

import _common as common
import numpy as np
import pandas as pd

LOOKBACK, HORIZON, BATCH = 96, 24, 64


def sizes_arg(text: str) -> list[int]:
    try:
        sizes = [int(p) for p in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--series wants positive counts N1,N2,..., got {text!r}")
    return sizes


def parse_args(argv: list[str] | None = None) -> Any:
    p = common.base_parser(__doc__.splitlines()[0], "panel_scale", data_required=False)
    p.add_argument("--series", type=sizes_arg, default=[1000, 10000], help="panel sizes (default 1000,10000)")
    p.add_argument("--steps", type=int, default=1000, help="steps per series (default 1000)")
    p.add_argument("--gaps", type=float, default=0.01, help="fraction of missing points (default 0.01)")
    p.add_argument("--batches", type=int, default=200, help="train batches read per size (default 200)")
    p.add_argument(
        "--window-series",
        type=int,
        default=1000,
        help="the WindowDataModule is built over the first this many series (default 1000; its build time "
        "grows with series x rows)",
    )
    p.add_argument("--cluster", action="store_true", help="also preprocess on a 2-worker LocalCluster")
    p.add_argument("--n-jobs", type=int, default=1, help="also preprocess in this many loky processes (>1)")
    p.add_argument("--profile", type=int, default=None, help="print the cProfile of N series, then exit")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 20,40 series of 300 steps, 5 batches, threads as workers"
    )
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # the per-size child process
    args = p.parse_args(argv)
    if args.quick:
        args.series, args.steps, args.batches, args.window_series = [20, 40], 300, 5, 20
    return args


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def synthetic_panel(n_series: int, steps: int, gaps: float, seed: int = 0) -> list[Any]:
    """``n_series`` SeriesFrames: weekly and yearly cycles with noise, ``gaps`` missing in runs of 1-10."""
    from splineforecast.data.panel import SeriesFrame
    from splineforecast.data.splits import time_splits

    rng = np.random.default_rng(seed)
    split = time_splits(steps, 0.7, 0.15, 0.15)
    index = pd.date_range("2000-01-01", periods=steps, freq="D")
    t = np.arange(steps, dtype=np.float64)
    n_runs = max(1, int(steps * gaps / 5.5))  # mean run length 5.5
    out = []
    for k in range(n_series):
        y = 10 + np.sin(2 * np.pi * t / 7 + k) + np.sin(2 * np.pi * t / 365) + 0.2 * rng.standard_normal(steps)
        starts, lengths = rng.integers(1, steps - 11, n_runs), rng.integers(1, 11, n_runs)
        y[(starts[:, None] + np.arange(10))[np.arange(10) < lengths[:, None]]] = np.nan
        out.append(SeriesFrame(f"s{k:06d}", pd.DataFrame({"y": y}, index=index), split))
    return out


def preprocess(series: list[Any], mapper: Any = None) -> tuple[Any, float, float]:
    """The fitted PanelPreprocessor's arrays, and the fit and transform seconds."""
    from splineforecast.data.panel_preprocess import PanelPreprocessor

    pre = PanelPreprocessor("y", [], common.SPLINE, "D", "panel-scale", "id")
    t0 = time.perf_counter()
    pre.fit(series)
    t1 = time.perf_counter()
    out = pre.transform(series, mapper)
    return out, t1 - t0, time.perf_counter() - t1


def load_windows(series: list[Any], out: Any, batches: int, limit: int) -> dict[str, Any]:
    """The WindowDataModule over the first ``limit`` series' arrays; ``batches`` train batches read, timed."""
    from splineforecast.models.spec import DataSpec
    from splineforecast.windows import WindowDataModule

    kept = series[:limit]
    end = int(out.offsets[len(kept)])
    t0 = time.perf_counter()
    segments = [(int(a), s.split) for a, s in zip(out.offsets[: len(kept)], kept, strict=True)]
    spec = DataSpec(1, LOOKBACK, HORIZON, (0,))
    data = WindowDataModule(out.values[:end], out.observed_mask[:end], segments, spec, 1, BATCH)
    t1 = time.perf_counter()
    n, loader = 0, iter(data.train_dataloader())
    for _ in range(batches):
        x = next(loader, None)
        if x is None:
            break
        n += len(x[0])
    t2 = time.perf_counter()
    return {
        "window_series": len(kept),
        "windowing_s": t1 - t0,
        "train_windows": len(data.datasets["train"]),
        "windows_per_s": n / (t2 - t1),
    }


def identical(a: Any, b: Any) -> bool:
    return bool(
        np.array_equal(a.values, b.values, equal_nan=True)
        and np.array_equal(a.observed_mask, b.observed_mask)
        and np.array_equal(a.offsets, b.offsets)
    )


def on_cluster(series: list[Any], serial: Any, processes: bool) -> dict[str, Any]:
    """Preprocess on a 2-worker LocalCluster on loopback (TCP; the workers in their own processes, or threads of
    this one when not ``processes``): startup and preprocessing seconds."""
    from distributed import LocalCluster

    from splineforecast.data.engine import series_mapper

    t0 = time.perf_counter()
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=processes, host="127.0.0.1", protocol="tcp://",
        dashboard_address=None,
    ) as cluster:  # fmt: skip
        t1 = time.perf_counter()
        out, fit_s, transform_s = preprocess(series, series_mapper(1, cluster.scheduler_address))
    return {"cluster_start_s": t1 - t0, "cluster_s": fit_s + transform_s, "cluster_identical": identical(out, serial)}


def in_processes(series: list[Any], serial: Any, n_jobs: int) -> dict[str, Any]:
    from splineforecast.data.engine import series_mapper

    out, fit_s, transform_s = preprocess(series, series_mapper(n_jobs, None))
    return {"processes_s": fit_s + transform_s, "processes_identical": identical(out, serial)}


def one_size(args: Any) -> dict[str, Any]:
    """Everything for ``args.one`` series, in this (fresh) process."""
    import splineforecast.data.panel_preprocess  # noqa: F401  (imports before the baseline)
    import splineforecast.windows  # noqa: F401

    n, base = args.one, peak_rss_mb()
    t0 = time.perf_counter()
    series = synthetic_panel(n, args.steps, args.gaps)
    row: dict[str, Any] = {"series": n, "generate_s": time.perf_counter() - t0}
    built = peak_rss_mb()
    out, fit_s, transform_s = preprocess(series, None)
    peak = peak_rss_mb()
    raw_mb = n * args.steps * 4 / 2**20
    row |= {"fit_s": fit_s, "transform_s": transform_s, "preprocess_s": fit_s + transform_s}
    row |= {"series_per_s": n / (fit_s + transform_s), "raw_f32_mb": raw_mb, "base_rss_mb": base}
    row |= {"panel_rss_mb": built, "peak_rss_mb": peak, "rss_over_raw": (peak - base) / raw_mb}
    row |= {"preprocess_rss_over_raw": (peak - built) / raw_mb, "unfilled": int(np.isnan(out.values).sum())}
    row |= load_windows(series, out, args.batches, args.window_series)
    if args.n_jobs > 1:
        row |= in_processes(series, out, args.n_jobs)
    if args.cluster:
        row |= on_cluster(series, out, processes=not args.quick)
    return row


def run_child(args: Any, n: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--one", str(n), "--steps", str(args.steps), "--gaps", str(args.gaps)]
    argv += ["--batches", str(args.batches), "--n-jobs", str(args.n_jobs), "--window-series", str(args.window_series)]
    argv += ["--cluster"] if args.cluster else []
    argv += ["--quick"] if args.quick else []  # its cluster's workers are threads
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{n} series failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def profile(args: Any) -> None:
    """cProfile of one serial preprocessing (fit and transform) of ``args.profile`` series, imports done first."""
    import splineforecast.data.panel_preprocess  # noqa: F401

    series = synthetic_panel(args.profile, args.steps, args.gaps)
    with cProfile.Profile() as prof:
        preprocess(series, None)
    pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
    pstats.Stats(prof).sort_stats("tottime").print_stats(15)


def print_report(args: Any, rows: list[dict[str, Any]]) -> None:
    print(f"\npanel_scale ({args.steps} steps per series, {args.gaps:.0%} gaps; serial preprocessing)")
    cols = ["series", "preprocess_s", "series_per_s", "raw_f32_mb", "peak_rss_mb", "rss_over_raw"]
    cols += ["preprocess_rss_over_raw", "window_series", "windowing_s", "windows_per_s"]
    cols += ["processes_s", "processes_identical"] if args.n_jobs > 1 else []
    cols += ["cluster_start_s", "cluster_s", "cluster_identical"] if args.cluster else []
    print(common.table(rows, cols))
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        growth = (b["preprocess_s"] / a["preprocess_s"]) / (b["series"] / a["series"])
        print(f"time per series from {a['series']} to {b['series']} series: x{growth:.2f} (1.00 = linear)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one is not None:
        print(json.dumps(one_size(args), default=float))
        return 0
    if args.profile is not None:
        profile(args)
        return 0
    rows = []
    for n in args.series:
        print(f"  {n} series ...", flush=True)
        rows.append(run_child(args, n))
    print_report(args, rows)
    config = {k: v for k, v in common.run_config(args, split=None).items() if k != "one"}
    common.save_result(args.out, "panel_scale", config, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
