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
    """The options; --quick shrinks the series."""
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
    """The process's peak resident set size so far."""
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
    """Minutely sine cycles with noise, ``gaps`` of each column missing in runs of 1-10 steps."""
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


def import_package() -> None:
    """Import what the phases use before the baseline RSS is read, so that no phase pays for imports."""
    import splineforecast.data.preprocess  # noqa: F401
    import splineforecast.data.splits  # noqa: F401
    import splineforecast.models.spec  # noqa: F401
    import splineforecast.windows  # noqa: F401


def generate(state: dict[str, Any], rows: int, gaps: float) -> None:
    """The synthetic series and its 70/15/15 split."""
    from splineforecast.data.splits import time_splits

    state["frame"] = synthetic(rows, gaps)
    state["split"] = time_splits(rows, 0.7, 0.15, 0.15)


def preprocess(state: dict[str, Any]) -> None:
    """Spline fill and scaling by the package's Preprocessor, the covariates dynamic."""
    from splineforecast.data.preprocess import Preprocessor

    pre = Preprocessor("y", common.dynamic_covariates(COLUMNS[1:]), common.SPLINE, "min", "scale")
    state["out"] = pre.fit(state["frame"], state["split"]).transform(state["frame"], state["split"])


def window(state: dict[str, Any]) -> None:
    """The WindowDataModule over the processed values."""
    out = state["out"]
    state["data"] = common.window_data(out.values, out.observed_mask, state["split"], LOOKBACK, HORIZON, BATCH, seed=0)


def load_epoch(state: dict[str, Any]) -> None:
    """Read one epoch of train batches; counts the windows loaded."""
    n = 0
    for x, _, _ in state["data"].train_dataloader():
        n += len(x)
    state["loaded"] = n


def run_phases(args: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each phase in turn, handing its results on in one state; the phase rows and that state."""
    state: dict[str, Any] = {}
    phases = [
        run_phase("generate (not ours)", lambda: generate(state, args.rows, args.gaps), args.tracemalloc),
        run_phase("preprocess: spline fill + scale", lambda: preprocess(state), args.tracemalloc),
        run_phase("windowing", lambda: window(state), args.tracemalloc),
        run_phase("one epoch of train batches", lambda: load_epoch(state), args.tracemalloc),
    ]
    return phases, state


def add_ratios(phases: list[dict[str, Any]], base_rss: float, raw_mb: float) -> None:
    """Memory of each phase over the raw array size: RSS growth since the imports, and the traced peak if any."""
    for p in phases:
        p["peak_rss_over_raw"] = (p["peak_rss_mb"] - base_rss) / raw_mb
        if p["traced_peak_mb"] is not None:
            p["traced_peak_over_raw"] = p["traced_peak_mb"] / raw_mb


def totals(args: Any, phases: list[dict[str, Any]], state: dict[str, Any], base_rss: float) -> dict[str, Any]:
    """The run's figures beside the phase rows, as the JSON records them."""
    raw_mb = args.rows * len(COLUMNS) * 8 / 2**20
    ours = [p for p in phases if not p["phase"].startswith("generate")]
    return {
        "raw_mb": raw_mb,
        "base_rss_mb": base_rss,
        "missing_points": int(state["frame"].isna().to_numpy().sum()),
        "unfilled_points": int(np.isnan(state["out"].values).sum()),
        "windows": {k: len(v) for k, v in state["data"].datasets.items()},
        "rows_per_second": args.rows / sum(p["seconds"] for p in ours[:2]),  # preprocess + windowing
        "epoch_windows": state["loaded"],
    }


def print_report(args: Any, phases: list[dict[str, Any]], t: dict[str, Any]) -> None:
    """The header line, the phase table and the throughput line."""
    print(
        f"\nscale ({args.rows:,} rows x {len(COLUMNS)} columns, {t['missing_points']:,} missing points, "
        f"{t['unfilled_points']} left unfilled; raw float64 array {t['raw_mb']:.0f} MB; "
        f"RSS after imports {t['base_rss_mb']:.0f} MB)"
    )
    cols = ["phase", "seconds", "peak_rss_mb", "peak_rss_over_raw"]
    if args.tracemalloc:
        cols += ["traced_peak_mb", "traced_peak_over_raw"]
    print(common.table(phases, cols))
    print(
        f"preprocess + windowing: {t['rows_per_second']:,.0f} rows/s; "
        f"one epoch loaded {t['epoch_windows']:,} train windows {t['windows']}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the phases, print the table and write the JSON."""
    args = parse_args(argv)
    import_package()
    if args.data:
        print(f"note: --data {args.data} is ignored; the series is synthetic")
    base_rss = peak_rss_mb()
    phases, state = run_phases(args)
    t = totals(args, phases, state, base_rss)
    add_ratios(phases, base_rss, t["raw_mb"])
    print_report(args, phases, t)
    common.save_result(args.out, "scale", common.run_config(args, split=None), rows=phases, **t)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
