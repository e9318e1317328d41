"""Faults, for real: what the CLI does when the tracking server dies, the disk fills, a checkpoint is cut
short, eight sweep jobs share a fresh store, or the process is killed while it logs to MLflow.

    python benchmarks/faults.py [--only NAME,...] [--sweep-jobs 8] [--out PATH] [--keep DIR]

Every fault runs the real CLI (``data=tiny trainer=smoke``) in a folder of its own and is followed by a
rerun of the same command. The table shows, per fault: the exit code and message expected and observed,
whether the files written before the fault are intact (and no half file is left), and what the rerun did.
The full disk is a small tmpfs mounted as ``paths.artifacts`` when the machine allows mounting, else
ENOSPC injected at the write (the ``how`` of the row says which). Faults: server-killed,
disk-full-processed, disk-full-checkpoint, truncated-last-ckpt, sweep-parallel, sigkill-logging.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import _common as common
from _faults import (
    FAST,
    MLFLOW_ARTIFACTS,
    TRAINED,
    Cli,
    MlflowServer,
    artifact_names,
    excerpt,
    grow,
    intact,
    message,
    migrated_store,
    runs,
    temp_files,
    tmpfs,
    wait_for,
)

COLUMNS = ("fault", "expected", "exit", "message", "intact", "rerun", "seconds")
LONGER = ("trainer.max_epochs=30", "trainer.patience=30", "trainer.limit_train_batches=4")  # a window to kill in
EARLIER = {  # what was written before the full write, per file that fills the disk
    "processed.npz": ("config_yaml", "overrides_yaml"),
    "best.ckpt": ("config_yaml", "processed_npz", "meta_json", "split_contract_json", "preprocessor_json"),
}
SIZES = {"processed.npz": "12k", "best.ckpt": "256k"}  # tmpfs sizes: the config fits, processed.npz not; ...


def _rerun(cli: Cli, run_id: str, before: str, *overrides: str) -> dict[str, Any]:
    """Run the same command again; whether it finished the same MLflow run (``before``) and nothing else."""
    t0 = time.monotonic()
    again = cli(*overrides)
    found = runs(cli.store, run_id)
    same = [r.info.run_id for r in found] == [before] and bool(before)
    status = found[0].info.status if len(found) == 1 else f"{len(found)} runs"
    names = artifact_names(cli.store, found[0].info.run_id) if len(found) == 1 else set()
    ok = again.returncode == 0 and same and status == "FINISHED" and MLFLOW_ARTIFACTS <= names
    text = f"exit {again.returncode}, {'same' if same else 'NOT the same'} MLflow run, {status}"
    return {
        "rerun": text + ("" if MLFLOW_ARTIFACTS <= names else f", missing {sorted(MLFLOW_ARTIFACTS - names)}"),
        "rerun_ok": ok,
        "rerun_exit": again.returncode,
        "rerun_message": message(again.stderr),
        "rerun_seconds": round(time.monotonic() - t0, 1),
    }


def _mlflow_id(cli: Cli, run_id: str) -> str:
    found = runs(cli.store, run_id)
    return found[0].info.run_id if len(found) == 1 else ""


def server_killed(root: Path, seed: Path | None = None) -> dict[str, Any]:
    """SIGKILL the tracking server once the first epoch is checkpointed; start it again and rerun."""
    server = MlflowServer(root / "server", seed)
    server.start()
    cli = Cli(root / "run", store=server.url)
    overrides = (*FAST, *LONGER, "run_id=srv")
    try:
        proc = cli.start(*overrides)
        paths = cli.paths("srv")
        in_training = wait_for(paths.last_ckpt.is_file, proc, 300, 0.02)
        server.kill()
        killed = time.monotonic()
        _, stderr = proc.communicate(timeout=600)
        seconds = time.monotonic() - killed
        broken = intact(paths, TRAINED)
        server.start()
        row = {
            "exit": proc.returncode,
            "message": message(stderr),
            "killed_in_training": in_training,
            "seconds_to_exit": round(seconds, 1),
            "broken": broken,
            "intact": not broken and not temp_files(cli.artifacts),
            **_rerun(cli, "srv", _mlflow_id(cli, "srv"), *overrides),
        }
    finally:
        server.kill()
    row["seconds"] = row["seconds_to_exit"]
    row["ok"] = row["exit"] == 24 and "tracking store unreachable" in row["message"] and row["intact"]
    return row


def disk_full(root: Path, seed: Path | None = None, at: str = "processed.npz", rerun: bool = True) -> dict[str, Any]:
    """No space left at the write of ``at`` (``processed.npz`` or ``best.ckpt``); free some and rerun."""
    cli = Cli(root, seed=seed)
    run_id = "full-" + at.split(".")[0]
    with tmpfs(cli.artifacts, SIZES[at]) as real:
        t0 = time.monotonic()
        done = cli(*FAST, f"run_id={run_id}", inject=None if real else at)
        paths = cli.paths(run_id)
        target = paths.processed_npz if at == "processed.npz" else paths.best_ckpt
        row: dict[str, Any] = {
            "how": f"tmpfs size={SIZES[at]}" if real else "ENOSPC injected at the write",
            "exit": done.returncode,
            "message": message(done.stderr),
            "seconds": round(time.monotonic() - t0, 1),
            "temp_files": temp_files(cli.artifacts),
            "target_written": target.exists() or paths.last_ckpt.exists(),
            "broken": intact(paths, EARLIER[at]),
        }
        found = runs(cli.store, run_id)
        row["status"] = found[0].info.status if len(found) == 1 else f"{len(found)} runs"
        row["intact"] = not row["broken"] and not row["temp_files"] and not row["target_written"]
        if rerun:
            if real:
                grow(cli.artifacts, "256m")
            row.update(_rerun(cli, run_id, _mlflow_id(cli, run_id), *FAST, f"run_id={run_id}"))
    row["ok"] = row["exit"] == 24 and "disk full" in row["message"] and at in row["message"] and row["intact"]
    return row


def truncated_last_ckpt(root: Path, seed: Path | None = None) -> dict[str, Any]:
    """SIGKILL a run after its first epoch, cut its last.ckpt in half, rerun; then apply the fix it names."""
    cli = Cli(root, seed=seed)
    overrides = (*FAST, *LONGER, "run_id=cut")
    paths = cli.paths("cut")
    proc = cli.start(*overrides)
    wait_for(paths.last_ckpt.is_file, proc, 300, 0.02)
    proc.kill()
    proc.communicate(timeout=60)
    size = paths.last_ckpt.stat().st_size
    with paths.last_ckpt.open("r+b") as fh:
        fh.truncate(size // 2)
    t0 = time.monotonic()
    done = cli(*overrides)
    text = message(done.stderr)
    row: dict[str, Any] = {
        "exit": done.returncode,
        "message": text,
        "seconds": round(time.monotonic() - t0, 1),
        "truncated_kept": paths.last_ckpt.stat().st_size == size // 2,  # left for the user, not replaced
        "broken": intact(paths, EARLIER["best.ckpt"]),
    }
    row["intact"] = not row["broken"] and row["truncated_kept"]
    if "overwrite=true" in text and "Delete it" not in text:
        row["fix"], again = "overwrite=true", (*overrides, "overwrite=true")
    else:
        row["fix"], again = "deleted last.ckpt", overrides
        paths.last_ckpt.unlink()
    before = _mlflow_id(cli, "cut") if row["fix"] != "overwrite=true" else ""
    row.update(_rerun(cli, "cut", before, *again))
    if row["fix"] == "overwrite=true":  # a replaced run is a new MLflow run by design
        row["rerun"] = f"{row['rerun']} (after {row['fix']})".replace("NOT the same", "a new")
        row["rerun_ok"] = row["rerun_exit"] == 0
    else:
        row["rerun"] = f"{row['rerun']} (after {row['fix']})"
    row["ok"] = row["exit"] == 22 and "last.ckpt" in text and row["intact"]
    return row


def sweep_parallel(root: Path, seed: Path | None = None, jobs: int = 8) -> dict[str, Any]:
    """``jobs`` sweep jobs at once (joblib) on one fresh sqlite store (``seed`` is not used): every job a FINISHED
    run, no lock error."""
    cli = Cli(root)
    seeds = ",".join(str(i) for i in range(jobs))
    launcher = ("hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}", f"hydra.sweep.dir={root}/multirun")
    t0 = time.monotonic()
    done = cli("-m", *launcher, *FAST, "run_id=sw", f"seed={seeds}")
    seconds = time.monotonic() - t0
    found = [r for i in range(jobs) for r in runs(cli.store, f"sw-{i}")]
    finished = sum(r.info.status == "FINISHED" for r in found)
    locked = "locked" in done.stderr
    row = {
        "exit": done.returncode,
        "message": message(done.stderr) or ("'database is locked' on stderr" if locked else ""),
        "seconds": round(seconds, 1),
        "jobs": jobs,
        "runs_finished": finished,
        "runs_recorded": len(found),
        "lock_error": locked,
        "intact": len(found) == jobs and finished == jobs,
        "rerun": f"{finished}/{jobs} runs FINISHED" + (", a lock error" if locked else ", no lock error"),
    }
    row["rerun_ok"] = row["ok"] = done.returncode == 0 and row["intact"] and not locked
    return row


def _logged(root: Path) -> list[str]:
    """The names in the MLflow artifact folder of the runs of the sqlite store in ``root`` (``<run>/artifacts``)."""
    return sorted(p.name for p in (root / "mlruns" / "artifacts").glob("*/artifacts/*"))


def _whole_copies(root: Path, paths: Any) -> bool:
    """Whether the checkpoints and processed.npz in the MLflow artifact store equal the run's local files."""
    logged = list((root / "mlruns" / "artifacts").glob("*/artifacts"))
    pairs = [(paths.best_ckpt, "checkpoints/best.ckpt"), (paths.last_ckpt, "checkpoints/last.ckpt")]
    pairs.append((paths.processed_npz, "processed/processed.npz"))
    return len(logged) == 1 and all((logged[0] / name).read_bytes() == local.read_bytes() for local, name in pairs)


def sigkill_logging(root: Path, seed: Path | None = None) -> dict[str, Any]:
    """SIGKILL the CLI the moment its first file lands in the MLflow artifact store; rerun."""
    cli = Cli(root, seed=seed)
    overrides = (*FAST, "run_id=logk")
    proc = cli.start(*overrides)
    logging = wait_for(lambda: bool(_logged(root)), proc, 300, 0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    logged = _logged(root)
    found = runs(cli.store, "logk")
    row: dict[str, Any] = {
        "exit": proc.returncode,
        "message": f"killed with {len(logged)} of the run's artifacts logged: {', '.join(logged)}",
        "killed_while_logging": logging and "model" not in logged,
        "status_after_kill": found[0].info.status if len(found) == 1 else f"{len(found)} runs",
        "broken": intact(cli.paths("logk"), TRAINED),
        "seconds": 0.0,
    }
    row["intact"] = not row["broken"] and not temp_files(cli.artifacts)
    row.update(_rerun(cli, "logk", _mlflow_id(cli, "logk"), *overrides))
    row["store_copies_whole"] = _whole_copies(root, cli.paths("logk"))
    if not row["store_copies_whole"]:
        row["rerun"], row["rerun_ok"] = row["rerun"] + ", a logged file differs from the run's", False
    row["seconds"] = row["rerun_seconds"]
    row["ok"] = row["exit"] == -signal.SIGKILL and row["killed_while_logging"] and row["intact"]
    return row


FAULTS: dict[str, tuple[str, Callable[..., dict[str, Any]]]] = {
    "server-killed": ("24 store unreachable; local files complete; rerun: same run", server_killed),
    "disk-full-processed": (
        "24 disk full at processed.npz; no half file",
        partial(disk_full, at="processed.npz"),
    ),
    "disk-full-checkpoint": (
        "24 disk full at best.ckpt; earlier files intact",
        partial(disk_full, at="best.ckpt"),
    ),
    "truncated-last-ckpt": ("22 naming last.ckpt and the fix", truncated_last_ckpt),
    "sweep-parallel": ("0; every job recorded, no lock error", sweep_parallel),
    "sigkill-logging": ("-9; rerun completes the same run", sigkill_logging),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help=f"comma-separated faults (default all: {', '.join(FAULTS)})")
    p.add_argument("--sweep-jobs", type=int, default=8, help="parallel sweep jobs (default 8)")
    p.add_argument("--out", default=str(common.RESULTS / "faults.json"), help="the JSON written (default %(default)s)")
    p.add_argument("--keep", default=None, help="run in this folder and keep it (default: a temp folder)")
    args = p.parse_args(argv)
    args.only = [f for f in args.only.split(",") if f] or list(FAULTS)
    unknown = sorted(set(args.only) - set(FAULTS))
    if unknown:
        p.error(f"unknown faults {unknown}; choose from {', '.join(FAULTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        seed = migrated_store(base / "template")
        for name in args.only:
            expected, scenario = FAULTS[name]
            print(f"... {name}", file=sys.stderr, flush=True)
            kw = {"jobs": args.sweep_jobs} if name == "sweep-parallel" else {}
            row = {"fault": name, "expected": expected, **scenario(base / name, seed, **kw)}
            rows.append(row)
    # the work folder left out of the messages shown, so that what follows it fits
    shown = [
        {**r, "message": excerpt(r["message"].replace(f"{base}/", "")), "intact": "yes" if r["intact"] else "NO"}
        for r in rows
    ]
    print(common.table(shown, COLUMNS))
    common.save_result(args.out, "faults", {k: v for k, v in vars(args).items() if k != "out"}, rows=rows)
    return 0 if all(r["ok"] and r.get("rerun_ok", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
