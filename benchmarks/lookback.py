"""Lookback scaling: the time of one training epoch and the test accuracy at lookbacks 96, 336 and 720, point-wise
(model.segment=1) beside segment-wise (SegRNN) recurrence, on ETTh1 and on a second series with a weekly season.

    python benchmarks/lookback.py --data /path/to/ETTh1.csv [--series taylor.csv --series-target demand]
        [--segment 24] [--decoder parallel] [--lookbacks 96,336,720] [--horizon 96] [--epochs 5] [--threads 1]

ETTh1 is setting S of benchmarks/accuracy.py (OT from its own history, the ETTh protocol split, season 24).
``--series`` adds any one-target CSV (``date`` column, ``--series-target``) split by the row fractions of
``--series-split`` (default 0.6,0.2,0.2), with ``--series-season`` (default 336: a weekly season of a
half-hourly series, such as the half-hourly electricity demand of England and Wales of Taylor (2003),
4032 rows from Monday 5 June 2000). Each lookback trains each model at segment 1 (the direct decoder) and
at ``--segment`` with ``--decoder`` for ``--epochs`` epochs, as accuracy.py trains (the best-val checkpoint
scored); the test windows are the same at every lookback (their lookback reaches back into val). Reported:
the median seconds of an epoch (its train batches and its val pass, from the second epoch on when there
are two or more), the segmented / point-wise ratio of it, and the scaled test MSE and MAE beside the naive and
seasonal naive forecasts. Training flushes subnormal floats to zero, as a run trains
(``splineforecast.training.FlushDenormal``).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from typing import Any

import _common as common
import accuracy
import numpy as np
import pandas as pd

from splineforecast.models.registry import DECODERS, MODEL_NAMES

LOOKBACKS = (96, 336, 720)
COLUMNS = ("dataset", "lookback", "model", "segment", "decoder", "epoch_s", "epoch_ratio", "mse_scaled", "mae_scaled")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = common.base_parser(__doc__.splitlines()[0], "lookback")
    p.add_argument("--series", help="a second CSV: a date column and --series-target")
    p.add_argument("--series-target", default="demand", help="the --series column forecast (default demand)")
    p.add_argument("--series-season", type=int, default=336, help="its season in steps (default 336)")
    p.add_argument("--series-split", default="0.6,0.2,0.2", help="its TRAIN,VAL,TEST row fractions")
    p.add_argument("--segment", type=int, default=24, help="the segmented runs' model.segment (default 24)")
    p.add_argument("--decoder", choices=DECODERS, default="parallel", help="their model.decoder (default parallel)")
    p.add_argument("--lookbacks", default=",".join(map(str, LOOKBACKS)), help="comma list (default 96,336,720)")
    p.add_argument("--horizon", type=int, default=96)
    p.add_argument("--models", default="lstm", help=f"comma list of {','.join(MODEL_NAMES)} (default lstm)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (default 0: torch's own choice)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 epoch of 10 batches")
    args = p.parse_args(argv)
    args.lookbacks = [int(x) for x in args.lookbacks.split(",") if x.strip()]
    args.models = [m.strip().lower() for m in args.models.split(",") if m.strip()]
    if set(args.models) - set(MODEL_NAMES):
        p.error(f"--models from {MODEL_NAMES}")
    args.norm, args.skip = "last", True  # what accuracy.train_one reads: the defaults
    if args.quick:
        args.epochs = 1
    return args


def epoch_clock() -> Any:
    """A Lightning callback that keeps the seconds of each epoch (train batches and the val pass) in ``seconds``
    and gives their median, the first (warm-up) epoch left out when there are more, as ``typical()``."""
    import pytorch_lightning as pl

    class EpochClock(pl.Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self._start = 0.0

        def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
            self._start = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            self.seconds.append(time.perf_counter() - self._start)

        def typical(self) -> float:
            return statistics.median(self.seconds[1:] or self.seconds)

    return EpochClock()


def etth1(args: argparse.Namespace) -> dict[str, Any]:
    """ETTh1's OT as setting S of accuracy.py: the protocol split, scaled on train."""
    split = common.make_split(args.split)
    frame = common.read_etth(args.data, split.n_rows)
    _, values, mask = accuracy.prepare(frame, split, "S")
    return {"name": "ETTh1", "values": values, "mask": mask, "split": split, "season": 24}


def other_series(args: argparse.Namespace) -> dict[str, Any]:
    """The --series CSV: one target on the grid its timestamps infer, split by row fractions, scaled on train."""
    from splineforecast.data.preprocess import Preprocessor

    frame = pd.read_csv(args.series)
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date")))
    frame = frame[[args.series_target]].astype(np.float64)
    fractions = [float(x) for x in args.series_split.split(",")]
    sizes = [int(f * len(frame)) for f in fractions]
    split = common.make_split(sizes)
    freq = pd.infer_freq(frame.index[:100])
    assert freq, f"{args.series}: no regular time step in its first 100 rows"
    pre = Preprocessor(args.series_target, [], common.SPLINE, freq, "lookback")
    out = pre.fit(frame, split).transform(frame, split)
    name = str(args.series).rsplit("/", 1)[-1].removesuffix(".csv")
    return {"name": name, "values": out.values, "mask": out.observed_mask, "split": split, "season": args.series_season}


def scaled(
    forecast: np.ndarray, data: dict[str, Any], starts: np.ndarray, lookback: int, horizon: int
) -> tuple[float, float]:
    """Scaled MSE and MAE of an (n, horizon) forecast over the observed test points."""
    from splineforecast.evaluation import truth

    y, seen = truth(data["values"][:, 0].astype(np.float64), data["mask"][:, 0], starts, lookback, horizon)
    err = forecast[seen] - y[seen]
    return float((err**2).mean()), float(np.abs(err).mean())


def baselines(data: dict[str, Any], starts: np.ndarray, lookback: int, horizon: int) -> list[dict[str, Any]]:
    from splineforecast.evaluation import baseline_forecasts

    series = data["values"][:, 0].astype(np.float64)
    rows = []
    for name, pred in baseline_forecasts(series, starts, lookback, horizon, data["season"]).items():
        mse, mae = scaled(pred, data, starts, lookback, horizon)
        rows.append(
            {"dataset": data["name"], "lookback": lookback, "model": name, "mse_scaled": mse, "mae_scaled": mae}
        )
    return rows


def train(
    args: argparse.Namespace, data: dict[str, Any], lookback: int, model: str, segment: int
) -> tuple[dict[str, Any], np.ndarray]:
    """One model at one lookback and segment: its row (epoch time, test scores) and the test window starts."""
    run = copy.copy(args)
    run.lookback, run.segment = lookback, segment
    run.decoder = args.decoder if segment > 1 else "direct"
    epochs = epoch_clock()
    forecast, test, facts = accuracy.train_one(
        data["values"], data["mask"], data["split"], run, model, args.horizon, args.seed, [epochs]
    )
    mse, mae = scaled(forecast, data, test.starts.numpy(), lookback, args.horizon)
    row = {"dataset": data["name"], "lookback": lookback, "model": model, "segment": segment, "decoder": run.decoder}
    row |= {"epoch_s": epochs.typical(), "epoch_seconds": epochs.seconds, "mse_scaled": mse, "mae_scaled": mae}
    row |= {"n_windows": len(test), **facts}
    print(
        f"  {data['name']} L={lookback} {model} segment={segment} {run.decoder}: epoch {row['epoch_s']:.2f} s, "
        f"mse_scaled={mse:.4f} mae_scaled={mae:.4f}",
        flush=True,
    )
    return row, test.starts.numpy()


def run_dataset(args: argparse.Namespace, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every lookback, model and segment on one dataset, the baselines beside them."""
    rows: list[dict[str, Any]] = []
    for lookback in args.lookbacks:
        for model in args.models:
            point, starts = train(args, data, lookback, model, 1)
            segmented, _ = train(args, data, lookback, model, args.segment)
            segmented["epoch_ratio"] = segmented["epoch_s"] / point["epoch_s"]
            rows += [point, segmented]
        rows += baselines(data, starts, lookback, args.horizon)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every dataset, print the table and write the JSON."""
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    datasets = [etth1(args)] + ([other_series(args)] if args.series else [])
    rows = [row for data in datasets for row in run_dataset(args, data)]
    print(
        f"\nlookback (horizon {args.horizon}, {args.epochs} epochs, segment {args.segment} with the {args.decoder} "
        "decoder against segment 1; epoch_s: median seconds of an epoch, val pass included)"
    )
    print(common.table(rows, COLUMNS))
    common.save_result(args.out, "lookback", common.run_config(args), seconds=time.time() - started, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
