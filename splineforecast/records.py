"""The typed contents of a run's JSON artifacts (SPEC §2), each with its schema version.

Each record writes the JSON that SPEC §2 and the README document, plus its version key. ``from_json``
reads a file without a version as the layout of splineforecast 0.1.0 (where that layout had none),
and refuses a version it does not know with ARTIFACT_CONTRACT_ERROR naming the file and both versions.
Records import nothing heavier than the standard library, so the startup checks can use them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from splineforecast.data.splits import PARTS, Split
from splineforecast.errors import ContractError, ErrorCode

_R = TypeVar("_R")
PREPROCESSOR_FORMAT = "splineforecast.preprocessor.v1"  # the `format` of preprocessor.json (data/preprocess.py)
PANEL_PREPROCESSOR_FORMAT = "splineforecast.panel_preprocessor.v1"  # ... of a panel run (data/panel_preprocess.py)


def _contract(message: str) -> ContractError:
    return ContractError(ErrorCode.ARTIFACT_CONTRACT_ERROR, message)


def check_version(data: Any, path: Path, key: str, expected: str, required: bool = False) -> dict[str, Any]:
    """``data`` as a JSON object whose ``key`` is ``expected`` (or absent, unless ``required``).

    Raises:
        ContractError: ARTIFACT_CONTRACT_ERROR naming ``path``, the version found and the one expected.
    """
    if not isinstance(data, dict):
        raise _contract(f"`{path}` must hold a JSON object, not {type(data).__name__}; re-run the stage that writes it")
    found = data.get(key)
    if (found is None and not required) or found == expected:
        return data
    raise _contract(
        f"`{path}` has {key} {found!r}, but this splineforecast reads {expected!r}; "
        "re-run the stage that writes it, or read it with the splineforecast version that wrote it"
    )


def _build(path: Path, make: Callable[[], _R]) -> _R:
    """``make()``, with a missing or mistyped field reported as ARTIFACT_CONTRACT_ERROR naming ``path``."""
    try:
        return make()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _contract(f"`{path}` is incomplete or malformed ({type(exc).__name__}: {exc}); re-run its stage") from exc


@dataclass(frozen=True)
class Source:
    path: str
    sha256: str
    rows: int


@dataclass(frozen=True)
class CovariateNames:
    dynamic: list[str]
    static: list[str]
    types: dict[str, str]
    spec: str | None = None


@dataclass(frozen=True)
class PanelInfo:
    """What a panel run's meta.json adds: the series kept, and every series left out with the reason."""

    series_column: str
    series_ids: list[str]  # the series kept, in the order of processed.npz
    left_out: dict[str, str]  # series id -> why it was left out (too short for a window in some part, ...)
    scaler: str  # data.panel.SCALERS: per_series | per_series_mase | global
    wide: list[str] | None = None  # data.target as a list: the wide table's columns, one series each

    @property
    def n_series(self) -> int:
        return len(self.series_ids)


@dataclass(frozen=True)
class Meta:
    """meta.json: where the data came from, what validation and filling did, and the versions used."""

    SCHEMA: ClassVar[str] = "splineforecast.meta.v1"

    run_id: str
    source: Source
    freq: str
    data_checks: dict[str, Any]
    feature_names: list[str]
    target: str
    covariates: CovariateNames
    spline: dict[str, Any]
    scaler: dict[str, str]
    n_imputed: dict[str, int]
    n_unfilled: dict[str, int]
    versions: dict[str, str]
    panel: PanelInfo | None = None  # a one-series run's meta.json has no `panel` key

    def to_json(self) -> dict[str, Any]:
        out = {"schema_version": self.SCHEMA, **dataclasses.asdict(self)}
        if self.panel is None:
            del out["panel"]
        else:
            out["panel"]["n_series"] = self.panel.n_series
        return out

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Meta:
        d = check_version(data, path, "schema_version", cls.SCHEMA)

        def panel() -> PanelInfo | None:
            p = d.get("panel")
            return None if p is None else PanelInfo(**{k: p[k] for k in _fields(PanelInfo) if k in p})

        return _build(
            path,
            lambda: cls(
                **{k: d[k] for k in _fields(cls) if k not in ("source", "covariates", "panel")},
                source=Source(**d["source"]),
                covariates=CovariateNames(**d["covariates"]),
                panel=panel(),
            ),
        )


@dataclass(frozen=True)
class PartBounds:
    """Rows ``[start, stop)`` of one part, with its first and last timestamps."""

    start: int
    stop: int
    first: str
    last: str


@dataclass(frozen=True)
class SplitContract:
    """split_contract.json (SPEC §2): the time-ordered boundaries of train, val and test."""

    SCHEMA: ClassVar[str] = "phase1.split_contract.v1"

    run_id: str
    train: PartBounds
    val: PartBounds
    test: PartBounds
    lookback: int
    horizon: int

    @classmethod
    def of(cls, run_id: str, split: Split, stamps: Sequence[Any], lookback: int, horizon: int) -> SplitContract:
        """The contract of ``split``; ``stamps`` are the rows' timestamps (written as ``str`` of each)."""
        bounds = {n: PartBounds(a, b, str(stamps[a]), str(stamps[b - 1])) for n, (a, b) in split.parts().items()}
        return cls(run_id, **bounds, lookback=lookback, horizon=horizon)

    @property
    def split(self) -> Split:
        return Split(**{n: (getattr(self, n).start, getattr(self, n).stop) for n in PARTS})

    @property
    def segments(self) -> list[tuple[int, Split]]:
        """``(first row, split)`` of each series: here the one series, at row 0."""
        return [(0, self.split)]

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": self.SCHEMA, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: Any, path: Path, n_rows: int | None = None) -> SplitContract:
        """Read and check a contract: a known schema, contiguous time-ordered parts inside ``n_rows`` rows."""
        d = check_version(data, path, "schema_version", cls.SCHEMA, required=True)
        contract = _build(
            path,
            lambda: cls(
                run_id=d["run_id"],
                **{n: PartBounds(int(d[n]["start"]), int(d[n]["stop"]), d[n]["first"], d[n]["last"]) for n in PARTS},
                lookback=int(d["lookback"]),
                horizon=int(d["horizon"]),
            ),
        )
        s = contract.split
        if not _ordered(s):
            raise _contract(f"`{path}`: boundaries are not contiguous and time-ordered: {s.parts()}")
        if n_rows is not None and s.n_rows > n_rows:
            raise _contract(f"`{path}` ends at row {s.n_rows} but processed.npz has {n_rows} rows")
        return contract


def _ordered(s: Split) -> bool:
    return 0 == s.train[0] < s.train[1] == s.val[0] < s.val[1] == s.test[0] < s.test[1]


@dataclass(frozen=True)
class Scores:
    """The model and the baselines scored on the same observed points of the test part."""

    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    per_horizon: dict[str, dict[str, list[float]]]
    n_points: int


@dataclass(frozen=True)
class TrainingSummary:
    epochs: int  # epochs trained, all of them (a resumed run counts the ones before the resume too)
    best_val_loss: float


@dataclass(frozen=True)
class PanelScores:
    """metrics.json `panel`: per-series scores averaged over the series, every series weighing the same.

    ``mean`` holds, for the model and each baseline, the mean over series of sMAPE (M4's, in percent),
    MASE, MAE, RMSE and R2; the scores of each series are in per_series.csv.
    """

    n_series: int
    mean: dict[str, dict[str, float]]

    def mlflow_metrics(self) -> dict[str, float]:
        """``mean_smape``, ``mean_mase``, ..., and ``naive/mean_smape``, ... (the model's without a prefix)."""
        flat = {}
        for name, scores in self.mean.items():
            prefix = "" if name == "model" else f"{name}/"
            flat.update({f"{prefix}mean_{k}": v for k, v in scores.items()})
        return flat


@dataclass(frozen=True)
class EvalResult:
    """metrics.json: the run's scores, how training went, and how many windows each part had."""

    SCHEMA: ClassVar[str] = "splineforecast.metrics.v1"

    run_id: str
    scores: Scores
    training: TrainingSummary
    windows: dict[str, int] = field(default_factory=dict)
    windows_dropped: dict[str, int] = field(default_factory=dict)
    panel: PanelScores | None = None  # a panel run: the mean per-series scores (a one-series run has no key)
    # quantile forecasts (uncertainty.score_levels): levels, scores and per horizon step; absent without them
    uncertainty: dict[str, Any] | None = None

    @property
    def metrics(self) -> dict[str, float]:
        return self.scores.metrics

    @property
    def baselines(self) -> dict[str, dict[str, float]]:
        return self.scores.baselines

    def mlflow_metrics(self) -> dict[str, float]:
        """The finite scores as MLflow metric names: ``mae``, ..., ``naive/mae``, ``seasonal_naive/mae``, ..."""
        flat = dict(self.metrics)
        for name, scores in self.baselines.items():
            flat.update({f"{name}/{k}": v for k, v in scores.items()})
        if self.panel is not None:
            flat.update(self.panel.mlflow_metrics())
        for name, scores in (self.uncertainty or {}).get("scores", {}).items():
            flat.update({k if name == "model" else f"{name}/{k}": v for k, v in scores.items()})
        return {k: float(v) for k, v in flat.items() if math.isfinite(v)}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.SCHEMA,
            "run_id": self.run_id,
            **dataclasses.asdict(self.scores),
            "training": dataclasses.asdict(self.training),
            "windows": self.windows,
            "windows_dropped": self.windows_dropped,
            **({} if self.panel is None else {"panel": dataclasses.asdict(self.panel)}),
            **({} if self.uncertainty is None else {"uncertainty": self.uncertainty}),
        }

    @classmethod
    def from_json(cls, data: Any, path: Path) -> EvalResult:
        d = check_version(data, path, "schema_version", cls.SCHEMA)
        return _build(
            path,
            lambda: cls(
                run_id=d["run_id"],
                scores=Scores(**{k: d[k] for k in _fields(Scores)}),
                training=TrainingSummary(**d["training"]),
                windows=d.get("windows", {}),
                windows_dropped=d.get("windows_dropped", {}),
                panel=PanelScores(**d["panel"]) if "panel" in d else None,
                uncertainty=d.get("uncertainty"),
            ),
        )


@dataclass(frozen=True)
class ServingSettings:
    """serving.json: what a forecaster needs besides the preprocessor and the checkpoint.

    Written at train time (and into the pyfunc model), so serving never re-reads ``config.yaml``.
    """

    FORMAT: ClassVar[str] = "splineforecast.serving.v1"

    run_id: str
    target: str
    covariates: list[dict[str, str]]
    freq: str
    time_column: str
    time_format: str | None
    lookback: int
    horizon: int
    version: str = ""  # the splineforecast version that trained the run
    series_column: str | None = None  # a panel: the history's series id column (one-series serving.json has none)
    wide: list[str] | None = None  # a panel of a wide table's columns: those columns, one series each
    quantiles: list[float] | None = None  # the levels of the forecast's `<target>_q<level>` columns; none: no key

    def to_json(self) -> dict[str, Any]:
        out = {"format": self.FORMAT, **dataclasses.asdict(self)}
        return {k: v for k, v in out.items() if v is not None or k not in ("series_column", "wide", "quantiles")}

    @classmethod
    def from_json(cls, data: Any, path: Path) -> ServingSettings:
        d = check_version(data, path, "format", cls.FORMAT)
        optional = ("version", "series_column", "wide", "quantiles")
        return _build(path, lambda: cls(**{k: d[k] for k in _fields(cls) if k in d or k not in optional}))


@dataclass(frozen=True)
class Calibration:
    """calibration.json (``model.calibration=conformal``): per-step offsets of each level, scaled space.

    ``method`` is ``cqr_relative`` (conformalised trained quantiles, offsets in widths of each window's
    interval), ``cqr`` (the same, offsets additive) or ``split`` (intervals around the point forecast,
    additive); ``offsets[k][h]`` moves level ``levels[k]`` at horizon step ``h + 1``; ``n_points[h]`` counts
    the observed val points that step was calibrated on. ``window`` (``model.calibration_window``) makes the
    calibration rolling: each forecast origin is calibrated anew on the last ``window`` windows whose truth
    was observed before it, and the offsets here are those of the last ``window`` val windows (what the
    first origin after val uses, and a forecast whose history is too short to recalibrate); None: fixed.
    """

    FORMAT: ClassVar[str] = "splineforecast.calibration.v1"

    run_id: str
    method: str
    levels: list[float]
    offsets: list[list[float]]
    n_points: list[int]
    window: int | None = None  # absent in files written before rolling calibration: fixed

    def to_json(self) -> dict[str, Any]:
        return {"format": self.FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Calibration:
        d = check_version(data, path, "format", cls.FORMAT, required=True)
        return _build(path, lambda: cls(**{k: d[k] for k in _fields(cls) if k in d or k != "window"}))


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]
