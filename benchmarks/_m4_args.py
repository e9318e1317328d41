"""The command line of ``benchmarks/m4.py``: its flags, and the product keys the model flags set."""

from __future__ import annotations

import argparse

import _m4
import _peers

from splineforecast.config import config_dir
from splineforecast.models.registry import DECODERS, MODEL_NAMES

DEFAULT_LOOKBACK = {"hourly": 168, "weekly": 52}  # without --lookback or an experiment's data.lookback
# flag -> (type, the product's key it sets); unset, the key keeps the experiment's value or the product's default
PRODUCT_FLAGS: dict[str, tuple[type, str]] = {
    "--lookback": (int, "data.lookback"),
    "--epochs": (int, "trainer.max_epochs"),
    "--patience": (int, "trainer.patience"),
    "--windows-per-series": (int, "data.max_windows_per_series"),
    "--batch-size": (int, "data.batch_size"),
    "--hidden": (int, "model.hidden_size"),
    "--layers": (int, "model.num_layers"),
    "--lr": (float, "model.lr"),
    "--segment": (int, "model.segment"),
    "--decoder": (str, "model.decoder"),
    "--loss": (str, "model.loss"),
    "--scaler": (str, "data.scaler"),
    "--skip-init": (str, "model.skip_init"),
}


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--train", required=True, help="M4 wide training file (id, then values)")
    p.add_argument("--test", required=True, help="M4 wide test file (id, then the horizon's values)")
    p.add_argument("--freq", required=True, choices=tuple(_m4.FREQUENCIES), help="sets horizon and m")
    p.add_argument("--out", default=None, help="folder for forecasts*.csv and m4.json (required)")
    p.add_argument("--experiment", default=None, help="configs/experiment/NAME.yaml the runs start from")
    p.add_argument("--write-long", default=None, metavar="PATH", help="only write the long table (ds,unique_id,y)")
    p.add_argument("--model", choices=(*MODEL_NAMES, "none"), default="lstm", help="none: baselines only")
    p.add_argument("--seeds", type=int, default=1, help="runs, each with its own seed 0..N-1 (default 1)")
    p.add_argument("--first-seed", type=int, default=0, help="seeds K..K+N-1 instead (runs are deterministic)")
    p.add_argument("--horizon", type=int, default=None, help="default: M4's, 48 hourly, 13 weekly")
    for flag, (kind, key) in PRODUCT_FLAGS.items():
        choices = DECODERS if flag == "--decoder" else None
        default = "168 hourly, 52 weekly" if flag == "--lookback" else "the product's"
        p.add_argument(flag, type=kind, choices=choices, help=f"{key} (default: {default}, or the experiment's)")
    p.add_argument("--intervals", action="store_true", help="also 95%% intervals (lower.csv, upper.csv, MSIS)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    p.add_argument("--runs", default=None, help="keep the product's runs here (default: a temporary folder)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 epoch of 4 batches, 1 seed")
    p.add_argument("--peers", default="", help=f"comma-separated, of {','.join(_peers.PEERS)} (default none)")
    return p


def parse_args(argv: list[str] | None, description: str) -> argparse.Namespace:
    """The flags, checked; ``horizon`` and ``m`` filled from M4's frequency, ``lookback`` from
    ``DEFAULT_LOOKBACK`` unless given or left to ``--experiment``."""
    p = parser(description)
    args = p.parse_args(argv)
    args.peers = [n for n in args.peers.split(",") if n]
    unknown = sorted(set(args.peers) - set(_peers.PEERS))
    if unknown:
        p.error(f"--peers: unknown {unknown}; choose from {','.join(_peers.PEERS)}")
    absent = _peers.missing(args.peers)
    if absent:
        p.error(
            f"--peers {','.join(absent)}: not installed; they are the optional `bench` extra: "
            'pip install -e ".[bench]" (best in a separate virtualenv, e.g. .venv-bench)'
        )
    if not (args.out or args.write_long):
        p.error("--out DIR is required (or --write-long PATH alone)")
    if args.experiment and not (config_dir() / "experiment" / f"{args.experiment}.yaml").is_file():
        p.error(f"--experiment {args.experiment}: there is no configs/experiment/{args.experiment}.yaml")
    horizon, args.m = _m4.FREQUENCIES[args.freq]
    args.horizon = args.horizon or horizon
    if args.lookback is None and not args.experiment:
        args.lookback = DEFAULT_LOOKBACK[args.freq]
    if min(args.seeds, args.horizon, *([args.lookback] if args.lookback is not None else [])) < 1:
        p.error("--seeds, --lookback and --horizon must be >= 1")
    if args.quick:
        args.epochs, args.seeds = 1, 1
    return args


def given_keys(args: argparse.Namespace) -> dict[str, object]:
    """The product keys the model flags given set (``PRODUCT_FLAGS``), and ``--quick``'s batch limit."""
    given = {key: getattr(args, flag[2:].replace("-", "_")) for flag, (_, key) in PRODUCT_FLAGS.items()}
    given["trainer.limit_train_batches"] = 4 if args.quick else None
    return {k: v for k, v in given.items() if v is not None}
