"""Training-path overhead: our Lightning path against a minimal raw PyTorch loop over the same network.

    python benchmarks/overhead.py --data /path/to/ETTh1.csv [--rounds 3] [--epochs 2] [--quick]

Both sides train splineforecast.models.networks.RecurrentForecaster (LSTM, hidden 64, 2 layers, norm last,
skip) on the same train windows (OT only, lookback 96, horizon 24, WindowDataModule's loaders, batch 64)
for the same epochs, each epoch followed by a pass over the val windows, with Adam (lr 1e-3), gradient-norm
clipping at 1.0 and the masked MSE loss. The "ours" side is what a run does: a Tracker on a temporary sqlite
MLflow store (run created, params logged, train/val loss logged per epoch, run ended), the Trainer of
splineforecast.training.build_trainer (best/last checkpoints each epoch, early stopping) and ForecastModule.
The two sides alternate in one process, ``--rounds`` times; ``ratio`` is the median of ours / raw.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as common
import numpy as np

LOOKBACK, HORIZON = 96, 24


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = common.base_parser(__doc__.splitlines()[0], "overhead")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per training (default 2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-batches", type=int, default=0, help="train/val batches per epoch on both sides (0 = all)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round of 1 epoch of at most 10 batches")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.epochs, args.max_batches = 1, 1, args.max_batches or 10
    return args


def load(args: argparse.Namespace) -> Any:
    from splineforecast.data.preprocess import Preprocessor
    from splineforecast.models.spec import DataSpec
    from splineforecast.windows import WindowDataModule

    split = common.make_split(args.split)
    frame = common.read_etth(args.data, split.n_rows)[[common.TARGET]]
    out = Preprocessor(common.TARGET, [], common.SPLINE, "h", "overhead").fit(frame, split).transform(frame, split)
    spec = DataSpec(1, LOOKBACK, HORIZON, (0,))
    return WindowDataModule(out.values, out.observed_mask, split, spec, 1, args.batch_size, seed=0)


def model_cfg() -> dict[str, Any]:
    from splineforecast.config import ModelConfig

    return dataclasses.asdict(ModelConfig(name="lstm"))


def ours(data: Any, args: argparse.Namespace, store: str, round_no: int) -> tuple[float, float]:
    """The package's path; returns (seconds, last val loss)."""
    import pytorch_lightning as pl

    from splineforecast.artifacts import RunPaths
    from splineforecast.config import TrainerConfig
    from splineforecast.models.module import ForecastModule
    from splineforecast.tracking import Tracker, tracked_run
    from splineforecast.training import EpochMetrics, build_trainer

    limit = args.max_batches or 1.0
    cfg = TrainerConfig(
        max_epochs=args.epochs, enable_progress_bar=False, limit_train_batches=limit, limit_val_batches=limit
    )
    with tempfile.TemporaryDirectory(prefix="bench-ckpt-") as ckpt:
        t0 = time.perf_counter()
        tracker = Tracker(store, "overhead", f"overhead-{round_no}")
        tracker.claim("all", False, {"round": str(round_no), "epochs": str(args.epochs)})
        with tracked_run(tracker):
            pl.seed_everything(0, workers=True, verbose=False)
            module = ForecastModule(model_cfg(), dataclasses.asdict(data.spec))
            files = RunPaths(Path(ckpt), "overhead")
            trainer = build_trainer(cfg, files.best_ckpt, files.last_ckpt, [EpochMetrics(tracker.log_metrics)])
            trainer.fit(module, datamodule=data)
        seconds = time.perf_counter() - t0
    return seconds, float(trainer.callback_metrics["val/loss"])


def raw(data: Any, args: argparse.Namespace) -> tuple[float, float]:
    """A minimal loop: the same network, loaders, optimizer, clipping and loss; returns (seconds, last val loss)."""
    import torch

    from splineforecast.models.module import masked_mse
    from splineforecast.models.networks import RecurrentForecaster

    t0 = time.perf_counter()
    torch.manual_seed(0)
    spec, cfg = data.spec, model_cfg()
    net = RecurrentForecaster(
        "lstm", spec.n_features, spec.target_indices, spec.lookback, spec.horizon,
        cfg["hidden_size"], cfg["num_layers"], cfg["dropout"], cfg["norm"], cfg["skip"],
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    train, val = data.train_dataloader(), data.val_dataloader()
    limit = args.max_batches or None
    val_loss = float("nan")
    for epoch in range(args.epochs):
        train.sampler.set_epoch(epoch)
        net.train()
        for i, (x, y, m) in enumerate(train):
            if limit and i >= limit:
                break
            opt.zero_grad()
            loss = masked_mse(net(x), y, m)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
        net.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for i, (x, y, m) in enumerate(val):
                if limit and i >= limit:
                    break
                total += float(masked_mse(net(x), y, m)) * len(x)
                count += len(x)
        val_loss = total / max(count, 1)
    return time.perf_counter() - t0, val_loss


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = load(args)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp:
        store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        from splineforecast.tracking import Tracker

        t0 = time.perf_counter()
        Tracker(store, "overhead", "setup")  # creates and migrates the store once, as the first run on a machine does
        store_setup = time.perf_counter() - t0
        for r in range(args.rounds):
            for side in ("ours", "raw") if r % 2 == 0 else ("raw", "ours"):
                seconds, val_loss = ours(data, args, store, r) if side == "ours" else raw(data, args)
                rows.append({"round": r, "side": side, "seconds": seconds, "val_loss": val_loss})
                print(f"  round {r} {side}: {seconds:.2f} s, val/loss {val_loss:.4f}", flush=True)
    ratios = [
        next(x["seconds"] for x in rows if x["round"] == r and x["side"] == "ours")
        / next(x["seconds"] for x in rows if x["round"] == r and x["side"] == "raw")
        for r in range(args.rounds)
    ]
    ratio = statistics.median(ratios)
    summary = []
    for side in ("ours", "raw"):
        secs = [x["seconds"] for x in rows if x["side"] == side]
        summary.append({"side": side, "rounds": len(secs), "median_s": statistics.median(secs),
                        "min_s": min(secs), "max_s": max(secs)})  # fmt: skip
    print(f"\noverhead ({args.epochs} epochs, {len(data.datasets['train'])} train windows, batch {args.batch_size}, "
          f"max_batches {args.max_batches or 'all'}; {args.rounds} alternating rounds, one process)")  # fmt: skip
    print(common.table(summary, ("side", "rounds", "median_s", "min_s", "max_s")))
    print(
        f"ratio ours/raw (median of per-round ratios): {ratio:.3f}   per round: {', '.join(f'{x:.3f}' for x in ratios)}"
    )
    print(f"one-off sqlite store creation + migration: {store_setup:.2f} s (not in the ratio)")
    payload = {
        "benchmark": "overhead",
        "config": {**{k: v for k, v in vars(args).items() if k != "out"}, "split": list(args.split)},
        "machine": common.machine(),
        "rows": rows,
        "summary": summary,
        "ratios": ratios,
        "ratio": ratio,
        "store_setup_s": store_setup,
        "val_loss_gap": float(np.median([x["val_loss"] for x in rows if x["side"] == "ours"]))
        - float(np.median([x["val_loss"] for x in rows if x["side"] == "raw"])),
    }
    print(f"\nwrote {common.write_json(args.out, payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
