"""M4: the product's global panel model over every series of an M4 wide file pair, scored by M4's definitions.

    python benchmarks/m4.py --train Hourly-train.csv --test Hourly-test.csv --freq hourly --out DIR
        [--experiment m4_hourly] [--seeds N] [--model lstm|gru|none] [--lookback L] [--segment S --decoder parallel]
        [--quick] [--peers statsforecast,neuralforecast]
    python benchmarks/m4.py --train Hourly-train.csv --test Hourly-test.csv --freq hourly --write-long LONG.csv

The files are read only through the arguments, in M4's wide layout (``V1`` the id, then the values padded
with empty cells). Each seed is one run of the product (``splineforecast.pipeline.run``, in this process) on
a long table written to a temporary folder: every series' train values then its test values on a regular
grid from ``START`` (M4 has no dates), columns ``ds,unique_id,y``. The split counts from each series' end:
test = its ``horizon`` M4 test points, val = the ``horizon`` before them, train = the rest, so scaling is
fitted on each series' train part and the test points are never seen in fitting. The trained run's
forecaster (``splineforecast.serving.load_run_forecaster``) then forecasts from the train file's values;
those forecasts must give the run's own per-series test scores (``per_series.csv``), or the script stops.
A series the product leaves out (``meta.json`` ``panel.left_out``: too short for a window) takes the
seasonal naive forecast (``FALLBACK``), counted in ``m4.json``. ``--epochs``, ``--layers``, ... set the
product's keys (``_m4_args.PRODUCT_FLAGS``: ``--segment`` and ``--decoder`` are model.segment and
model.decoder); unset, they keep the product's defaults, or with ``--experiment NAME`` those of
``configs/experiment/NAME.yaml`` (``experiment=NAME``; the flags given override it). ``--write-long PATH``
writes the long table alone, for ``python -m splineforecast experiment=m4_hourly data.path=PATH``.
``--threads`` sets torch's threads in this process (speed, not the model settings). Scores, Naive2 and
seasonal naive follow the M4 competition's code (``_m4``). Writes ``DIR/forecasts.csv`` (the model's
forecast, the mean over seeds; Naive2's with ``--model none``), ``DIR/forecasts_<baseline>.csv`` and
``DIR/m4.json`` (with each seed's settled ``SETTINGS``). ``--peers`` adds the models of ``_peers``
(statsforecast, neuralforecast: the optional ``bench`` extra) on the same split, scored the same way
(``DIR/forecasts_peer_*.csv``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _common as common
import _m4
import _m4_args
import _m4_intervals as intervals
import _peers
import numpy as np
import pandas as pd

GRID = {"hourly": "h", "weekly": "W-SUN"}  # the product's data.freq for each M4 frequency
START = "2000-01-01"
BASELINES = ("naive2", "seasonal_naive", "naive")
FALLBACK = "seasonal_naive"  # the forecast of a series the product leaves out
COLUMNS = ("ds", "unique_id", "y")  # the long table: time, series id, target
# the run's settled keys m4.json records per seed (the flags' and the experiment's values, or the defaults)
SETTINGS = ("data.lookback", "data.max_windows_per_series", "model.name", "model.num_layers", "model.hidden_size")
SETTINGS += ("model.segment", "model.decoder", "model.loss", "model.skip_init", "data.scaler", "trainer.max_epochs")
MAE_TOLERANCE = 1e-4  # relative: served forecasts against the run's per_series.csv


def long_table(ids: Sequence[str], history: Sequence[np.ndarray], y: np.ndarray, freq: str) -> pd.DataFrame:
    """Every series' train values then its test values, on the grid ``freq`` from ``START``; the column
    ``is_test`` (not written to the product's file) marks the test rows."""
    parts = []
    for sid, h, test in zip(ids, history, y, strict=True):
        values = np.concatenate([h, test])
        stamps = pd.date_range(START, periods=len(values), freq=freq).strftime("%Y-%m-%dT%H:%M:%S")
        is_test = np.arange(len(values)) >= len(h)
        parts.append(pd.DataFrame({"ds": stamps, "unique_id": sid, "y": values, "is_test": is_test}))
    return pd.concat(parts, ignore_index=True)


def product_overrides(args: argparse.Namespace, root: Path, csv: Path, seed: int) -> list[str]:
    """The product's command-line overrides of one seed's run."""
    h = args.horizon
    return [
        *([f"experiment={args.experiment}"] if args.experiment else ["data.name=m4"]),
        f"model={args.model}",
        f"data.path={csv}",
        "data.series_column=unique_id",
        "data.target=y",
        "data.time_column=ds",
        f"data.freq={GRID[args.freq]}",
        f"data.horizon={h}",
        f"data.season_length={args.m}",
        "data.split.train=100000",  # rows counted from each series' end: train is all before val
        f"data.split.val={h}",
        f"data.split.test={h}",
        "trainer.enable_progress_bar=false",
        f"tracking.uri=sqlite:///{root}/mlflow.db",
        f"paths.artifacts={root}/artifacts",
        f"seed={seed}",
        f"run_id=m4-{args.model}-seed{seed}",
        "overwrite=true",  # --runs may hold an earlier run of this seed
        *(f"{k}={v}" for k, v in _m4_args.given_keys(args).items()),
        *(intervals.overrides() if args.intervals else []),
    ]


def compose(overrides: list[str]) -> Any:
    """The product's Config, composed from ``configs/`` with ``overrides`` as the command line builds it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from splineforecast.config import config_dir, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return OmegaConf.to_object(hydra_compose("config", overrides=overrides))


def train_run(args: argparse.Namespace, root: Path, csv: Path, seed: int) -> tuple[Any, Any, dict[str, Any]]:
    """One product run (check, preprocess, train, test scores) of the long table ``csv``; its result, RunPaths
    and ``SETTINGS``."""
    from splineforecast import contracts, pipeline

    overrides = product_overrides(args, root, csv, seed)
    cfg = compose(overrides)
    checked = contracts.check(cfg)
    settings = {k: getattr(getattr(cfg, k.split(".")[0]), k.split(".")[1]) for k in SETTINGS}
    return pipeline.run(cfg, overrides, checked=checked), checked.paths, settings


def served(paths: Any, table: pd.DataFrame, kept: Sequence[str], bounds: bool) -> dict[str, np.ndarray]:
    """The trained run's forecasts from each kept series' train-file values (no test rows), by series id:
    (h,), or (h, 5) of the point forecast and the bounds (``_m4_intervals.BOUNDS``) with ``bounds``."""
    from splineforecast.serving import load_run_forecaster

    history = table.loc[~table["is_test"] & table["unique_id"].isin(set(kept)), list(COLUMNS)]
    frame = load_run_forecaster(paths).predict(history)
    columns = ["y", *intervals.BOUNDS] if bounds else "y"
    return {str(sid): g[columns].to_numpy(np.float64) for sid, g in frame.groupby("unique_id", sort=False)}


def check_served(paths: Any, forecasts: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> float:
    """The largest relative gap between the served forecasts' per-series MAE and sMAPE and the run's own
    (``per_series.csv``, scored on its test windows).

    Raises:
        RuntimeError: other series, or a gap above ``MAE_TOLERANCE``: the served forecast is not the tested one.
    """
    rows = pd.read_csv(paths.per_series_csv, dtype={"unique_id": str}).set_index("unique_id")
    if set(rows.index) != set(forecasts):
        raise RuntimeError(f"per_series.csv scores {len(rows)} series, the forecaster served {len(forecasts)}")
    ids = list(rows.index)
    f, y = np.stack([forecasts[s] for s in ids]), np.stack([truth[s] for s in ids])
    ours = {"mae": np.mean(np.abs(y - f), axis=1), "smape": _m4.smape(y, f)}
    gap = max(float(np.max(np.abs(v - rows[k]) / np.maximum(np.abs(rows[k]), 1e-12))) for k, v in ours.items())
    if gap > MAE_TOLERANCE:
        raise RuntimeError(f"served forecasts differ from the run's test forecasts: relative score gap {gap:g}")
    return gap


def model_forecast(
    args: argparse.Namespace, root: Path, table: pd.DataFrame, ids: Sequence[str], fc: dict[str, np.ndarray], seed: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """One seed: every series' forecast (the product's; the ``FALLBACK`` baseline's for left-out series).

    Its seconds are the whole product run (checks, preprocessing, training, test scores, report, MLflow
    logging) plus the served forecast."""
    csv = root / "m4-long.csv"  # written by run_models: train and test rows, the product splits them
    t0, c0 = time.perf_counter(), time.process_time()
    result, paths, settings = train_run(args, root, csv, seed)
    run_seconds = time.perf_counter() - t0
    panel = paths.processed().read_meta().panel
    forecasts = served(paths, table, panel.series_ids, args.intervals)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    truth = {str(s): g["y"].to_numpy() for s, g in table[table["is_test"]].groupby("unique_id", sort=False)}
    gap = check_served(paths, {k: v if v.ndim == 1 else v[:, 0] for k, v in forecasts.items()}, truth)
    # a left-out series takes the FALLBACK forecast, and with --intervals that point as both bounds
    out = np.repeat(fc[FALLBACK][..., None], 1 + len(intervals.BOUNDS) if args.intervals else 1, axis=-1)
    for i, sid in enumerate(ids):
        if sid in forecasts:
            out[i] = forecasts[sid].reshape(out[i].shape)
    trained = result.result
    facts = {
        "seed": seed,
        "run_id": paths.run_id,
        "epochs": trained.training.epochs,
        "best_val_loss": trained.training.best_val_loss,
        "windows": trained.windows,
        "run_seconds": run_seconds,
        "fit_forecast_seconds": seconds,
        "fit_forecast_cpu_seconds": cpu_seconds,  # with --threads 1: about its wall time on an idle core
        "max_rel_gap_vs_per_series": gap,
        "settings": settings,
    }
    return out, facts | {"left_out": dict(panel.left_out)}


def series_counts(history: Sequence[np.ndarray], left_out: dict[str, str] | None) -> dict[str, Any]:
    """How the series are forecast: by the model, or (left out by the product) by the ``FALLBACK`` baseline."""
    counts: dict[str, Any] = {
        "n_series": len(history),
        "min_length": int(min(len(h) for h in history)),
        "max_length": int(max(len(h) for h in history)),
    }
    if left_out is None:  # --model none
        return counts
    return counts | {
        "n_model": len(history) - len(left_out),
        f"n_fallback_{FALLBACK}": len(left_out),
        "left_out": left_out,
    }


def scored(method: str, history: list[np.ndarray], y: np.ndarray, f: np.ndarray, args: Any, ref: Any) -> dict:
    """One measured row: the method's mean sMAPE, mean MASE and OWA against Naive2's scores ``ref``."""
    s = _m4.scores(history, y, f, args.m)
    return {"method": method, **s, "owa": _m4.owa(s, ref) if ref else 1.0}


def seed_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample std over the seeds' rows."""
    out: dict[str, Any] = {"method": f"{rows[0]['method']} (mean of {len(rows)} seeds)", "seeds": len(rows)}
    for key in ("smape", "mase", "owa"):
        out[key], out[f"{key}_std"] = common.mean_spread([r[key] for r in rows])
    return out


def print_seed(model: str, seed: int, r: dict[str, Any]) -> None:
    print(
        f"  {model} seed={seed}: sMAPE={r['smape']:.3f} MASE={r['mase']:.3f} OWA={r['owa']:.3f} "
        f"({r['epochs']} epochs, fit+forecast {r['fit_forecast_seconds']:.0f} s, "
        f"{r['fit_forecast_cpu_seconds']:.0f} CPU s)",
        flush=True,
    )


def run_models(
    history: list[np.ndarray], y: np.ndarray, ids: list[str], fc: dict[str, np.ndarray], ref: dict, args: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str], list[dict[str, Any]]]:
    """One product run per seed; the per-seed rows, the summary rows (seed mean, seed ensemble), the left-out,
    and with ``--intervals`` the interval row (``fc["bounds"]``: the bounds' mean over seeds)."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    freq = GRID[args.freq]
    table = long_table(ids, history, y, freq)
    seeds, forecasts, left_out = [], [], {}
    interval_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="m4-runs-") as tmp:
        root = Path(args.runs or tmp).resolve()
        root.mkdir(parents=True, exist_ok=True)
        table[list(COLUMNS)].to_csv(root / "m4-long.csv", index=False)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            out, facts = model_forecast(args, root, table, ids, fc, seed)
            left_out, f = facts.pop("left_out"), out[..., 0]
            if args.intervals:
                interval_rows.append(intervals.scored(args.model, history, y, out[..., 1:], args.m))
                fc["bounds"] = out[..., 1:] if seed == args.first_seed else fc["bounds"] + out[..., 1:]
            seeds.append(scored(args.model, history, y, f, args, ref) | facts)
            forecasts.append(f)
            print_seed(args.model, seed, seeds[-1])
    fc["model"] = np.mean(forecasts, axis=0)
    if args.intervals:
        fc["bounds"] = fc["bounds"] / args.seeds
        interval_rows = [intervals.summary(interval_rows)] if interval_rows else []
    rows = [seed_summary(seeds)]
    if args.seeds > 1:
        rows.append(scored(f"{args.model} (ensemble of {args.seeds} seeds)", history, y, fc["model"], args, ref))
    return seeds, rows, left_out, interval_rows


def run_peers(
    ids: list[str], history: list[np.ndarray], y: np.ndarray, fc: dict[str, np.ndarray], ref: dict, args: Any
) -> dict[str, Any]:
    """The ``--peers`` models on the same split: their ``m4.json`` entries; their forecasts join ``fc``.

    Raises:
        RuntimeError: statsforecast's SeasonalNaive differs from ours (the peers' data path is wrong).
    """
    runs = _peers.run_peers(args.peers, ids, history, args.horizon, args.m, args.freq)
    gap = _peers.seasonal_naive_gap(runs, fc["seasonal_naive"])
    if gap is not None and gap > 1e-6:
        raise RuntimeError(f"statsforecast SeasonalNaive differs from our seasonal naive by up to {gap:g}")
    peers = {}
    for r in runs:
        fc[f"peer_{r.name.replace(' ', '_')}"] = r.forecast
        peers[r.name] = _peers.scored(r, history, y, args.m, ref)
        if r.name == "statsforecast SeasonalNaive":
            peers[r.name]["max_abs_diff_vs_seasonal_naive"] = gap
    return peers


def write_long(args: argparse.Namespace) -> None:
    """``--write-long``: the long table the product's runs read (``COLUMNS``), nothing else."""
    test = _m4.read_wide(args.test)
    history, y = _m4.align(_m4.read_wide(args.train), test, args.horizon)
    long_table(test.ids, history, y, GRID[args.freq])[list(COLUMNS)].to_csv(args.write_long, index=False)
    print(f"wrote {args.write_long}: {len(test.ids)} series, train then {args.horizon} test values each")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Read, forecast, score and write the forecasts; the JSON fields."""
    test = _m4.read_wide(args.test)
    history, y = _m4.align(_m4.read_wide(args.train), test, args.horizon)
    ids = test.ids
    fc = _m4.baselines(history, args.horizon, args.m)
    ref = _m4.scores(history, y, fc["naive2"], args.m)
    rows = [scored(name, history, y, fc[name], args, ref) for name in BASELINES]
    seeds: list[dict[str, Any]] = []
    left_out: dict[str, str] | None = None
    interval_rows: list[dict[str, Any]] = []
    if args.model != "none":
        seeds, model_rows, left_out, interval_rows = run_models(history, y, ids, fc, ref, args)
        rows = model_rows + rows
    peers = run_peers(ids, history, y, fc, ref, args) if args.peers else {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _m4.write_wide(out / "forecasts.csv", ids, fc["model" if args.model != "none" else "naive2"])
    for name in (*BASELINES, *(k for k in fc if k.startswith("peer_"))):
        _m4.write_wide(out / f"forecasts_{name}.csv", ids, fc[name])
    if "bounds" in fc:
        intervals.write(out, ids, fc["bounds"])
        result_intervals = {"rows": interval_rows, "published": intervals.published(), "alpha": intervals.ALPHA}
    published = [
        {"method": k, "smape": v[0], "mase": v[1], "owa": v[2]}
        for k, v in (_m4.PUBLISHED_HOURLY.items() if args.freq == "hourly" else [])
    ]
    result = {"series": series_counts(history, left_out), "rows": rows, "seeds": seeds, "peers": peers}
    extra = {"intervals": result_intervals} if "bounds" in fc else {}
    return result | {"published": published, "fallback": FALLBACK} | extra


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return _m4_args.parse_args(argv, __doc__.splitlines()[0])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its table and write ``m4.json``."""
    args = parse_args(argv)
    if args.write_long:
        write_long(args)
        return 0
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"):  # the runs are the benchmark's own, in its folder
        os.environ.pop(name, None)
    started = time.time()
    result = run(args)
    seconds = time.time() - started
    s = result["series"]
    left = f"; {s[f'n_fallback_{FALLBACK}']} left out, forecast by {FALLBACK}" if "n_model" in s else ""
    ran = result["seeds"][0]["settings"] if result["seeds"] else {"data.lookback": args.lookback}
    print(
        f"\nM4 {args.freq} ({s['n_series']} series, horizon {args.horizon}, m {args.m}; model {args.model}, "
        f"lookback {ran['data.lookback']}{left})"
    )
    columns = ("method", "source", "smape", "mase", "owa", *(("seconds",) if result["peers"] else ()))
    print(common.table(_m4.printed(result), columns))
    if "intervals" in result:
        print("\n95% intervals\n" + intervals.table(result["intervals"]))
    config = {k: v for k, v in vars(args).items() if k != "out"}
    common.save_result(Path(args.out) / "m4.json", "m4", config, seconds=seconds, **result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
