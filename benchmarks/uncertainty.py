"""Quantile forecasts on ETTh1 S: their training cost, their median's accuracy and their intervals' calibration.

    python benchmarks/uncertainty.py --data /path/to/ETTh1.csv [--horizon 24] [--seeds 1] [--epochs N] [--quick]

Each seed trains four runs of the product (``splineforecast.pipeline.run``, in this process, one after the
other, with the same seed and settings: ``experiment=etth1_s`` on the ETTh split):

- ``point``: the point model (``model.quantiles=[]``);
- ``conformal``: ``model.quantiles=[0.025,0.1,0.5,0.9,0.975] model.calibration=conformal``;
- ``quantiles``: the same quantiles, ``model.calibration=none`` (what conformal calibration changes);
- ``rolling``: ``conformal`` with ``model.calibration_window=720``: each test origin recalibrated on the last
  720 windows whose truth was observed before it.

Every number comes from the run's ``metrics.json`` (test MAE of the point forecast, the median for the
quantile runs; ``uncertainty`` scores of the model and of naive and seasonal naive), except the training
time: the seconds of the product's ``training.fit`` (the Lightning fit), and of the whole run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _common as common
import _product

LEVELS = (0.025, 0.1, 0.5, 0.9, 0.975)
ROLLING_WINDOW = 720
QUANTILE_VARIANTS = ("conformal", "rolling", "quantiles")
CALIBRATED = ("conformal", "rolling")
VARIANTS: dict[str, list[str]] = {
    "point": ["model.quantiles=[]", "model.calibration=none"],
    "conformal": [f"model.quantiles=[{','.join(map(str, LEVELS))}]", "model.calibration=conformal"],
    "quantiles": [f"model.quantiles=[{','.join(map(str, LEVELS))}]", "model.calibration=none"],
    # conformal, each test origin recalibrated on the last 720 windows (30 days) observed before it
    "rolling": [
        f"model.quantiles=[{','.join(map(str, LEVELS))}]",
        "model.calibration=conformal",
        f"model.calibration_window={ROLLING_WINDOW}",
    ],
}
FORECASTERS = ("model", "naive", "seasonal_naive")
INTERVAL_KEYS = ("coverage_95", "width_95", "coverage_80", "width_80", "msis_95", "crps")
TARGETS: dict[str, Any] = {
    "train_ratio_max": 1.1,  # conformal / point training seconds
    "median_mae_rel_max": 0.02,  # (conformal median MAE - point MAE) / point MAE
    "coverage_95": (0.95, 0.02),  # nominal, tolerance
    "coverage_80": (0.80, 0.03),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = common.base_parser(__doc__.splitlines()[0], "uncertainty")
    p.add_argument("--horizon", type=int, default=24)
    p.add_argument("--seeds", type=int, default=1, help="seeds, each training the four runs (default 1)")
    p.add_argument("--epochs", type=int, default=None, help="trainer.max_epochs (default: experiment=etth1_s's)")
    p.add_argument("--runs", default=None, help="folder for the runs' artifacts and MLflow store (default: temporary)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 epoch of 3 batches, no warm-up run")
    return p.parse_args(argv)


def product_overrides(args: argparse.Namespace, root: Path, variant: str, seed: int) -> list[str]:
    """The command-line overrides of one run: ETTh1 S on the protocol split, then the variant's keys."""
    return [
        *_product.etth1_s(args.data, args.horizon, args.split, root, args.quick),
        *([f"trainer.max_epochs={args.epochs}"] if args.epochs is not None and not args.quick else []),
        f"seed={max(seed, 0)}",
        f"run_id=unc-{variant}-seed{seed}" if seed >= 0 else "run_id=unc-warmup",
        "overwrite=true",  # --runs may hold an earlier run of this seed
        *VARIANTS[variant],
    ]


@contextlib.contextmanager
def timed_fit(seconds: list[float]) -> Iterator[None]:
    """Time every call of the product's ``training.fit`` as the pipeline calls it, appending to ``seconds``."""
    from splineforecast import pipeline

    original = pipeline.fit

    @functools.wraps(original)
    def fit(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*a, **kw)
        finally:
            seconds.append(time.perf_counter() - t0)

    pipeline.fit = fit
    try:
        yield
    finally:
        pipeline.fit = original


def train_run(
    args: argparse.Namespace, root: Path, variant: str, seed: int, extra: list[str] | None = None
) -> dict[str, Any]:
    """One product run; its row: training and run seconds, epochs, and what its metrics.json says."""
    from splineforecast import contracts, pipeline

    overrides = product_overrides(args, root, variant, seed) + (extra or [])
    cfg = _product.compose(overrides)
    checked = contracts.check(cfg)
    fit_seconds: list[float] = []
    t0 = time.perf_counter()
    with timed_fit(fit_seconds):
        pipeline.run(cfg, overrides, checked=checked)
    run_seconds = time.perf_counter() - t0
    metrics = json.loads(checked.paths.metrics_json.read_text())
    row: dict[str, Any] = {
        "variant": variant,
        "seed": seed,
        "train_seconds": sum(fit_seconds),
        "run_seconds": run_seconds,
        "epochs": metrics["training"]["epochs"],
        "mae": metrics["metrics"]["mae"],
        "mase": metrics["metrics"]["mase"],
        "metrics_json": str(checked.paths.metrics_json),
    }
    unc = metrics.get("uncertainty")
    if unc is not None:
        row["calibration"] = unc["calibration"]
        if unc["calibration"] == "conformal":  # the method the product fitted (calibration.json)
            row["method"] = json.loads(checked.paths.calibration_json.read_text())["method"]
        row["n_points"] = unc["n_points"]
        row["intervals"] = {f: {k: unc["scores"][f][k] for k in INTERVAL_KEYS} for f in FORECASTERS}
    return row


def warm_up(args: argparse.Namespace, root: Path) -> None:
    """A discarded run of two batches, so that no timed run pays for the first imports and allocations."""
    short = argparse.Namespace(**{**vars(args), "quick": True})
    train_run(short, root, "conformal", -1, ["trainer.limit_train_batches=2", "trainer.limit_val_batches=2"])


def run(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """Every seed's four runs (point, conformal, uncalibrated quantiles, rolling conformal), after a warm-up
    (none with --quick, whose seconds are not compared)."""
    if not args.quick:
        warm_up(args, root)
    rows = []
    for seed in range(args.seeds):
        for variant in VARIANTS:
            row = train_run(args, root, variant, seed)
            rows.append(row)
            print(
                f"  seed={seed} {variant}: mae={row['mae']:.4f} train {row['train_seconds']:.1f} s "
                f"({row['epochs']} epochs), run {row['run_seconds']:.1f} s",
                flush=True,
            )
    return rows


def _mean(rows: list[dict[str, Any]], get: Any) -> float:
    return common.mean_spread([get(r) for r in rows])[0]


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over seeds: the ratios and gaps the targets name, and every forecaster's interval scores."""
    by = {v: [r for r in rows if r["variant"] == v] for v in VARIANTS}
    train = {v: _mean(rs, lambda r: r["train_seconds"]) for v, rs in by.items()}
    runs = {v: _mean(rs, lambda r: r["run_seconds"]) for v, rs in by.items()}
    mae = {v: _mean(rs, lambda r: r["mae"]) for v, rs in by.items()}
    intervals = {
        v: {f: {k: _mean(by[v], lambda r, f=f, k=k: r["intervals"][f][k]) for k in INTERVAL_KEYS} for f in FORECASTERS}
        for v in QUANTILE_VARIANTS
    }
    ratios = {v: train[v] / train["point"] for v in QUANTILE_VARIANTS}
    rel = {v: (mae[v] - mae["point"]) / mae["point"] for v in QUANTILE_VARIANTS}
    met = {
        v: {
            "train_ratio": ratios[v] <= TARGETS["train_ratio_max"],
            "median_mae": rel[v] <= TARGETS["median_mae_rel_max"],
            **{
                k: abs(intervals[v]["model"][k] - TARGETS[k][0]) <= TARGETS[k][1]
                for k in ("coverage_95", "coverage_80")
            },
        }
        for v in CALIBRATED
    }
    return {
        "train_seconds": train,
        "run_seconds": runs,
        "train_ratio": ratios,
        "run_ratio": {v: runs[v] / runs["point"] for v in QUANTILE_VARIANTS},
        "mae": mae,
        "median_mae_rel": rel,
        "intervals": intervals,
        "targets": TARGETS,
        "targets_met": met,
    }


def cost_lines(s: dict[str, Any]) -> list[dict[str, Any]]:
    """The printed cost and accuracy table: one line per variant."""
    lines = []
    for v in VARIANTS:
        line = {"variant": v, "train_s": s["train_seconds"][v], "run_s": s["run_seconds"][v], "mae": s["mae"][v]}
        if v != "point":
            line |= {"train_ratio": s["train_ratio"][v], "mae_vs_point": f"{100 * s['median_mae_rel'][v]:+.2f}%"}
        lines.append(line)
    return lines


def interval_lines(s: dict[str, Any]) -> list[dict[str, Any]]:
    """The printed interval table: the model of both quantile variants, then the baselines (as scored in conformal)."""
    lines = [{"forecaster": f"model ({v})", **s["intervals"][v]["model"]} for v in QUANTILE_VARIANTS]
    lines += [{"forecaster": f, **s["intervals"]["conformal"][f]} for f in ("naive", "seasonal_naive")]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its tables and write its JSON."""
    args = parse_args(argv)
    started = time.time()
    with contextlib.ExitStack() as stack:
        root = Path(args.runs) if args.runs else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        rows = run(args, root)
    summary = summarise(rows)
    seconds = time.time() - started
    print(f"\nuncertainty, ETTh1 S, horizon {args.horizon}, {args.seeds} seed(s): cost and median accuracy")
    print(common.table(cost_lines(summary), ("variant", "train_s", "run_s", "train_ratio", "mae", "mae_vs_point")))
    method = next(r["method"] for r in rows if r["variant"] == "conformal")
    print(f"\ntest intervals (conformal method {method}; original units; msis_95, M4's MSIS, over the train part's")
    print("seasonal-naive MAE; naive and seasonal naive as scored in the conformal run)")
    print(common.table(interval_lines(summary), ("forecaster", *INTERVAL_KEYS)))
    for variant, met in summary["targets_met"].items():
        print(f"\ntargets met ({variant}): " + ", ".join(f"{k}={v}" for k, v in met.items()))
    config = common.run_config(args, levels=list(LEVELS))
    common.save_result(args.out, "uncertainty", config, seconds=seconds, rows=rows, summary=summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
