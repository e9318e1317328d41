"""The recipe of a run: preprocess -> train -> evaluate, recorded as one MLflow run; and stage=predict.

Stages hand over through files (the artifact layer, :mod:`splineforecast.artifacts`): ``preprocess``
writes processed.npz, meta.json, the split contract and the preprocessor; ``train`` reads them back
and writes the checkpoints, metrics.json, serving.json and the report.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Callback

from splineforecast import __version__
from splineforecast.artifacts import RunPaths, read_preprocessor_state, run_lock
from splineforecast.config import Config, flatten
from splineforecast.contracts import Checked, PanelRawInputs, ProcessedInputs, RawInputs, check, check_processed
from splineforecast.data import io
from splineforecast.data.engine import series_mapper
from splineforecast.data.panel_preprocess import PanelPreprocessor
from splineforecast.data.preprocess import Preprocessor
from splineforecast.data.processed import Processed
from splineforecast.errors import ContractError
from splineforecast.evaluation import TestForecast, forecast_test, predict_with_truth, score_test, score_test_levels
from splineforecast.files import write_bytes
from splineforecast.forecast_table import test_forecast_frame, to_csv
from splineforecast.limits import check_metrics, check_resumable
from splineforecast.lineage import run_inputs
from splineforecast.models.module import ForecastModule
from splineforecast.models.spec import DataSpec
from splineforecast.pipeline_panel import preprocess_panel, score_panel, write_panel_report
from splineforecast.records import (
    Calibration,
    CovariateNames,
    EvalResult,
    Meta,
    PanelInfo,
    ServingSettings,
    Source,
    SplitContract,
    TrainingSummary,
)
from splineforecast.report import plot_forecast, render_report
from splineforecast.serving import load_run_forecaster
from splineforecast.tracking import Tracker, log_inputs, log_model, register_model, resolve_uri, tracked_run, ui_command
from splineforecast.training import EpochMetrics, GracefulStop, TrainResult, checkpoint_result, fit, interruptible
from splineforecast.uncertainty import calibrate
from splineforecast.windows import WindowDataModule


@dataclass
class RunResult:
    run_id: str
    mlflow_run_id: str
    tracking_uri: str
    ui_command: str
    ui_url: str
    result: EvalResult | None  # when the run trained


def preprocess(cfg: Config, paths: RunPaths, raw: RawInputs | PanelRawInputs, fitted: dict | None = None) -> None:
    """Fill and scale the checked table; write the processed artifacts of the run.

    Args:
        fitted: the JSON state of a fitted preprocessor to transform with instead of fitting one
            (stage=backtest with backtest.refit=false: fold 0's); it is saved under this run's run_id.
    """
    if isinstance(raw, PanelRawInputs):
        mapper = series_mapper(cfg.data.n_jobs, cfg.data.cluster)
        done = preprocess_panel(cfg, paths.run_id, raw, mapper, fitted)
        p = done.processed
        meta = _meta(cfg, paths, raw, p, done.n_imputed, raw.table.target, done.info)
        paths.write_processed(p, meta, done.contract, done.preprocessor.to_json())
        return
    covariates = [dataclasses.asdict(c) for c in raw.covariates]
    if fitted is None:
        pre = Preprocessor(cfg.data.target, covariates, dataclasses.asdict(cfg.spline), raw.freq, paths.run_id)
        pre.fit(raw.frame, raw.split)
    else:
        pre = Preprocessor.from_json({**fitted, "run_id": paths.run_id})
    out = pre.transform(raw.frame, raw.split)
    stamps = raw.frame.index[: raw.split.n_rows].as_unit("ns").asi8
    raw_target = pre.raw_target(raw.frame, raw.split)[:, None]
    processed = Processed(out.values, out.observed_mask, stamps, pre.feature_names, [pre.target_index], raw_target)
    contract = SplitContract.of(
        paths.run_id, raw.split, stamps.astype("datetime64[ns]"), cfg.data.lookback, cfg.data.horizon
    )
    meta = _meta(cfg, paths, raw, processed, out.n_imputed, cfg.data.target)
    paths.write_processed(processed, meta, contract, pre.to_json())


def _meta(
    cfg: Config,
    paths: RunPaths,
    raw: RawInputs | PanelRawInputs,
    processed: Processed,
    n_imputed: dict[str, int],
    target: str,
    panel: PanelInfo | None = None,
) -> Meta:
    names = {role: [c.name for c in raw.covariates if c.role == role] for role in ("dynamic", "static")}
    features = processed.feature_names
    return Meta(
        run_id=paths.run_id,
        source=Source(str(raw.source), io.sha256(raw.source), raw.n_rows),
        freq=raw.freq,
        data_checks=raw.notes,
        feature_names=features,
        target=target,
        covariates=CovariateNames(**names, types={c.name: c.type for c in raw.covariates}, spec=cfg.covariate.spec),
        spline=dataclasses.asdict(cfg.spline),
        scaler={"kind": "standard", "fitted_on": "train", **({} if panel is None else {"per": panel.scaler})},
        n_imputed=n_imputed,
        n_unfilled={n: int(np.isnan(processed.values[:, i]).sum()) for i, n in enumerate(features)},
        versions={
            "splineforecast": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "pytorch_lightning": pl.__version__,
        },
        panel=panel,
    )


def train(
    cfg: Config,
    paths: RunPaths,
    tracker: Tracker,
    inputs: ProcessedInputs,
    stop: GracefulStop,
    trained_by: RunPaths | None = None,
) -> EvalResult:
    """Train on checked processed artifacts; evaluate the best checkpoint on test; write what serves it.

    With ``trained_by`` (stage=backtest, backtest.refit=false) that run's checkpoints are taken as they
    are, copied into this run's: nothing is trained.
    """
    data = _windows(cfg, inputs)
    module, trained = _fit(cfg, paths, tracker, data, stop, trained_by)
    calibration = _calibrate(cfg, paths, module.net, data)
    pre, panel, uncertainty = inputs.preprocessor, None, None
    if isinstance(pre, PanelPreprocessor):
        panel = score_panel(cfg, inputs, module.net, data, calibration)
        scores, uncertainty = panel.scores, panel.uncertainty
    else:
        parts = data.datasets
        test = forecast_test(module.net, pre, inputs.processed, parts["test"], calibration, parts["val"])
        scores = score_test(test, inputs.split.train, cfg.data.lookback, cfg.data.season_length)
        uncertainty = score_test_levels(test, inputs.split.train, cfg.data.lookback, cfg.data.season_length)
    if uncertainty is not None:
        uncertainty["calibration"] = cfg.model.calibration
    result = EvalResult(
        run_id=paths.run_id,
        scores=scores,
        training=TrainingSummary(trained.epochs, trained.best_val_loss),
        windows={k: len(v) for k, v in data.datasets.items()},
        windows_dropped=data.n_dropped,
        panel=None if panel is None else panel.panel,
        uncertainty=uncertainty,
    )
    _check_result(paths, result)
    paths.write_eval(result)
    levels = None if uncertainty is None else list(uncertainty["levels"])
    paths.write_serving(dataclasses.replace(_serving_settings(cfg, paths, inputs), quantiles=levels))
    if panel is None:
        _write_report(cfg, paths, inputs, test, result)
    else:
        head = _report_head(cfg, inputs, result, paths.forecast_png.name)
        write_panel_report(cfg, paths, inputs, panel, result, head)
    return result


def _check_result(paths: RunPaths, result: EvalResult) -> None:
    """Refuse a result with a NaN or infinite score (``limits.check_metrics``); a run refused here keeps no
    metrics.json, report or test forecasts of an earlier run of its run_id, and its MLflow run ends FAILED."""
    try:
        check_metrics(result)
    except ContractError:
        for path in (paths.metrics_json, paths.per_series_csv, paths.test_forecast_csv, paths.report_md):
            path.unlink(missing_ok=True)
        raise


def _calibrate(cfg: Config, paths: RunPaths, net: torch.nn.Module, data: WindowDataModule) -> Calibration | None:
    """model.calibration=conformal: fit the interval offsets on the val part and write calibration.json."""
    paths.calibration_json.unlink(missing_ok=True)  # an overwritten run keeps no calibration of its own past
    if cfg.model.calibration != "conformal":
        return None
    out, y, seen = predict_with_truth(net, data.datasets["val"])
    calibration = calibrate(paths.run_id, out, y, seen, list(cfg.model.quantiles), cfg.model.calibration_window)
    paths.write_calibration(calibration)
    return calibration


def _windows(cfg: Config, inputs: ProcessedInputs) -> WindowDataModule:
    d, processed = cfg.data, inputs.processed
    n_series = 0 if processed.series_ids is None else len(processed.series_ids)
    spec = DataSpec(
        len(processed.feature_names), d.lookback, d.horizon, tuple(processed.target_indices), n_series, d.season_length
    )
    return WindowDataModule(
        processed.values,
        processed.observed_mask,
        inputs.contract.segments,
        spec,
        d.stride,
        d.batch_size,
        cfg.seed,
        d.max_windows_per_series,
    )


def _fit(
    cfg: Config,
    paths: RunPaths,
    tracker: Tracker,
    data: WindowDataModule,
    stop: GracefulStop,
    trained_by: RunPaths | None = None,
) -> tuple[ForecastModule, TrainResult]:
    """Train (or resume an unfinished run of this run_id, or adopt ``trained_by``'s checkpoints); return the
    module holding the best weights."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module = ForecastModule(dataclasses.asdict(cfg.model), dataclasses.asdict(data.spec))
    if trained_by is not None:
        trained = adopt_checkpoints(trained_by, paths)
    else:
        resume = paths.last_ckpt.is_file()  # an unfinished run of this run_id (a finished one was refused)
        if resume:
            check_resumable(paths.last_ckpt, load=True)  # ARTIFACT_CONTRACT_ERROR naming it, not torch's own
            print(f"resuming run_id {paths.run_id} from {paths.last_ckpt}", flush=True)
        callbacks: list[Callback] = [EpochMetrics(tracker.log_metrics)]
        trained = fit(module, data, cfg.trainer, paths.best_ckpt, callbacks, stop, resume)  # last: stop.last_ckpt
    state = torch.load(trained.best_ckpt, map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
    return module, trained


def adopt_checkpoints(source: RunPaths, paths: RunPaths) -> TrainResult:
    """Copy ``source``'s best and last checkpoints into ``paths`` (atomically); what training them gave."""
    for src, dst in ((source.best_ckpt, paths.best_ckpt), (source.last_ckpt, paths.last_ckpt)):
        write_bytes(dst, src.read_bytes())
    return checkpoint_result(paths.best_ckpt, paths.last_ckpt)


def _serving_settings(cfg: Config, paths: RunPaths, inputs: ProcessedInputs) -> ServingSettings:
    d, pre, panel = cfg.data, inputs.preprocessor, inputs.meta.panel
    return ServingSettings(
        paths.run_id,
        pre.target,
        pre.covariates,
        pre.freq,
        d.time_column,
        d.time_format,
        d.lookback,
        d.horizon,
        __version__,
        series_column=None if panel is None or panel.wide else panel.series_column,
        wide=None if panel is None else panel.wide,
    )


def _write_report(
    cfg: Config, paths: RunPaths, inputs: ProcessedInputs, test: TestForecast, result: EvalResult
) -> None:
    d, m = cfg.data, cfg.model
    title = f"{m.name.upper()} on {d.name} ({d.target}), test part"
    stamps = inputs.processed.timestamps.astype("datetime64[ns]")
    paths.write_test_forecast(to_csv(test_forecast_frame(test, stamps, d.lookback, inputs.preprocessor.target)))
    plot = plot_forecast(test, stamps, d.lookback, title)
    paths.write_report(_report_head(cfg, inputs, result, paths.forecast_png.name), plot)


def _report_head(cfg: Config, inputs: ProcessedInputs, result: EvalResult, plot_name: str) -> str:
    d, m, training = cfg.data, cfg.model, result.training
    panel = inputs.meta.panel
    rows = f"{len(inputs.processed.values)} rows" + ("" if panel is None else f" in {panel.n_series} series")
    left_out = "" if panel is None or not panel.left_out else f", {len(panel.left_out)} series left out (meta.json)"
    summary = {
        "data": f"{d.name} (`{d.target}`, {rows}{left_out}, freq {inputs.preprocessor.freq})",
        "model": f"{m.name}, hidden {m.hidden_size} x {m.num_layers} layers, norm {m.norm}, skip {m.skip}",
        "windows": f"lookback {d.lookback}, horizon {d.horizon}; "
        + ", ".join(f"{k} {v}" for k, v in result.windows.items()),
        "spline": f"{cfg.spline.kind} (max_gap {cfg.spline.max_gap})",
        "training": f"{training.epochs} epochs, best val/loss {training.best_val_loss:.4g}",
    }
    return render_report(result, summary, plot_name)


def predict(cfg: Config, paths: RunPaths, settings: ServingSettings) -> list[Path]:
    """stage=predict: forecast after the history file ``data.path`` with the run's model; write the CSV.

    The history is read as ``data.*`` describes it (path, delimiter, time column and format); the
    window lengths, target, covariates and freq are the run's own.

    Returns:
        The files written: ``<artifacts>/predictions/<run_id>/forecast.csv``, and ``predict.output`` when set.
    """
    d = cfg.data
    history = dataclasses.replace(settings, time_column=d.time_column, time_format=d.time_format)
    table = io.read_csv(io.resolve_path(d.path, d.bundled), d.delimiter, io.ReadLimits.of(d))
    frame = load_run_forecaster(paths, history).predict(table)
    also = Path(cfg.predict.output).expanduser() if cfg.predict.output else None
    return paths.write_forecast(frame.to_csv(index=False).encode(), also)


def _write_config(cfg: Config, overrides: list[str], paths: RunPaths) -> None:
    resolved = OmegaConf.to_yaml(OmegaConf.structured(cfg))
    paths.write_config(resolved, OmegaConf.to_yaml(OmegaConf.create(list(overrides))))


def _log_outputs(tracker: Tracker, paths: RunPaths, result: EvalResult | None, cfg: Config) -> None:
    for local, artifact_path in paths.mlflow_layout(trained=result is not None):
        tracker.log_artifacts(local, artifact_path)
    if result is not None:
        tracker.log_metrics(result.mlflow_metrics())
        log_model(tracker, paths)  # the pyfunc model `model`: runs:/<id>/model
        name, alias = cfg.tracking.register, cfg.tracking.alias
        version = register_model(tracker, name, alias) if name else ""
        if version:
            print(f"registered:    models:/{name}/{version}" + (f" (models:/{name}@{alias})" if alias else ""))


# per-invocation settings, not properties of the experiment
# how a run is started or guarded, not what it computes: a resume may change them
_NOT_PARAMS = {
    "stage",
    "overwrite",
    "data.processed",
    "trainer.enable_progress_bar",
    "predict.output",
    "data.max_bytes",
    "data.max_rows",
    "data.max_columns",
}


def run(
    cfg: Config,
    overrides: list[str],
    tags: dict[str, str] | None = None,
    checked: Checked | None = None,
    trained_by: RunPaths | None = None,
) -> RunResult:
    """Run ``cfg.stage`` for ``cfg.run_id`` (which must be set) as one MLflow run.

    Args:
        cfg: the composed config.
        overrides: the command-line overrides, saved with the config.
        tags: extra MLflow tags (e.g. the sweep a job belongs to).
        checked: the result of ``contracts.check(cfg)`` when the caller ran it already.
        trained_by: a trained run whose preprocessor and checkpoints this run takes instead of fitting its
            own (stage=backtest with backtest.refit=false: fold 0, for every later fold).
    """
    checked = checked or check(cfg)
    paths = checked.paths
    if cfg.stage == "predict":  # reads the trained run's local files; creates no MLflow run
        written = predict(cfg, paths, checked.serving or paths.read_serving())
        print("\n".join(f"forecast:      {p}" for p in written), flush=True)
        return RunResult(paths.run_id, "", cfg.tracking.uri, ui_command(cfg.tracking.uri), "", None)
    stop = GracefulStop(paths.last_ckpt)
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
                fitted = None if trained_by is None else read_preprocessor_state(trained_by.preprocessor_json)
                preprocess(cfg, paths, checked.raw, fitted)
            inputs = None
            if cfg.stage in ("all", "train"):
                inputs = checked.processed or check_processed(cfg, paths, paths.processed(cfg.data.processed))
            log_inputs(tracker, *run_inputs(cfg, paths, checked.raw, inputs))  # MLflow datasets, input example
            if inputs is not None:
                result = train(cfg, paths, tracker, inputs, stop, trained_by)
            _log_outputs(tracker, paths, result, cfg)
            tracker.mark_done(cfg.stage)
    return RunResult(paths.run_id, tracker.mlflow_run_id, uri, ui_command(uri), tracker.ui_url, result)
