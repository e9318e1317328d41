"""Structured-config schema of every config group, registered with Hydra's ConfigStore.

Each group's schema holds the defaults; an option file under ``configs/<group>/`` extends it
(``defaults: [base_<group>, _self_]``) and sets only what differs. The root schema types the whole
config, so a misspelt key (``model.hiden_size=64``) or a wrongly typed value fails at composition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from splineforecast import bounds


@dataclass
class SplitConfig:
    """Sizes of train/val/test, in time order. Values below 1 are fractions of
    the rows, values of 1 or more are row counts (rows after the three parts are unused)."""

    train: float = 0.7
    val: float = 0.15
    test: float = 0.15
    # panels: calendar cutoffs (ISO timestamps) instead of sizes, for series on one calendar:
    # val is [val_start, test_start), test is [test_start, +test rows or the series end)
    val_start: str | None = None
    test_start: str | None = None


@dataclass
class DataConfig:
    name: str = MISSING
    path: str | None = None  # a CSV file; null means the bundled file below
    bundled: str | None = None  # file name inside splineforecast/datasets
    time_column: str = "date"
    time_format: str | None = None  # strftime format; null = ISO 8601 (no day/month guessing)
    delimiter: str = ","
    target: Any = MISSING  # a column; a list of columns makes each one series of a panel (wide table)
    # panels: the column holding each row's series id (a long table); null = one series
    series_column: str | None = None
    # panels (data.panel.SCALERS): per_series_mase (each series by its own train part, the target by its
    # in-sample seasonal-naive MAE at data.season_length), per_series (standard scaling) or global
    scaler: str = "per_series_mase"
    max_windows_per_series: int | None = None  # panels: train windows drawn per series and epoch; null = all
    n_jobs: int = 1  # panels: processes preprocessing series in parallel (-1 = every core)
    cluster: str | None = None  # panels: a Dask scheduler address (tcp://host:port) to preprocess on
    freq: str | None = None  # pandas offset alias; null = inferred from the timestamps
    lookback: int = 104  # input window, in steps
    horizon: int = 13  # steps forecast
    stride: int = 1
    batch_size: int = 64
    season_length: int = 52  # for seasonal-naive and MASE
    split: SplitConfig = field(default_factory=SplitConfig)
    processed: str | None = None  # explicit processed.npz for stage=train
    # caps of the data file, checked before it is parsed (splineforecast/bounds.py holds the defaults)
    max_bytes: int = bounds.MAX_BYTES  # file size, by stat()
    max_rows: int = bounds.MAX_ROWS  # data rows (the header aside)
    max_columns: int = bounds.MAX_COLUMNS  # columns of the header


@dataclass
class SplineConfig:
    kind: str = "cubic"  # one of splineforecast.data.splines.KINDS (an option file of configs/spline/ each)
    max_gap: int = 26  # longest run of missing steps filled; longer gaps stay missing and their windows are dropped
    lam: float | None = None  # spline=smoothing: smoothing strength; null = chosen by cross-validation (GCV)
    smooth_observed: bool = False  # spline=smoothing: also denoise observed inputs (metrics keep raw)


@dataclass
class CovariateConfig:
    name: str = "none"
    dynamic: list[str] = field(default_factory=list)  # past-observed, time-varying columns
    static: list[str] = field(default_factory=list)  # columns constant over the series
    categorical: list[str] = field(default_factory=list)  # declared covariates that are categorical
    boolean: list[str] = field(default_factory=list)  # declared covariates that are boolean; others numeric
    spec: str | None = None  # a covariate_spec.v1 JSON file, enforced when given

    @property
    def types(self) -> dict[str, str]:
        """Declared types by name (numeric when not listed)."""
        return {**{n: "categorical" for n in self.categorical}, **{n: "boolean" for n in self.boolean}}


@dataclass
class ModelConfig:
    name: str = MISSING  # one of models.registry.MODEL_NAMES (an option file of configs/model/ each)
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.0
    # window-relative normalisation (models.registry.NORMS): "last" makes inputs and outputs relative
    # to the window's last value, which handles level and trend
    norm: str = "last"
    skip: bool = True  # linear path from the lookback to the horizon, added to the recurrent head
    # models.registry.SKIP_INITS: "seasonal" starts the skip path as the seasonal naive forecast
    # (data.season_length) and the recurrent head at zero, so training begins at that baseline; auto:
    # seasonal for a panel when the skip path can hold it, else random (Config.__post_init__)
    skip_init: str = "auto"
    lr: float = 1e-3
    weight_decay: float = 0.0
    # models.registry.LOSSES: mse, or mae (closer to what MAE, MASE and sMAPE score); auto: mae for a
    # panel, mse for one series (Config.__post_init__)
    loss: str = "auto"
    # panels: a learned vector of this size per series, fed beside the inputs at every step; 0 = off.
    # A series the model was not trained on cannot be forecast (its scaling is unknown too)
    series_embedding: int = 0
    # models.registry.check_quantiles: quantile levels in (0, 1), increasing, holding 0.5 (the point
    # forecast); [] = a point forecast only. Set, the head forecasts every level (pinball loss)
    quantiles: list[float] = field(default_factory=list)
    # models.registry.CALIBRATIONS: conformal adjusts each interval per horizon step on the val part
    calibration: str = "none"
    # conformal, one series: null = offsets fixed on the whole val part; N = rolling: each forecast origin is
    # calibrated on the last N windows whose truth was observed before it (val, then test, then the history
    # a forecast is given)
    calibration_window: int | None = None
    # SegRNN: steps per segment of the lookback, each segment embedded into one recurrent step (1..lookback;
    # 1 = one step per time step). A lookback not a multiple of it is padded at its oldest end
    segment: int = 1
    # models.registry.DECODERS: direct (the last state -> every horizon step) or parallel (one recurrent step per
    # horizon segment of model.segment steps, from the encoder's state, with learned position embeddings)
    decoder: str = "direct"

    def settle(self, panel: bool, season_length: int, lookback: int) -> ModelConfig:
        """Replace ``auto`` (in place; returned for chaining): a panel trains from the seasonal naive forecast
        (where the skip path can hold the season) with the MAE loss, which M4 Hourly chose (README "M4");
        one series keeps random initialisation and MSE."""
        if self.loss == "auto":
            self.loss = "mae" if panel else "mse"
        if self.skip_init == "auto":
            holds = self.skip and season_length <= lookback
            self.skip_init = "seasonal" if panel and holds else "random"
        return self


@dataclass
class TrainerConfig:
    max_epochs: int = 40
    accelerator: str = "cpu"
    devices: int = 1
    strategy: str = "auto"  # Lightning strategy: auto | ddp_spawn | ddp | ...
    num_nodes: int = 1
    patience: int = 8  # early stopping on val/loss
    gradient_clip_val: float = 1.0
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0
    enable_progress_bar: bool = True
    enable_model_summary: bool = False
    deterministic: bool = True


@dataclass
class TrackingConfig:
    uri: str = "sqlite:///mlruns/mlflow.db"  # MLFLOW_TRACKING_URI wins when set
    experiment: str = "splineforecast"
    register: str | None = None  # a registered model name: a trained run's model becomes a version of it
    alias: str | None = None  # with register: the alias set on that version (models:/NAME@ALIAS)

    def __post_init__(self) -> None:
        """Refuse an alias without a model, bad names, and a registry on a store without one (CONFIG_ERROR)."""
        from splineforecast.lineage import check_registry

        check_registry(self.register, self.alias, tracking_uri(self.uri))


@dataclass
class PathsConfig:
    artifacts: str = "artifacts"  # local artifact root; each run's files live under it


@dataclass
class PredictConfig:
    output: str | None = None  # stage=predict: also write the forecast CSV here


@dataclass
class BacktestConfig:
    """stage=backtest: rolling origins. Fold k's data ends (folds - 1 - k) * step rows before the series' end
    (each series' end, in a panel), and it is split as data.split says, its test part last."""

    folds: int = 4
    step: int | None = None  # rows between consecutive origins; null = data.horizon
    refit: bool = True  # true: every fold fits spline, scaler and network anew; false: fold 0's, for every fold


@dataclass
class Config:
    data: DataConfig = MISSING
    spline: SplineConfig = MISSING
    covariate: CovariateConfig = MISSING
    model: ModelConfig = MISSING
    trainer: TrainerConfig = MISSING
    tracking: TrackingConfig = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    run_id: str | None = None  # generated when not given
    seed: int = 42
    stage: str = "all"  # all | preprocess | train | predict | backtest
    overwrite: bool = False

    def __post_init__(self) -> None:
        """Settle the model keys left ``auto`` for the kind of input (``data.panel.is_panel``), so everything
        after composition sees the settled values."""
        if not isinstance(self.data, DataConfig) or not isinstance(self.model, ModelConfig):
            return  # a schema being registered, not a composed config
        from splineforecast.data.panel import is_panel

        self.model.settle(
            is_panel(self.data.series_column, self.data.target), self.data.season_length, self.data.lookback
        )


STAGES = ("all", "preprocess", "train", "predict", "backtest")


GROUP_SCHEMAS: dict[str, type] = {
    "data": DataConfig,
    "spline": SplineConfig,
    "covariate": CovariateConfig,
    "model": ModelConfig,
    "trainer": TrainerConfig,
    "tracking": TrackingConfig,
}


def register_configs() -> None:
    """Register the schemas with Hydra: ``base_config`` (extended by ``config.yaml``, so every key is
    typed) and ``base_<group>`` in each group (extended by that group's option files)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group, schema in GROUP_SCHEMAS.items():
        store.store(group=group, name=f"base_{group}", node=schema)


def config_dir() -> Path:
    """The ``configs/`` folder: inside the installed package, or at the repository top."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"no configs/config.yaml beside {here}")


def tracking_uri(configured: str) -> str:
    """The tracking URI in force: ``MLFLOW_TRACKING_URI`` when set, else the configured one."""
    import os

    return os.environ.get("MLFLOW_TRACKING_URI") or configured


def sqlite_path(uri: str) -> Path | None:
    """The database file of a local sqlite URI (``sqlite:///rel.db``, ``sqlite:////abs.db``), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a nested dict to dotted keys (``{"model.hidden_size": 64}``)."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out
