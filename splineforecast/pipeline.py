"""The recipe of a run: preprocess -> train -> evaluate, recorded as one MLflow run.

Stages hand over through files: ``preprocess`` writes processed.npz, meta.json,
split_contract.json and the preprocessor; ``train`` reads them back.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from splineforecast import __version__, artifacts, serving
from splineforecast.artifacts import RunPaths, run_lock
from splineforecast.config import Config, flatten
from splineforecast.contracts import Checked, ProcessedInputs, RawInputs, check, check_processed
from splineforecast.data import io
from splineforecast.data.preprocess import Preprocessor
from splineforecast.data.processed import Processed, split_contract, write_processed
from splineforecast.evaluation import evaluate, predict, train_scale
from splineforecast.models.module import ForecastModule
from splineforecast.report import PLOT_NAME, plot_forecast, write_report
from splineforecast.tracking import Tracker, resolve_uri, tracked_run, ui_command
from splineforecast.training import GracefulStop, fit, interruptible
from splineforecast.windows import DataSpec, WindowDataModule


@dataclass
class RunResult:
    run_id: str
    mlflow_run_id: str
    tracking_uri: str
    ui_command: str
    ui_url: str
    result: dict[str, Any] | None  # the metrics.json content when the run trained


def preprocess(cfg: Config, paths: RunPaths, raw: RawInputs) -> None:
    """Fill and scale the checked table; write the processed artifacts of the run."""
    d, frame, freq, split, source = cfg.data, raw.frame, raw.freq, raw.split, raw.source
    covariates = [dataclasses.asdict(c) for c in raw.covariates]
    pre = Preprocessor(d.target, covariates, dataclasses.asdict(cfg.spline), freq, paths.run_id)
    out = pre.fit(frame, split).transform(frame, split)
    stamps = frame.index[: split.n_rows].as_unit("ns").asi8
    raw_target = pre.raw_target(frame, split)[:, None]
    processed = Processed(out.values, out.observed_mask, stamps, pre.feature_names, [pre.target_index], raw_target)
    meta = {
        "run_id": paths.run_id,
        "source": {"path": str(source), "sha256": io.sha256(source), "rows": raw.n_rows},
        "freq": freq,
        "data_checks": raw.notes,
        "feature_names": pre.feature_names,
        "target": d.target,
        "covariates": {
            "dynamic": [c["name"] for c in covariates if c["role"] == "dynamic"],
            "static": [c["name"] for c in covariates if c["role"] == "static"],
            "types": {c["name"]: c["type"] for c in covariates},
            "spec": cfg.covariate.spec,
        },
        "spline": dataclasses.asdict(cfg.spline),
        "scaler": {"kind": "standard", "fitted_on": "train"},
        "n_imputed": out.n_imputed,
        "n_unfilled": {n: int(np.isnan(out.values[:, i]).sum()) for i, n in enumerate(pre.feature_names)},
        "versions": _versions(),
    }
    write_processed(paths.processed_npz, processed)
    artifacts.write_json(paths.meta_json, meta)
    artifacts.write_json(paths.split_contract_json, split_contract(paths.run_id, split, stamps, d.lookback, d.horizon))
    artifacts.write_json(paths.preprocessor_json, pre.to_json())


def _versions() -> dict[str, str]:
    return {
        "splineforecast": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "pytorch_lightning": pl.__version__,
    }


def train(
    cfg: Config, paths: RunPaths, tracker: Tracker, inputs: ProcessedInputs, stop: GracefulStop
) -> dict[str, Any]:
    """Train on checked processed artifacts; evaluate the best checkpoint on test; write metrics, report."""
    processed, split = inputs.processed, inputs.split
    pre = Preprocessor.from_json(inputs.preprocessor)
    d = cfg.data
    spec = DataSpec(len(processed.feature_names), d.lookback, d.horizon, tuple(processed.target_indices))
    data = WindowDataModule(processed.values, processed.observed_mask, split, spec, d.stride, d.batch_size, cfg.seed)

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module = ForecastModule(dataclasses.asdict(cfg.model), dataclasses.asdict(spec))
    resume = stop.last_ckpt.is_file()  # an unfinished run of this run_id (a finished one was refused)
    if resume:
        print(f"resuming run_id {paths.run_id} from {stop.last_ckpt}", flush=True)
    trained = fit(module, data, cfg.trainer, paths.checkpoints_dir, [tracker.epoch_callback()], stop, resume)
    state = torch.load(trained.best_ckpt, map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])

    t = spec.target_indices[0]
    series = pre.inverse_target(processed.values[:, t].astype(np.float64))  # what the model saw
    observed = processed.observed_mask[:, t]
    # the truth: raw observations (smoothing may have changed `series` at observed points)
    actual = processed.targets_raw[:, 0] if processed.targets_raw is not None else series
    test = data.datasets["test"]
    starts = test.starts.numpy()
    forecast = pre.inverse_target(predict(module.net, test)[:, :, 0].astype(np.float64))
    a, b = split.train
    scale = train_scale(actual[a:b], observed[a:b], d.season_length)
    result = evaluate(forecast, series, observed, starts, d.lookback, d.season_length, scale, actual)
    result = {
        "run_id": paths.run_id,
        **result,
        "training": {"epochs": trained.epochs, "best_val_loss": trained.best_val_loss},
        "windows": {k: len(v) for k, v in data.datasets.items()},
        "windows_dropped": data.n_dropped,
    }
    artifacts.write_json(paths.metrics_json, result)

    timestamps = processed.timestamps.astype("datetime64[ns]")
    origins = starts + d.lookback
    plot_forecast(
        paths.report_dir / PLOT_NAME,
        timestamps,
        actual,
        observed,
        origins,
        forecast,
        f"{cfg.model.name.upper()} on {d.name} ({d.target}), test part",
    )
    summary = {
        "data": f"{d.name} (`{d.target}`, {len(series)} rows, freq {pre.freq})",
        "model": f"{cfg.model.name}, hidden {cfg.model.hidden_size} x {cfg.model.num_layers} layers, "
        f"norm {cfg.model.norm}, skip {cfg.model.skip}",
        "windows": f"lookback {d.lookback}, horizon {d.horizon}; "
        + ", ".join(f"{k} {v}" for k, v in result["windows"].items()),
        "spline": f"{cfg.spline.kind} (max_gap {cfg.spline.max_gap})",
        "training": f"{trained.epochs} epochs, best val/loss {trained.best_val_loss:.4g}",
    }
    write_report(paths.report_dir / "report.md", paths.run_id, summary, result)
    return result


def _write_config(cfg: Config, overrides: list[str], paths: RunPaths) -> None:
    resolved = OmegaConf.to_yaml(OmegaConf.structured(cfg))
    artifacts.write_bytes(paths.config_dir / "config.yaml", resolved.encode())
    artifacts.write_bytes(
        paths.config_dir / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(overrides))).encode()
    )


def _log_outputs(tracker: Tracker, paths: RunPaths, result: dict[str, Any] | None) -> None:
    tracker.log_artifacts(paths.config_dir, "config")
    if paths.processed_dir.is_dir():  # also after stage=train, so an overwritten run stays complete
        tracker.log_artifacts(paths.processed_dir, "processed")
        tracker.log_artifacts(paths.preprocessor_dir, "preprocessor")
    if result is not None:
        tracker.log_artifacts(paths.checkpoints_dir, "checkpoints")
        tracker.log_artifacts(paths.metrics_json)
        tracker.log_artifacts(paths.report_dir)
        metrics = dict(result["metrics"])
        for name, scores in result["baselines"].items():
            metrics.update({f"{name}/{k}": v for k, v in scores.items()})
        tracker.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        serving.log_model(tracker, paths)  # the pyfunc model `model`: runs:/<id>/model


# per-invocation settings, not properties of the experiment
_NOT_PARAMS = {"stage", "overwrite", "data.processed", "trainer.enable_progress_bar", "predict.output"}


def run(
    cfg: Config, overrides: list[str], tags: dict[str, str] | None = None, checked: Checked | None = None
) -> RunResult:
    """Run ``cfg.stage`` for ``cfg.run_id`` (which must be set) as one MLflow run.

    Args:
        cfg: the composed config.
        overrides: the command-line overrides, saved with the config.
        tags: extra MLflow tags (e.g. the sweep a job belongs to).
        checked: the result of ``contracts.check(cfg)`` when the caller ran it already.
    """
    checked = checked or check(cfg)
    paths = checked.paths
    if cfg.stage == "predict":  # reads the trained run's local files; creates no MLflow run
        written = serving.write_forecast(paths, cfg.data, cfg.predict.output)
        print("\n".join(f"forecast:      {p}" for p in written), flush=True)
        return RunResult(paths.run_id, "", cfg.tracking.uri, ui_command(cfg.tracking.uri), "", None)
    stop = GracefulStop(paths.checkpoints_dir / "last.ckpt")
    with interruptible(stop), run_lock(paths):
        uri = resolve_uri(cfg.tracking.uri)
        tracker = Tracker(uri, cfg.tracking.experiment, paths.run_id, tags)
        params = flatten(dataclasses.asdict(cfg))
        tracker.claim(cfg.stage, cfg.overwrite, {k: str(v) for k, v in params.items() if k not in _NOT_PARAMS})
        if cfg.overwrite and cfg.stage in ("all", "train"):
            shutil.rmtree(paths.checkpoints_dir, ignore_errors=True)  # never resume a replaced run
        result = None
        with tracked_run(tracker):
            _write_config(cfg, overrides, paths)
            if checked.raw is not None:
                preprocess(cfg, paths, checked.raw)
            if cfg.stage in ("all", "train"):
                inputs = checked.processed or check_processed(cfg, paths, paths.processed_npz)
                result = train(cfg, paths, tracker, inputs, stop)
            _log_outputs(tracker, paths, result)
            tracker.mark_done(cfg.stage)
    return RunResult(paths.run_id, tracker.mlflow_run_id, uri, ui_command(uri), tracker.ui_url, result)
