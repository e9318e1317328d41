"""Rolling-origin backtest of ETTh1 S: the product's stage=backtest, per fold and across folds.

    python benchmarks/backtest.py --data /path/to/ETTh1.csv [--horizon 24] [--folds 4] [--step S]
        [--refit true|false] [--epochs N] [--quick]

One product backtest (``splineforecast.backtest.run``, in this process) with ``experiment=etth1_s``: fold ``k``
is a run on the rows before its cutoff, ``(folds - 1 - k) * step`` rows before the end of the file (``step``
defaults to the horizon), split TRAIN,VAL,TEST rows back from the cutoff (``--split``, default the ETTh
protocol's counts). Every number printed is read from the backtest's ``backtest.json``: per fold the MAE
and MASE of the model, naive and seasonal naive, then their mean ± (population) std across folds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as common
import _product

FORECASTERS = ("model", "naive", "seasonal_naive")
METRICS = ("mae", "mase")


def boolean(text: str) -> bool:
    """``true`` or ``false``, as the product's ``backtest.refit`` takes it."""
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"want true or false, got {text!r}")
    return text.lower() == "true"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = common.base_parser(__doc__.splitlines()[0], "backtest")
    p.add_argument("--horizon", type=int, default=24)
    p.add_argument("--folds", type=int, default=4, help="backtest.folds (default 4)")
    p.add_argument("--step", type=int, default=None, help="backtest.step: rows between origins (default: the horizon)")
    p.add_argument("--refit", type=boolean, default=True, help="backtest.refit: train every fold (default true)")
    p.add_argument("--epochs", type=int, default=None, help="trainer.max_epochs (default: experiment=etth1_s's)")
    p.add_argument("--runs", default=None, help="folder for the runs' artifacts and MLflow store (default: temporary)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 epoch of 3 batches per fold")
    return p.parse_args(argv)


def product_overrides(args: argparse.Namespace, root: Path) -> list[str]:
    """The command line of the backtest."""
    return [
        *_product.etth1_s(args.data, args.horizon, args.split, root, args.quick),
        *([f"trainer.max_epochs={args.epochs}"] if args.epochs is not None and not args.quick else []),
        "stage=backtest",
        "run_id=bench-backtest",
        "overwrite=true",  # --runs may hold an earlier backtest
        f"backtest.folds={args.folds}",
        f"backtest.step={'null' if args.step is None else args.step}",
        f"backtest.refit={str(args.refit).lower()}",
    ]


def run_backtest(args: argparse.Namespace, root: Path) -> tuple[dict[str, Any], float]:
    """Run the backtest; its backtest.json and the seconds it took."""
    from splineforecast import backtest, contracts

    overrides = product_overrides(args, root)
    cfg = _product.compose(overrides)
    checked = contracts.check(cfg)
    t0 = time.perf_counter()
    backtest.run(cfg, overrides, None, checked)
    seconds = time.perf_counter() - t0
    return json.loads(checked.paths.backtest_json.read_text()), seconds


def fold_lines(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One printed line per fold: its test part, epochs, and MAE/MASE of every forecaster."""
    lines = []
    for f in record["per_fold"]:
        line: dict[str, Any] = {
            "fold": f["fold"],
            "offset": f["offset"],
            "test": f"{f['test']['first'][:13]} .. {f['test']['last'][:13]}",
            "epochs": f["training"]["epochs"],
        }
        for name in FORECASTERS:
            line |= {f"{name}_{m}": f["scores"][name][m] for m in METRICS}
        lines.append(line)
    return lines


def aggregate_lines(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Mean ± std across folds of MAE and MASE, one line per forecaster."""
    agg = record["aggregate"]
    return [
        {"forecaster": name, **{m: f"{agg[name][m]['mean']:.4f} ± {agg[name][m]['std']:.4f}" for m in METRICS}}
        for name in FORECASTERS
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its tables and write its JSON."""
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        root = Path(args.runs) if args.runs else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        record, seconds = run_backtest(args, root)
    columns = ("fold", "offset", "test", "epochs", *(f"{n}_{m}" for n in FORECASTERS for m in METRICS))
    print(f"\nbacktest, ETTh1 S, horizon {args.horizon}: {record['folds']} folds, step {record['step']}, "
          f"refit {record['refit']} ({seconds:.0f} s)")  # fmt: skip
    print(common.table(fold_lines(record), columns))
    print("\nacross folds (mean ± population std)")
    print(common.table(aggregate_lines(record), ("forecaster", *METRICS)))
    rows = [{"fold": f["fold"], "offset": f["offset"], "test": f["test"], **f["scores"]} for f in record["per_fold"]]
    config = common.run_config(args)
    common.save_result(
        args.out, "backtest", config, seconds=seconds, rows=rows, aggregate=record["aggregate"], backtest=record
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
