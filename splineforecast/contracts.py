"""Startup checks, in order; the first failure is raised as a ContractError.

``check_config`` (values), then ``check_raw`` (stage all/preprocess: the table) or
``check_processed`` (stage train: the artifacts and their run_ids). Imports neither torch,
Lightning nor MLflow, so a refusal is fast and the pipeline starts from checked inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from splineforecast.artifacts import ProcessedFiles, RunPaths, check_run_id
from splineforecast.config import STAGES, Config, sqlite_path, tracking_uri
from splineforecast.data import io, schema
from splineforecast.data.covariates import Covariate, check_spec, check_static, declared_covariates, read_spec
from splineforecast.data.panel import WIDE_TARGET, PanelTable, is_panel, target_names
from splineforecast.data.processed import Processed
from splineforecast.data.splines import check_spline
from splineforecast.data.splits import Split, time_splits
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.limits import check_resumable, check_scorable, check_sizes
from splineforecast.models.registry import check_model, check_quantiles, check_segment
from splineforecast.records import Meta, ServingSettings, SplitContract
from splineforecast.records_panel import PanelSplitContract

if TYPE_CHECKING:
    from splineforecast.data.panel_preprocess import PanelPreprocessor
    from splineforecast.data.preprocess import Preprocessor
    from splineforecast.folds import Fold


def _config_error(message: str) -> ContractError:
    return ContractError(ErrorCode.CONFIG_ERROR, message)


def check_config(cfg: Config) -> None:
    """Refuse config values no stage can use (CONFIG_ERROR), naming the key and the value."""
    if cfg.run_id is not None:
        check_run_id(cfg.run_id)
    if cfg.stage not in STAGES:
        raise _config_error(f"`stage` ({cfg.stage}) must be one of {list(STAGES)}")
    if cfg.stage == "train" and cfg.run_id is None:
        raise _config_error("stage=train needs the run_id of a preprocessed run: add run_id=NAME")
    if cfg.stage == "predict" and cfg.run_id is None:
        raise _config_error("stage=predict needs the run_id of a trained run: add run_id=NAME")
    for key in ("lookback", "horizon", "stride", "batch_size", "season_length"):
        value = getattr(cfg.data, key)
        if value <= 0:
            raise _config_error(f"`data.{key}` ({value}) must be > 0")
    check_spline(cfg.spline.kind, cfg.spline.max_gap, cfg.spline.lam)
    _check_model(cfg)
    if cfg.trainer.max_epochs < 1:
        raise _config_error(f"`trainer.max_epochs` ({cfg.trainer.max_epochs}) must be >= 1")
    from splineforecast.folds import check_backtest_config  # both build on this module
    from splineforecast.panel_checks import check_panel_config

    check_panel_config(cfg)
    check_backtest_config(cfg)
    _check_covariate_names(cfg)
    check_sizes(cfg)  # upper bounds, and the training memory they add up to


def _check_covariate_names(cfg: Config) -> None:
    dynamic, static = cfg.covariate.dynamic, cfg.covariate.static
    names = [*dynamic, *static]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise _config_error(f"covariate(s) {twice} declared more than once in covariate.dynamic/static")
    for target in target_names(cfg.data.target):
        if target in names:
            raise _config_error(f"the target `{target}` cannot also be a covariate")
    if not isinstance(cfg.data.target, str) and WIDE_TARGET in names:
        raise _config_error(f"covariate `{WIDE_TARGET}` has the name a wide table's series take for their target")
    if cfg.data.time_column in names:
        raise _config_error(f"the time column `{cfg.data.time_column}` cannot be a covariate")
    for key in ("categorical", "boolean"):
        undeclared = sorted(set(getattr(cfg.covariate, key)) - set(names))
        if undeclared:
            raise _config_error(
                f"covariate.{key} names {undeclared}, which are not in covariate.dynamic or covariate.static"
            )
    both = sorted(set(cfg.covariate.categorical) & set(cfg.covariate.boolean))
    if both:
        raise _config_error(f"covariate(s) {both} are in both covariate.categorical and covariate.boolean")


def _check_model(cfg: Config) -> None:
    model = cfg.model
    check_model(model.name, model.norm, model.loss, model.skip_init)
    check_quantiles(model.quantiles, model.calibration)
    check_segment(model.segment, model.decoder, cfg.data.lookback)
    _check_calibration_window(cfg)
    if model.skip_init == "seasonal" and not (model.skip and cfg.data.season_length <= cfg.data.lookback):
        raise _config_error(
            f"`model.skip_init=seasonal` needs `model.skip=true` ({model.skip}) and `data.season_length` "
            f"({cfg.data.season_length}) <= `data.lookback` ({cfg.data.lookback})"
        )
    for key in ("hidden_size", "num_layers"):
        if getattr(model, key) < 1:
            raise _config_error(f"`model.{key}` ({getattr(model, key)}) must be >= 1")
    if not 0 <= model.dropout < 1:
        raise _config_error(f"`model.dropout` ({model.dropout}) must be in [0, 1)")
    if model.lr <= 0:
        raise _config_error(f"`model.lr` ({model.lr}) must be > 0")


def _check_calibration_window(cfg: Config) -> None:
    """model.calibration_window: >= 1, with conformal calibration, on one series (a panel's windows have
    no single time order to roll over)."""
    window = cfg.model.calibration_window
    if window is None:
        return
    if window < 1:
        raise _config_error(f"`model.calibration_window` ({window}) must be >= 1, or null for fixed offsets")
    if cfg.model.calibration != "conformal":
        raise _config_error(
            f"`model.calibration_window` ({window}) rolls a conformal calibration: set model.calibration=conformal "
            f"(it is {cfg.model.calibration}), or unset model.calibration_window"
        )
    if is_panel(cfg.data.series_column, cfg.data.target):
        raise _config_error(
            f"`model.calibration_window` ({window}) applies to one series; a panel calibrates on its whole val "
            "part: unset model.calibration_window"
        )


@dataclass
class ProcessedInputs:
    """The checked processed artifacts a train stage consumes."""

    files: ProcessedFiles
    processed: Processed
    contract: SplitContract | PanelSplitContract
    meta: Meta
    preprocessor: Preprocessor | PanelPreprocessor

    @property
    def split(self) -> Split:
        """The one series' split (a panel has one per series: ``contract.segments``)."""
        if isinstance(self.contract, PanelSplitContract):
            raise TypeError("a panel has a split per series: use contract.segments")
        return self.contract.split


@dataclass
class RawInputs:
    """The checked raw table a preprocess stage consumes."""

    source: Path
    n_rows: int
    frame: pd.DataFrame
    freq: str
    split: Split
    covariates: list[Covariate]
    notes: dict[str, Any]  # what validation did to the rows (sorting, zones, grid)


def check_run_ids(given: str, files: ProcessedFiles, meta: Meta, preprocessor: dict[str, Any]) -> None:
    """The four run_id sources agree (SPEC §3), else RUN_ID_MISMATCH naming each."""
    given_key, meta_key = "run_id (given)", files.meta_json.name
    sources = {
        given_key: given,
        "processed path": files.run_id_in_path,
        meta_key: meta.run_id,
        "preprocessor": preprocessor.get("run_id"),
    }
    present = {v for v in sources.values() if v is not None}
    required = (given_key, meta_key, "preprocessor")  # the path may be outside the layout
    if len(present) > 1 or any(sources[k] is None for k in required):
        listed = ", ".join(f"{k}={v!r}" for k, v in sources.items())
        raise ContractError(
            ErrorCode.RUN_ID_MISMATCH,
            f"run_id sources disagree: {listed}; pass the run_id the artifacts were made with, "
            "or re-run stage=preprocess with this run_id",
        )


def check_processed(cfg: Config, paths: RunPaths, files: ProcessedFiles) -> ProcessedInputs:
    """Check the processed artifacts a train stage reads: files, keys, schemas, shapes, run_ids."""
    if not files.npz.is_file():
        raise ContractError(
            ErrorCode.FILE_NOT_FOUND,
            f"processed artifact `{files.npz}` does not exist; run stage=preprocess run_id={paths.run_id} first "
            "or set data.processed=PATH",
            "FileNotFoundError",
        )
    processed = files.read_processed()
    contract = files.read_split_contract(n_rows=len(processed.values))
    meta = files.read_meta()
    state = files.read_preprocessor_state()
    check_run_ids(paths.run_id, files, meta, state)
    if isinstance(contract, PanelSplitContract):
        return _panel_inputs(cfg, files, processed, contract, meta, state)
    check_window_counts(contract.split, cfg.data.lookback, cfg.data.horizon)
    t = processed.target_indices[0]
    target, observed = processed.values[:, t], processed.observed_mask[:, t]
    check_scorable(target, observed, contract.split, cfg.data.season_length, _sizes(cfg))
    from splineforecast.data.preprocess import Preprocessor  # scikit-learn: only where a stage trains

    return ProcessedInputs(files, processed, contract, meta, Preprocessor.from_json(state))


def _panel_inputs(
    cfg: Config, files: ProcessedFiles, processed: Processed, contract: PanelSplitContract, meta: Meta, state: dict
) -> ProcessedInputs:
    """A panel's artifacts agree on the series (ids, order, rows) and every series holds a window per part."""
    from splineforecast.data.panel_preprocess import PanelPreprocessor

    pre = PanelPreprocessor.from_json(state)
    ids = {
        files.split_contract_json.name: contract.ids,
        files.npz.name: processed.series_ids,
        files.meta_json.name: meta.panel.series_ids if meta.panel else None,
        files.preprocessor_json.name: pre.series_ids_,
    }
    rows = [s.offset for s in contract.series] + [len(processed.values)]
    offsets = None if processed.offsets is None else processed.offsets.tolist()
    if any(v != contract.ids for v in ids.values()) or offsets != rows:
        counts = ", ".join(f"{k}: {'no' if v is None else len(v)} series" for k, v in ids.items())
        raise ContractError(
            ErrorCode.ARTIFACT_CONTRACT_ERROR,
            f"the panel's artifacts disagree on its series (ids, order or rows; {counts}); re-run stage=preprocess",
        )
    for s in contract.series:
        try:
            check_window_counts(s.split, cfg.data.lookback, cfg.data.horizon)
        except ContractError as exc:
            raise ContractError(exc.code, f"series {s.id!r}: {exc.message}") from exc
    return ProcessedInputs(files, processed, contract, meta, pre)


def _sizes(cfg: Config) -> tuple[float, float, float]:
    s = cfg.data.split
    return s.train, s.val, s.test


def check_window_counts(split: Split, lookback: int, horizon: int) -> None:
    """Refuse a split whose parts cannot hold one window each (INSUFFICIENT_DATA_ERROR)."""
    for name, (a, b) in split.parts().items():
        first = max(0, a - lookback)
        if b - first < lookback + horizon or b - a < horizon:
            need = lookback + horizon if name == "train" else horizon
            raise ContractError(
                ErrorCode.INSUFFICIENT_DATA_ERROR,
                f"the {name} part has {b - a} rows but needs at least {need} for one window of "
                f"lookback {lookback} + horizon {horizon}; lower data.lookback/data.horizon, "
                "change data.split, or supply a longer series",
            )


def read_declared(cfg: Config) -> tuple[Path, pd.DataFrame, list[Covariate]]:
    """The data file, its table (text cells) and the declared covariates (checked against the spec, if any)."""
    d, cov = cfg.data, cfg.covariate
    source = io.resolve_path(d.path, d.bundled)
    spec = read_spec(cov.spec) if cov.spec else None
    table = io.read_csv(source, d.delimiter, io.ReadLimits.of(d))
    spec_types = check_spec(spec, cov.dynamic, cov.static, list(table.columns)) if spec is not None else None
    return source, table, declared_covariates(cov.dynamic, cov.static, cov.types, spec_types)


def check_raw(cfg: Config) -> RawInputs | PanelRawInputs:
    """Check the raw table of stage=all/preprocess: file, schema, split, window counts (a panel's:
    ``panel_checks.check_panel_raw``)."""
    if is_panel(cfg.data.series_column, cfg.data.target):
        from splineforecast.panel_checks import check_panel_raw  # it builds on this module

        return check_panel_raw(cfg)
    d, cov = cfg.data, cfg.covariate
    source, table, covariates = read_declared(cfg)
    raw = io.select(table, source, d.time_column, [d.target, *cov.dynamic, *cov.static])
    numeric = [c.name for c in covariates if c.type == "numeric"]
    frame, freq, notes = schema.validate(raw, d.time_column, d.target, d.freq, numeric, d.time_format)
    check_static(frame, cov.static)
    split = time_splits(len(frame), d.split.train, d.split.val, d.split.test)
    check_window_counts(split, d.lookback, d.horizon)
    schema.check_train_columns(frame.iloc[split.train[0] : split.train[1]], d.target)
    target = frame[d.target].to_numpy(dtype=float)
    check_scorable(target, ~pd.isna(target), split, d.season_length, _sizes(cfg))
    return RawInputs(source, len(raw), frame, freq, split, covariates, notes)


def check_trained(
    paths: RunPaths,
    data_path: str | None,
    bundled: str | None,
    limits: io.ReadLimits = io.DEFAULT_LIMITS,
    delimiter: str = ",",
) -> ServingSettings:
    """A trained run's files are there and readable, and so is the history (stage=predict)."""
    for path in (paths.preprocessor_json, paths.best_ckpt):
        if not path.is_file():
            raise ContractError(
                ErrorCode.FILE_NOT_FOUND,
                f"`{path}` does not exist: stage=predict needs a trained run_id ({paths.run_id}) "
                "under paths.artifacts; train it first (stage=all) or set paths.artifacts=DIR",
                "FileNotFoundError",
            )
    settings = paths.read_serving()
    io.check_file(io.resolve_path(data_path, bundled), limits, delimiter)
    return settings


def check_writable(folder: Path, fix: str) -> None:
    """``folder`` exists as a writable directory, or can be created (nothing is created here).

    Raises:
        ContractError: RUNNER_EXEC_ERROR (an I/O fault) naming the path and the key to change.
    """
    probe = folder.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ContractError(
            ErrorCode.RUNNER_EXEC_ERROR,
            f"I/O error: cannot write under `{folder}` (`{probe}` is not a writable directory); {fix}",
            "PermissionError",
        )


@dataclass
class PanelRawInputs:
    """The checked raw table of a panel (``data.series_column``, or ``data.target`` as a list)."""

    source: Path
    n_rows: int
    table: PanelTable
    covariates: list[Covariate]

    @property
    def freq(self) -> str:
        return self.table.freq

    @property
    def notes(self) -> dict[str, Any]:
        return self.table.notes


@dataclass
class Checked:
    """What the startup checks read: the raw table, the processed artifacts of stage=train, or the
    serving settings of the trained run stage=predict forecasts with."""

    paths: RunPaths
    raw: RawInputs | PanelRawInputs | None = None
    processed: ProcessedInputs | None = None
    serving: ServingSettings | None = None  # stage=predict: the trained run's settings
    folds: list[Fold] | None = None  # stage=backtest: every fold's checked raw inputs, earliest first


def check(cfg: Config) -> Checked:
    """Run every startup check for ``cfg`` (whose run_id is set), in order.

    Raises:
        ContractError: the first failed check, with its SPEC code.
    """
    check_config(cfg)
    if cfg.run_id is None:
        raise _config_error("run_id must be set before the checks")
    paths = RunPaths(Path(cfg.paths.artifacts), cfg.run_id)
    check_writable(paths.root, "set paths.artifacts=DIR")
    if cfg.stage == "predict":  # no MLflow run: the trained run's local files and the history
        d = cfg.data
        return Checked(paths, serving=check_trained(paths, d.path, d.bundled, io.ReadLimits.of(d), d.delimiter))
    uri = tracking_uri(cfg.tracking.uri)
    db = sqlite_path(uri)
    if db is not None:
        check_writable(
            db.parent,
            "set tracking.uri=sqlite:///DIR/mlflow.db (or MLFLOW_TRACKING_URI)",
        )
    if cfg.stage in ("all", "train") and not cfg.overwrite and paths.last_ckpt.is_file():
        check_resumable(paths.last_ckpt)  # the run resumes from it (a finished run_id is refused later)
    if cfg.stage == "train":
        return Checked(paths, processed=check_processed(cfg, paths, paths.processed(cfg.data.processed)))
    if cfg.stage == "backtest":
        from splineforecast.folds import check_folds

        return Checked(paths, folds=check_folds(cfg))
    return Checked(paths, raw=check_raw(cfg))
