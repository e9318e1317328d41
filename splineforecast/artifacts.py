"""The artifact layer: every file of a run (SPEC §2) named in one place, with typed reads and writes.

``RunPaths(root, run_id)`` is a run's local layout under the artifact root; ``ProcessedFiles`` is a
processed.npz with its meta.json, split contract and preprocessor (in the local layout, in the MLflow
layout, or at an explicit ``data.processed`` path). Everything else asks these two for a path, and reads
or writes a run's JSON through the records of :mod:`splineforecast.records`. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splineforecast.data.processed import Processed, read_processed, write_processed
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.files import file_lock, read_json, write_bytes, write_json
from splineforecast.records import (
    PANEL_PREPROCESSOR_FORMAT,
    PREPROCESSOR_FORMAT,
    Calibration,
    EvalResult,
    Meta,
    ServingSettings,
    SplitContract,
    check_version,
)
from splineforecast.records_panel import PanelSplitContract

__all__ = ["ProcessedFiles", "RunPaths", "check_run_id", "read_json", "run_lock"]  # read_json: 0.1.0's pyfunc code

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

_PROCESSED, _META, _SPLIT = "processed.npz", "meta.json", "split_contract.json"
_PREPROCESSOR, _BEST, _LAST = "preprocessor.json", "best.ckpt", "last.ckpt"
_CONFIG, _OVERRIDES, _METRICS = "config.yaml", "overrides.yaml", "metrics.json"
_REPORT, _PLOT, _SERVING, _FORECAST = "report.md", "forecast.png", "serving.json", "forecast.csv"
_PER_SERIES, _TEST_FORECAST = "per_series.csv", "test_forecast.csv"
_CALIBRATION = "calibration.json"


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a safe name (SPEC §3), else raise CONFIG_ERROR."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id) or ".." in run_id:
        raise ContractError(
            ErrorCode.CONFIG_ERROR,
            f"run_id {run_id!r} is not a safe name: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..'",
        )
    return run_id


def _read(path: Path, what: str, missing: ErrorCode, fix: str) -> Any:
    """Parse a JSON artifact; a missing file raises ``missing``, bad JSON ARTIFACT_CONTRACT_ERROR."""
    if not path.is_file():
        kind = "FileNotFoundError" if missing is ErrorCode.FILE_NOT_FOUND else "ValueError"
        raise ContractError(missing, f"{what} `{path}` is missing; {fix}", kind)
    try:
        return read_json(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError(ErrorCode.ARTIFACT_CONTRACT_ERROR, f"{what} `{path}` is not valid JSON: {exc}") from exc


def read_preprocessor_state(path: Path) -> dict[str, Any]:
    """The JSON state of a fitted preprocessor, of a known format (FILE_NOT_FOUND when missing)."""
    state = _read(path, "preprocessor", ErrorCode.FILE_NOT_FOUND, "re-run stage=preprocess")
    if isinstance(state, dict) and state.get("format") == PANEL_PREPROCESSOR_FORMAT:
        return state
    return check_version(state, path, "format", PREPROCESSOR_FORMAT, required=True)


def read_calibration(path: Path) -> Calibration:
    """A calibration.json (of a run, or of its pyfunc model)."""
    return Calibration.from_json(_read(path, _CALIBRATION, ErrorCode.FILE_NOT_FOUND, "re-run stage=train"), path)


@dataclass(frozen=True)
class ProcessedFiles:
    """A processed.npz with the files that travel with it."""

    npz: Path

    @property
    def meta_json(self) -> Path:
        return self.npz.parent / _META

    @property
    def split_contract_json(self) -> Path:
        return self.npz.parent / _SPLIT

    @property
    def run_id_in_path(self) -> str | None:
        """The run_id of a ``.../processed/{run_id}/processed.npz`` path, else None."""
        if self.npz.name == _PROCESSED and self.npz.parent.parent.name == "processed":
            return self.npz.parent.name
        return None

    @property
    def preprocessor_json(self) -> Path:
        """The local layout's ``<root>/preprocessor/{run_id}/``, else MLflow's ``<run>/preprocessor/``."""
        run_id = self.run_id_in_path
        if run_id is not None:
            return self.npz.parent.parent.parent / "preprocessor" / run_id / _PREPROCESSOR
        return self.npz.parent.parent / "preprocessor" / _PREPROCESSOR

    def read_processed(self) -> Processed:
        return read_processed(self.npz)

    def read_meta(self) -> Meta:
        fix = "re-run stage=preprocess for this run_id"
        return Meta.from_json(_read(self.meta_json, _META, ErrorCode.ARTIFACT_CONTRACT_ERROR, fix), self.meta_json)

    def read_split_contract(self, n_rows: int | None = None) -> SplitContract | PanelSplitContract:
        path = self.split_contract_json
        data = _read(path, "split contract", ErrorCode.ARTIFACT_CONTRACT_ERROR, "re-run stage=preprocess")
        if isinstance(data, dict) and data.get("schema_version") == PanelSplitContract.SCHEMA:
            return PanelSplitContract.from_json(data, path, n_rows)
        return SplitContract.from_json(data, path, n_rows)

    def read_preprocessor_state(self) -> dict[str, Any]:
        return read_preprocessor_state(self.preprocessor_json)


class _At:
    """A path of a run: ``<root>/<folder>/<run_id>``, or the file ``name`` in it."""

    def __init__(self, folder: str, name: str = "") -> None:
        self.folder, self.name = folder, name

    def __get__(self, run: RunPaths, owner: type | None = None) -> Path:
        base = run.root / self.folder / run.run_id
        return base / self.name if self.name else base


@dataclass(frozen=True)
class RunPaths:
    """The local files of one run under the artifact root (the runbook's layout), and their records."""

    root: Path
    run_id: str

    processed_dir = _At("processed")
    preprocessor_dir = _At("preprocessor")
    checkpoints_dir = _At("checkpoints")
    config_dir = _At("config")
    metrics_dir = _At("metrics")
    report_dir = _At("reports")
    model_dir = _At("model")  # serving.json: what the pyfunc model is built from besides the checkpoint
    predictions_dir = _At("predictions")

    processed_npz = _At("processed", _PROCESSED)
    meta_json = _At("processed", _META)
    split_contract_json = _At("processed", _SPLIT)
    preprocessor_json = _At("preprocessor", _PREPROCESSOR)
    best_ckpt = _At("checkpoints", _BEST)
    last_ckpt = _At("checkpoints", _LAST)
    config_yaml = _At("config", _CONFIG)
    overrides_yaml = _At("config", _OVERRIDES)
    metrics_json = _At("metrics", _METRICS)
    test_forecast_csv = _At("metrics", _TEST_FORECAST)  # the 1-step test forecasts forecast.png draws, as numbers
    report_md = _At("reports", _REPORT)
    forecast_png = _At("reports", _PLOT)
    serving_json = _At("model", _SERVING)
    calibration_json = _At("model", _CALIBRATION)  # model.calibration=conformal: per-step interval offsets
    forecast_csv = _At("predictions", _FORECAST)
    # panels
    per_series_csv = _At("metrics", _PER_SERIES)
    mase_png = _At("reports", "mase_per_series.png")  # the distribution of per-series MASE
    best_png = _At("reports", "forecast_best.png")  # forecast.png shows the median series
    worst_png = _At("reports", "forecast_worst.png")
    # stage=backtest: the parent run's per-fold scores and their aggregate, and the plot of them
    backtest_json = _At("metrics", "backtest.json")
    backtest_png = _At("reports", "backtest.png")

    def processed(self, npz: str | Path | None = None) -> ProcessedFiles:
        """The processed artifacts of this run, or those at ``npz`` (``data.processed``)."""
        return ProcessedFiles(Path(npz) if npz else self.processed_npz)

    def write_processed(
        self, processed: Processed, meta: Meta, contract: SplitContract | PanelSplitContract, preprocessor: dict
    ) -> None:
        """The outputs of stage=preprocess."""
        write_processed(self.processed_npz, processed)
        write_json(self.meta_json, meta.to_json())
        write_json(self.split_contract_json, contract.to_json())
        write_json(self.preprocessor_json, preprocessor)

    def write_config(self, resolved_yaml: str, overrides_yaml: str) -> None:
        write_bytes(self.config_yaml, resolved_yaml.encode())
        write_bytes(self.overrides_yaml, overrides_yaml.encode())

    def write_eval(self, result: EvalResult) -> None:
        write_json(self.metrics_json, result.to_json())

    def read_eval(self) -> EvalResult:
        path = self.metrics_json
        data = _read(path, _METRICS, ErrorCode.FILE_NOT_FOUND, "the run has not finished training")
        return EvalResult.from_json(data, path)

    def write_report(self, markdown: str, plot_png: bytes, more: dict[Path, bytes] | None = None) -> None:
        """report.md and the plots it shows (linked by their file names): forecast.png, and ``more``."""
        write_bytes(self.forecast_png, plot_png)
        for path, png in (more or {}).items():
            write_bytes(path, png)
        write_bytes(self.report_md, markdown.encode())

    def write_per_series(self, csv: bytes) -> None:
        """per_series.csv of a panel run: one row of scores per series."""
        write_bytes(self.per_series_csv, csv)

    def write_test_forecast(self, csv: bytes) -> None:
        """test_forecast.csv: one row per test window (per series and window in a panel run)."""
        write_bytes(self.test_forecast_csv, csv)

    def write_serving(self, settings: ServingSettings) -> None:
        write_json(self.serving_json, settings.to_json())

    def write_calibration(self, calibration: Calibration) -> None:
        write_json(self.calibration_json, calibration.to_json())

    def read_calibration(self) -> Calibration | None:
        """The run's conformal calibration; None for a run trained without one."""
        return read_calibration(self.calibration_json) if self.calibration_json.is_file() else None

    def read_serving(self) -> ServingSettings:
        """The run's serving settings; a run trained before serving.json existed gets them from its files."""
        if self.serving_json.is_file():
            data = _read(self.serving_json, _SERVING, ErrorCode.FILE_NOT_FOUND, "re-run stage=train")
            return ServingSettings.from_json(data, self.serving_json)
        return self._legacy_serving()

    def _legacy_serving(self) -> ServingSettings:
        """0.1.0's layout: the preprocessor, and the data section of the resolved config.yaml."""
        import yaml

        state = read_preprocessor_state(self.preprocessor_json)
        data: dict[str, Any] = {}
        if self.config_yaml.is_file():
            loaded = yaml.safe_load(self.config_yaml.read_text(encoding="utf-8")) or {}
            data = loaded.get("data") or {} if isinstance(loaded, dict) else {}
        params = state.get("params", {})
        return ServingSettings(
            run_id=self.run_id,
            target=params.get("target", ""),
            covariates=params.get("covariates", []),
            freq=params.get("freq", ""),
            time_column=str(data.get("time_column") or "date"),
            time_format=data.get("time_format"),
            lookback=int(data.get("lookback") or 0),  # 0: taken from the checkpoint
            horizon=int(data.get("horizon") or 0),
            version=str(state.get("version", "")),
        )

    def write_forecast(self, csv: bytes, also: Path | None = None) -> list[Path]:
        """stage=predict's CSV, and a copy at ``also``; returns the files written."""
        written = [self.forecast_csv, *([also] if also else [])]
        for path in written:
            write_bytes(path, csv)
        return written

    def mlflow_layout(self, trained: bool) -> list[tuple[Path, str | None]]:
        """(local file or folder, MLflow artifact path) of what the MLflow run holds (SPEC §2)."""
        layout: list[tuple[Path, str | None]] = [(self.config_dir, "config")]
        if self.processed_dir.is_dir():  # also after stage=train, so an overwritten run stays complete
            layout += [(self.processed_dir, "processed"), (self.preprocessor_dir, "preprocessor")]
        if trained:
            layout += [(self.checkpoints_dir, "checkpoints"), (self.metrics_json, None), (self.report_dir, None)]
            layout += [(p, None) for p in (self.test_forecast_csv, self.per_series_csv) if p.is_file()]
        return layout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def run_lock(paths: RunPaths) -> Iterator[None]:
    """Hold the run_id for this process, so a second live process is refused (RUN_CONFLICT).

    The lock is an ``flock`` on a file outside the artifact tree (the system temp folder), so refusals
    write nothing there; a lock left by a dead process is taken over with a warning.
    """
    digest = hashlib.sha256(str(paths.root.absolute()).encode()).hexdigest()[:16]
    lock = Path(tempfile.gettempdir()) / "splineforecast-locks" / digest / f"{paths.run_id}.lock"
    held = ExitStack()
    try:
        fd = held.enter_context(file_lock(lock, blocking=False))
    except BlockingIOError:
        raise ContractError(
            ErrorCode.RUN_CONFLICT,
            f"run_id `{paths.run_id}` is in use by process {_holder(lock)}; wait for it or choose another run_id",
        ) from None
    with held:
        previous = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if previous.isdigit() and int(previous) != os.getpid() and not _pid_alive(int(previous)):
            print(
                f"warning: run_id `{paths.run_id}`: taking over the lock of process {previous}, which is gone",
                file=sys.stderr,
                flush=True,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # a clean release leaves no pid behind


def _holder(lock: Path) -> str:
    try:
        return lock.read_text(errors="replace").strip() or "?"
    except OSError:
        return "?"
