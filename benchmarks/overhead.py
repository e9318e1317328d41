"""Training-path overhead: our Lightning path against a minimal raw PyTorch loop over the same network.

    python benchmarks/overhead.py --data /path/to/ETTh1.csv [--rounds 3] [--epochs 2] [--quick]
        [--segment 24 --decoder parallel] [--threads 1]

Both sides train splineforecast.models.networks.RecurrentForecaster (LSTM, hidden 64, 2 layers, norm last,
skip; ``--segment`` and ``--decoder`` as model.segment and model.decoder) on the same train windows (OT only,
lookback 96, horizon 24, WindowDataModule's loaders, batch 64) for the same epochs, each epoch followed by a
pass over the val windows, with Adam (lr 1e-3), gradient-norm clipping at 1.0 and the masked MSE loss,
subnormal floats flushed to zero (as build_trainer's FlushDenormal does). The "ours" side is what a run does:
a Tracker on a temporary sqlite MLflow store (run created, params logged, train/val loss logged per epoch,
run ended), the Trainer of splineforecast.training.build_trainer (best/last checkpoints each epoch, early
stopping) and ForecastModule.
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

from splineforecast.models.registry import DECODERS

LOOKBACK, HORIZON = 96, 24


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; --quick shrinks rounds, epochs and batches."""
    p = common.base_parser(__doc__.splitlines()[0], "overhead")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per training (default 2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-batches", type=int, default=0, help="train/val batches per epoch on both sides (0 = all)")
    p.add_argument("--segment", type=int, default=1, help="model.segment (default 1: point-wise)")
    p.add_argument("--decoder", choices=DECODERS, default="direct", help="model.decoder (default direct)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default 0: torch's own choice)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round of 1 epoch of at most 3 batches")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.epochs, args.max_batches = 1, 1, args.max_batches or 3
    return args


def load(args: argparse.Namespace) -> Any:
    """The train/val windows both sides read: OT alone, scaled on train."""
    from splineforecast.data.preprocess import Preprocessor

    split = common.make_split(args.split)
    frame = common.read_etth(args.data, split.n_rows)[[common.TARGET]]
    out = Preprocessor(common.TARGET, [], common.SPLINE, "h", "overhead").fit(frame, split).transform(frame, split)
    return common.window_data(out.values, out.observed_mask, split, LOOKBACK, HORIZON, args.batch_size, seed=0)


def model_cfg(args: argparse.Namespace) -> dict[str, Any]:
    """The default LSTM settings (with ``--segment``, ``--decoder``), as both sides build the network from them."""
    from splineforecast.config import ModelConfig

    one_series = ModelConfig(name="lstm", segment=args.segment, decoder=args.decoder)
    return dataclasses.asdict(one_series.settle(panel=False, season_length=0, lookback=0))  # no season in play


def ours(data: Any, args: argparse.Namespace, store: str, round_no: int) -> tuple[float, float]:
    """The package's path; returns (seconds, last val loss)."""
    from splineforecast.config import TrainerConfig
    from splineforecast.tracking import Tracker, tracked_run
    from splineforecast.training import EpochMetrics, build_trainer

    limit = args.max_batches or 1.0
    cfg = TrainerConfig(
        max_epochs=args.epochs, enable_progress_bar=False, limit_train_batches=limit, limit_val_batches=limit
    )
    with common.checkpoint_paths("overhead") as files:
        t0 = time.perf_counter()
        tracker = Tracker(store, "overhead", f"overhead-{round_no}")
        tracker.claim("all", False, {"round": str(round_no), "epochs": str(args.epochs)})
        with tracked_run(tracker):
            module = common.seeded_module(model_cfg(args), data.spec, 0)
            trainer = build_trainer(cfg, files.best_ckpt, files.last_ckpt, [EpochMetrics(tracker.log_metrics)])
            trainer.fit(module, datamodule=data)
        seconds = time.perf_counter() - t0
    return seconds, float(trainer.callback_metrics["val/loss"])


def raw_network(spec: Any, cfg: dict[str, Any]) -> Any:
    """The network ForecastModule builds, built directly."""
    from splineforecast.models.networks import RecurrentForecaster

    return RecurrentForecaster(
        "lstm", spec.n_features, spec.target_indices, spec.lookback, spec.horizon,
        cfg["hidden_size"], cfg["num_layers"], cfg["dropout"], cfg["norm"], cfg["skip"],
        segment=cfg["segment"], decoder=cfg["decoder"],
    )  # fmt: skip


def raw_train_epoch(net: Any, opt: Any, train: Any, limit: int | None) -> None:
    """One pass over the train batches with the Trainer's clipping (gradient norm 1.0)."""
    import torch

    from splineforecast.models.module import masked_mse

    net.train()
    for i, (x, y, m) in enumerate(train):
        if limit and i >= limit:
            break
        opt.zero_grad()
        loss = masked_mse(net(x), y, m)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()


def raw_val_loss(net: Any, val: Any, limit: int | None) -> float:
    """The masked MSE over the val batches, each batch weighted by its size."""
    import torch

    from splineforecast.models.module import masked_mse

    net.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i, (x, y, m) in enumerate(val):
            if limit and i >= limit:
                break
            total += float(masked_mse(net(x), y, m)) * len(x)
            count += len(x)
    return total / max(count, 1)


def raw(data: Any, args: argparse.Namespace) -> tuple[float, float]:
    """A minimal loop: the same network, loaders, optimizer, clipping and loss; returns (seconds, last val loss)."""
    import torch

    t0 = time.perf_counter()
    torch.set_flush_denormal(True)  # as ours trains (FlushDenormal): subnormals would make raw slower, not ours
    torch.manual_seed(0)
    cfg = model_cfg(args)
    net = raw_network(data.spec, cfg)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    train, val = data.train_dataloader(), data.val_dataloader()
    limit = args.max_batches or None
    val_loss = float("nan")
    for epoch in range(args.epochs):
        train.sampler.set_epoch(epoch)
        raw_train_epoch(net, opt, train, limit)
        val_loss = raw_val_loss(net, val, limit)
    return time.perf_counter() - t0, val_loss


def time_rounds(data: Any, args: argparse.Namespace) -> tuple[list[dict[str, Any]], float]:
    """Both sides, alternating which goes first, in one MLflow store; the rows and the store's one-off setup time."""
    from splineforecast.tracking import Tracker

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp:
        store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        t0 = time.perf_counter()
        Tracker(store, "overhead", "setup")  # creates and migrates the store once, as the first run on a machine does
        store_setup = time.perf_counter() - t0
        for r in range(args.rounds):
            for side in ("ours", "raw") if r % 2 == 0 else ("raw", "ours"):
                seconds, val_loss = ours(data, args, store, r) if side == "ours" else raw(data, args)
                rows.append({"round": r, "side": side, "seconds": seconds, "val_loss": val_loss})
                print(f"  round {r} {side}: {seconds:.2f} s, val/loss {val_loss:.4f}", flush=True)
    return rows, store_setup


def round_ratios(rows: list[dict[str, Any]], rounds: int) -> list[float]:
    """Ours / raw seconds of each round."""

    def seconds(r: int, side: str) -> float:
        return next(x["seconds"] for x in rows if x["round"] == r and x["side"] == side)

    return [seconds(r, "ours") / seconds(r, "raw") for r in range(rounds)]


def side_median(rows: list[dict[str, Any]], side: str, key: str) -> float:
    """The median of ``key`` over one side's rounds."""
    return float(np.median([x[key] for x in rows if x["side"] == side]))


def main(argv: list[str] | None = None) -> int:
    """Time both sides, print the summary and the ratio, and write the JSON."""
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = load(args)
    rows, store_setup = time_rounds(data, args)
    ratios = round_ratios(rows, args.rounds)
    ratio = statistics.median(ratios)
    summary = []
    for side in ("ours", "raw"):
        secs = [x["seconds"] for x in rows if x["side"] == side]
        summary.append({"side": side, "rounds": len(secs), **common.time_summary(secs)})
    setting = f"segment {args.segment}, decoder {args.decoder}, {args.epochs} epochs"
    windows = f"{len(data.datasets['train'])} train windows, batch {args.batch_size}"
    rounds = f"max_batches {args.max_batches or 'all'}; {args.rounds} alternating rounds, one process"
    print(f"\noverhead ({setting}, {windows}, {rounds})")
    print(common.table(summary, ("side", "rounds", "median_s", "min_s", "max_s")))
    print(
        f"ratio ours/raw (median of per-round ratios): {ratio:.3f}   per round: {', '.join(f'{x:.3f}' for x in ratios)}"
    )
    print(f"one-off sqlite store creation + migration: {store_setup:.2f} s (not in the ratio)")
    gap = side_median(rows, "ours", "val_loss") - side_median(rows, "raw", "val_loss")
    common.save_result(
        args.out, "overhead", common.run_config(args), rows=rows, summary=summary, ratios=ratios, ratio=ratio,
        store_setup_s=store_setup, val_loss_gap=gap,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
