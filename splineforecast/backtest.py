"""stage=backtest: rolling-origin folds, each an ordinary run nested under one parent MLflow run.

Fold ``k`` (see :mod:`splineforecast.folds`) is the run ``<run_id>-fold<k>`` of the rows before its cutoff:
its own split contract, preprocessor, checkpoints and metrics, as ``stage=all`` makes them, tagged
``mlflow.parentRunId`` with the parent. The parent run (``<run_id>``) holds the config, ``backtest.json``
(every fold's scores and their mean and std) and a report plotting the metric per fold. A fold whose run
finished is read back, never trained again, so a killed backtest resumes at its first unfinished fold.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from splineforecast import pipeline
from splineforecast.artifacts import RunPaths, run_lock
from splineforecast.config import Config
from splineforecast.contracts import Checked, RawInputs
from splineforecast.evaluation import METRICS
from splineforecast.files import write_bytes, write_json
from splineforecast.folds import Fold, fold_run_id, step_of
from splineforecast.records import EvalResult
from splineforecast.report import plot_folds
from splineforecast.tracking import (
    BACKTEST_TAG,
    FOLD_TAG,
    PARENT_RUN_TAG,
    SWEEP_TAG,
    Tracker,
    resolve_uri,
    tracked_run,
    ui_command,
)
from splineforecast.training import GracefulStop, interruptible

SUMMARY = ("mae", "rmse", "mase")  # the columns of the printed and reported tables
PLOTTED = "mae"  # the metric backtest.png shows per fold


@dataclass(frozen=True)
class FoldOutcome:
    """A fold's run and its scores; ``trained``: whether this command ran it (false: read back);
    ``model_from``: the run_id whose preprocessor and network it forecast with."""

    fold: Fold
    mlflow_run_id: str
    result: EvalResult
    trained: bool
    model_from: str


def fold_scores(result: EvalResult) -> dict[str, dict[str, float]]:
    """The model's and each baseline's test scores of a fold (a panel's: means over series, with sMAPE)."""
    out = {"model": dict(result.metrics), **{n: dict(s) for n, s in result.baselines.items()}}
    if result.panel is not None:
        for name, means in result.panel.mean.items():
            out.setdefault(name, {})["smape"] = float(means["smape"])
    return out


def aggregate(per_fold: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and (population) std across folds of every score of every forecaster."""
    return {
        name: {
            metric: {
                "mean": float(np.mean(values := [f[name][metric] for f in per_fold])),
                "std": float(np.std(values)),
            }
            for metric in scores
        }
        for name, scores in per_fold[0].items()
    }


@dataclass(frozen=True)
class BacktestRecord:
    """backtest.json: the settings, every fold's run and scores, and their aggregate."""

    SCHEMA: ClassVar[str] = "splineforecast.backtest.v1"

    run_id: str
    folds: int
    step: int
    refit: bool
    per_fold: list[dict[str, Any]]
    aggregate: dict[str, dict[str, dict[str, float]]]

    @classmethod
    def of(cls, cfg: Config, outcomes: list[FoldOutcome]) -> BacktestRecord:
        rows = [_fold_row(o) for o in outcomes]
        b = cfg.backtest
        return cls(str(cfg.run_id), b.folds, step_of(cfg), b.refit, rows, aggregate([r["scores"] for r in rows]))

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": self.SCHEMA, **dataclasses.asdict(self)}

    def mlflow_metrics(self) -> dict[int, dict[str, float]]:
        """The finite MLflow metrics by step: ``backtest/mae_mean``, ``backtest/mae_std``,
        ``backtest/naive/mae_mean``, ... at step 0, and each fold's ``backtest/mae``, ... at step = fold."""
        out: dict[int, dict[str, float]] = {r["fold"]: {} for r in self.per_fold}
        for name, scores in self.aggregate.items():
            prefix = "backtest/" if name == "model" else f"backtest/{name}/"
            for metric, stat in scores.items():
                out[0].update({f"{prefix}{metric}_mean": stat["mean"], f"{prefix}{metric}_std": stat["std"]})
                for r in self.per_fold:
                    out[r["fold"]][f"{prefix}{metric}"] = r["scores"][name][metric]
        return {step: {k: float(v) for k, v in m.items() if math.isfinite(v)} for step, m in out.items()}


def _fold_row(o: FoldOutcome) -> dict[str, Any]:
    row: dict[str, Any] = {
        "fold": o.fold.k,
        "run_id": o.fold.run_id,
        "mlflow_run_id": o.mlflow_run_id,
        "offset": o.fold.offset,
        "model_from": o.model_from,
    }
    if isinstance(o.fold.raw, RawInputs):  # one series: where its test part lies
        index, (a, b) = o.fold.raw.frame.index, o.fold.raw.split.test
        row["test"] = {"first": str(index[a]), "last": str(index[b - 1])}
    else:
        row["n_series"] = len(o.fold.raw.table.series)
    training = dataclasses.asdict(o.result.training)
    return {**row, "n_points": o.result.scores.n_points, "training": training, "scores": fold_scores(o.result)}


def _params(cfg: Config) -> dict[str, str]:
    from splineforecast.config import flatten

    params = flatten(dataclasses.asdict(cfg))
    return {k: str(v) for k, v in params.items() if k not in pipeline._NOT_PARAMS}


def run(cfg: Config, overrides: list[str], tags: dict[str, str] | None, checked: Checked) -> pipeline.RunResult:
    """Run every fold of ``checked.folds`` (those not finished before), then record the aggregate on the
    parent run ``cfg.run_id``.

    Raises:
        ContractError: RUN_CONFLICT when the backtest finished before (without overwrite=true), when
            another process holds its run_id, or when the config differs from the recorded one.
        Interrupted: SIGINT/SIGTERM; the fold in training saved its last.ckpt, parent and fold are KILLED.
    """
    assert checked.folds is not None
    paths = checked.paths
    stop = GracefulStop(paths.last_ckpt)  # the parent trains nothing: a signal between folds stops at once
    with interruptible(stop), run_lock(paths):
        uri = resolve_uri(cfg.tracking.uri)
        parent = Tracker(uri, cfg.tracking.experiment, paths.run_id, tags)
        parent.claim("backtest", cfg.overwrite, _params(cfg))
        with tracked_run(parent):
            pipeline._write_config(cfg, overrides, paths)
            outcomes = [_run_fold(cfg, overrides, tags or {}, parent, paths.root, fold) for fold in checked.folds]
            record = BacktestRecord.of(cfg, outcomes)
            _write_outputs(cfg, paths, record)
            for step, metrics in record.mlflow_metrics().items():
                parent.log_metrics(metrics, step)
            for local, artifact_path in [(paths.config_dir, "config"), (paths.backtest_json, None)]:
                parent.log_artifacts(local, artifact_path)
            parent.log_artifacts(paths.report_dir)
            parent.mark_done("backtest")
    print(render_table(record), flush=True)
    return pipeline.RunResult(paths.run_id, parent.mlflow_run_id, uri, ui_command(uri), parent.ui_url, None)


def _run_fold(
    cfg: Config, overrides: list[str], tags: dict[str, str], parent: Tracker, root: Path, fold: Fold
) -> FoldOutcome:
    """Fold ``fold`` as an ordinary stage=all run nested under ``parent``; a finished one is read back."""
    paths = RunPaths(root, fold.run_id)
    found = Tracker(parent.uri, cfg.tracking.experiment, fold.run_id).recorded()
    n, by = cfg.backtest.folds, trained_by(cfg, root, fold)
    model_from = fold.run_id if by is None else by.run_id
    if found is not None and {"preprocess", "train"} <= found[1] and not cfg.overwrite:
        print(f"backtest fold {fold.k}/{n}: finished before ({fold.run_id}), not trained again", flush=True)
        return FoldOutcome(fold, found[0], paths.read_eval(), False, model_from)
    fold_tags = {k: v for k, v in tags.items() if k != SWEEP_TAG}  # the fold's parent is the backtest
    fold_tags.update({PARENT_RUN_TAG: parent.mlflow_run_id, BACKTEST_TAG: str(cfg.run_id), FOLD_TAG: str(fold.k)})
    fold_cfg = dataclasses.replace(cfg, run_id=fold.run_id, stage="all")
    done = pipeline.run(fold_cfg, overrides, fold_tags, Checked(paths, raw=fold.raw), by)
    assert done.result is not None
    mae = done.result.metrics["mae"]
    print(f"backtest fold {fold.k}/{n} done: {fold.run_id}, test mae {mae:.4g}", flush=True)
    return FoldOutcome(fold, done.mlflow_run_id, done.result, True, model_from)


def trained_by(cfg: Config, root: Path, fold: Fold) -> RunPaths | None:
    """The run whose preprocessor and network fold ``fold`` uses: its own (None), or with
    backtest.refit=false fold 0's for every later fold."""
    if cfg.backtest.refit or fold.k == 0:
        return None
    return RunPaths(root, fold_run_id(str(cfg.run_id), 0))


def _write_outputs(cfg: Config, paths: RunPaths, record: BacktestRecord) -> None:
    """backtest.json, and report.md with the per-fold table and backtest.png (the metric per fold)."""
    write_json(paths.backtest_json, record.to_json())
    names = list(record.aggregate)
    values = {name: [r["scores"][name][PLOTTED] for r in record.per_fold] for name in names}
    title = f"{cfg.model.name.upper()} on {cfg.data.name}: test {PLOTTED} per fold"
    write_bytes(paths.backtest_png, plot_folds(values, PLOTTED, title))
    write_bytes(paths.report_md, render_report(record, paths.backtest_png.name).encode())


def render_report(record: BacktestRecord, plot_name: str) -> str:
    """report.md of the parent run: settings, the scores of every fold, their mean and std, the plot."""
    metrics = [m for m in METRICS if m in record.aggregate["model"]]
    head = "| fold | run_id | forecaster | " + " | ".join(metrics) + " |\n|---|---|---|" + "---|" * len(metrics)
    rows = [
        f"| {r['fold']} | `{r['run_id']}` | {name} | " + " | ".join(f"{s[m]:.4g}" for m in metrics) + " |"
        for r in record.per_fold
        for name, s in r["scores"].items()
    ]
    agg = [
        f"| {name} | " + " | ".join(f"{s[m]['mean']:.4g} ± {s[m]['std']:.3g}" for m in metrics) + " |"
        for name, s in record.aggregate.items()
    ]
    return (
        f"# Backtest `{record.run_id}`\n\n"
        f"- **folds**: {record.folds}, {record.step} rows between origins, refit {str(record.refit).lower()}\n\n"
        "## Mean ± std across folds (test part of each fold, original units)\n\n"
        f"| forecaster | {' | '.join(metrics)} |\n|---|" + "---|" * len(metrics) + "\n" + "\n".join(agg) + "\n\n"
        "## Per fold\n\n" + head + "\n" + "\n".join(rows) + "\n\n"
        f"![{PLOTTED} per fold]({plot_name})\n"
    )


def render_table(record: BacktestRecord) -> str:
    """The summary the command prints: mean ± std of the SUMMARY metrics across folds."""
    lines = ["", f"{f'backtest, {record.folds} folds':<24}" + "".join(f"{m:>20}" for m in SUMMARY)]
    for name, s in record.aggregate.items():
        cells = ["{:.4g} ± {:.2g}".format(s[m]["mean"], s[m]["std"]) for m in SUMMARY]
        lines.append(f"{name:<24}" + "".join(f"{c:>20}" for c in cells))
    return "\n".join(lines)
