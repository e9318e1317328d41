"""Start-up cost: time to a contract error and to the first training step, beside importing pytorch_lightning.

    python benchmarks/startup.py --data /path/to/ETTh1.csv [--repeats 5]

Each measurement is a fresh subprocess (wall time from launch to exit; median of ``--repeats``, after one
uncounted warm-up that fills the file cache and creates the MLflow store):

* ``import pytorch_lightning``: ``python -c "import pytorch_lightning"``;
* ``contract error``: ``python -m splineforecast data.lookback=0``, which must be refused (exit 25);
* ``first training step``: ``python -m splineforecast data=etth1 data.path=DATA ...`` (OT only, the split of
  ``--split``, the smoke trainer) run through a driver that exits the moment ForecastModule.training_step is
  first called: reading and checking the CSV, preprocessing, writing the processed artifacts, opening the
  MLflow run in a temporary sqlite store and building the Trainer are all inside.
* ``python -c pass``: the interpreter alone, for reference.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as common

# a driver that runs the real CLI and leaves at the first training step
FIRST_STEP = """
import os, sys
from splineforecast.models import module

def _first_step(self, batch, batch_idx):
    print("FIRST_TRAINING_STEP", flush=True)
    os._exit(0)

module.ForecastModule.training_step = _first_step
from splineforecast.__main__ import main
sys.argv = ["splineforecast", *sys.argv[1:]]
sys.exit(main())
"""


def parse_args(argv: list[str] | None = None) -> Any:
    """The options; --quick runs each command once, without a warm-up."""
    p = common.base_parser(__doc__.splitlines()[0], "startup")
    p.add_argument("--repeats", type=int, default=5, help="counted runs of each command (default 5)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 run of each, no warm-up")
    args = p.parse_args(argv)
    args.warmup = 0 if args.quick else 1
    if args.quick:
        args.repeats = 1
    return args


def timed(cmd: list[str], cwd: Path) -> tuple[float, int, str]:
    """Wall time, exit code and output of one subprocess, warnings silenced so that output is the command's own."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return time.perf_counter() - t0, proc.returncode, proc.stdout + proc.stderr


def commands(data: str, split: tuple[int, int, int], tmp: Path) -> dict[str, tuple[list[str], int, str | None]]:
    """Each measured command: its argv, the exit code it must give, and a marker its output must hold."""
    train, val, test = split
    py = sys.executable
    run_args = [
        "data=etth1", f"data.path={data}", f"data.split.train={train}", f"data.split.val={val}",
        f"data.split.test={test}", "trainer=smoke", f"paths.artifacts={tmp / 'artifacts'}",
        f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}", f"hydra.run.dir={tmp / 'outputs'}",
    ]  # fmt: skip
    return {
        "python -c pass": ([py, "-c", "pass"], 0, None),
        "import pytorch_lightning": ([py, "-c", "import pytorch_lightning"], 0, None),
        "contract error (data.lookback=0)": ([py, "-m", "splineforecast", "data.lookback=0"], 25, None),
        "first training step": ([py, "-c", FIRST_STEP, *run_args], 0, "FIRST_TRAINING_STEP"),
    }


def time_command(name: str, command: tuple[list[str], int, str | None], args: Any, tmp: Path) -> dict[str, Any] | None:
    """The row of one command over its runs; None (the output on stderr) when a run exits or prints wrongly."""
    cmd, want_rc, marker = command
    times = []
    for i in range(args.repeats + args.warmup):  # the first is an uncounted warm-up (not with --quick)
        # each training run under its own id: all runs share one artifact folder and MLflow store
        extra = [f"run_id=startup-{i}"] if marker else []
        seconds, rc, output = timed(cmd + extra, tmp)
        if rc != want_rc or (marker and marker not in output):
            print(f"{name}: exit {rc}, wanted {want_rc}\n{output[-2000:]}", file=sys.stderr)
            return None
        if i >= args.warmup:
            times.append(seconds)
    return {"what": name, "exit": want_rc, "runs": len(times), **common.time_summary(times)}


def time_commands(args: Any, data: str) -> list[dict[str, Any]] | None:
    """Every command's row, run in one temporary folder; None when one fails."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp_dir:
        tmp = Path(tmp_dir)
        for name, command in commands(data, args.split, tmp).items():
            row = time_command(name, command, args, tmp)
            if row is None:
                return None
            rows.append(row)
            print(f"  {name}: median {row['median_s']:.2f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Time every command, print the table and write the JSON; exit 1 when a command misbehaves."""
    args = parse_args(argv)
    data = str(Path(args.data).resolve())
    rows = time_commands(args, data)
    if rows is None:
        return 1
    lightning = next(r["median_s"] for r in rows if r["what"] == "import pytorch_lightning")
    for r in rows:
        r["x_lightning_import"] = r["median_s"] / lightning
    print(f"\nstartup (subprocess wall time, median of {args.repeats} after {args.warmup} warm-up)")
    print(common.table(rows, ("what", "exit", "runs", "median_s", "min_s", "max_s", "x_lightning_import")))
    config = {"repeats": args.repeats, "warmup": args.warmup, "split": list(args.split), "data": data}
    common.save_result(args.out, "startup", config, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
