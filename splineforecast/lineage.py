"""What a run's MLflow records say about where it came from, computed without MLflow (``tracking.py`` logs it).

* the data: the input table as an MLflow dataset (name, source path, digest, schema, rows) and the
  processed train/val/test parts as datasets with their context, from what the run already read;
* the model's input: the columns of the history the pyfunc model forecasts from, and an input example
  (the last ``lookback`` + a few rows of the train part of each of the first series);
* the code: the package version and, run from a git checkout, its commit (read from ``.git``, no ``git``);
* the registry keys ``tracking.register`` and ``tracking.alias``, checked at composition.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from splineforecast import __version__
from splineforecast.data.panel import WIDE_SERIES_COLUMN
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.uncertainty import quantile_columns

if TYPE_CHECKING:
    from splineforecast.artifacts import RunPaths
    from splineforecast.config import Config
    from splineforecast.contracts import PanelRawInputs, ProcessedInputs, RawInputs
    from splineforecast.records import Meta, ServingSettings

VERSION_TAG = "splineforecast.version"
GIT_COMMIT_TAG = "mlflow.source.git.commit"  # the tag MLflow itself sets (and its UI shows) for the source version
CONTEXT_TAG = "mlflow.data.context"  # the input tag the UI shows beside a dataset's name
TABLE_CONTEXT = "raw"  # the context of the input table; the processed parts are train, val and test
EXAMPLE_EXTRA = 4  # rows of the input example beyond the lookback
EXAMPLE_SERIES = 3  # series of a panel's input example
_REGISTRY_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "databricks-uc", "uc")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
_TYPES = {"numeric": "double", "categorical": "string", "boolean": "boolean"}  # covariate type -> MLflow type


def _config_error(message: str) -> ContractError:
    return ContractError(ErrorCode.CONFIG_ERROR, message)


def check_registry(register: str | None, alias: str | None, uri: str) -> None:
    """``tracking.register`` and ``tracking.alias`` are usable names, the alias has a model, and the store a registry.

    Raises:
        ContractError: CONFIG_ERROR naming the key, its value and the fix.
    """
    if alias is not None and register is None:
        raise _config_error(
            f"tracking.alias={alias} names a version of a registered model, but tracking.register is not set: "
            "add tracking.register=NAME, or unset tracking.alias"
        )
    if register is None:
        return
    if not _MODEL_NAME.match(register):
        raise _config_error(
            f"tracking.register={register!r} is not a model name: use letters, digits, '.', '_' and '-' "
            "(up to 128, starting with a letter or digit)"
        )
    if alias is not None and (not _ALIAS.match(alias) or alias.lower() == "latest" or re.match(r"^v\d+$", alias)):
        raise _config_error(
            f"tracking.alias={alias!r} is not an alias: use letters, digits, '_' and '-' (starting with a letter "
            "or '_'); `latest` and `v<number>` are MLflow's own version names"
        )
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""
    if scheme not in _REGISTRY_SCHEMES:
        raise _config_error(
            f"tracking.register={register} needs a model registry, which the file store `{uri}` has not: set "
            "tracking.uri (or MLFLOW_TRACKING_URI) to a database-backed store, e.g. sqlite:///mlruns/mlflow.db "
            "(the default), or an MLflow server"
        )


def source_tags() -> dict[str, str]:
    """The package version, and the commit of the git checkout the package runs from (none when installed)."""
    tags = {VERSION_TAG: __version__}
    commit = git_commit(Path(__file__).resolve().parent.parent)
    if commit:
        tags[GIT_COMMIT_TAG] = commit
    return tags


def git_commit(top: Path) -> str | None:
    """The commit checked out in ``top`` (``.git`` a folder, or a worktree's ``gitdir:`` file); None if unknown."""
    try:
        git = top / ".git"
        if git.is_file():
            git = (top / git.read_text().split("gitdir:", 1)[1].strip()).resolve()
        if not git.is_dir():
            return None
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head if re.fullmatch(r"[0-9a-f]{40,64}", head) else None
        ref = head.split(":", 1)[1].strip()
        common = git / (git / "commondir").read_text().strip() if (git / "commondir").is_file() else git
        for base in (git, common):
            if (base / ref).is_file():
                return (base / ref).read_text().strip()
        packed = common / "packed-refs"
        lines = packed.read_text().splitlines() if packed.is_file() else []
        return next((line.split()[0] for line in lines if line.endswith(" " + ref)), None)
    except (OSError, IndexError, UnicodeDecodeError):
        return None  # a source version is a record, never a reason to fail a run


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset input of a run: MLflow's dataset fields and the input's context."""

    name: str
    digest: str
    source: str  # the data file
    schema: list[tuple[str, str]]  # (column, MLflow type)
    rows: int
    context: str

    def fields(self) -> dict[str, str]:
        """The fields of MLflow's dataset entity, as its pandas datasets write them."""
        cols = [{"type": t, "name": n, "required": True} for n, t in self.schema]
        return {
            "name": self.name,
            "digest": self.digest,
            "source_type": "local",
            "source": json.dumps({"uri": self.source}),
            "schema": json.dumps({"mlflow_colspec": cols}),
            "profile": json.dumps({"num_rows": self.rows}),
        }


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:12]


def table_record(name: str, meta: Meta, time_column: str) -> DatasetRecord:
    """The input table as the run read it: its digest from the file's sha256 (meta.json) and the columns read."""
    covariates = meta.covariates
    columns = [(c, _TYPES.get(covariates.types.get(c, "numeric"), "double")) for c in covariates.dynamic]
    columns += [(c, _TYPES.get(covariates.types.get(c, "numeric"), "double")) for c in covariates.static]
    panel = meta.panel
    if panel is not None and panel.wide:
        schema = [(time_column, "datetime"), *((c, "double") for c in panel.wide), *columns]
    else:
        series = [] if panel is None else [(panel.series_column, "string")]
        schema = [*series, (time_column, "datetime"), (meta.target, "double"), *columns]
    digest = _digest(meta.source.sha256.encode(), json.dumps(schema).encode())
    return DatasetRecord(name, digest, meta.source.path, schema, meta.source.rows, TABLE_CONTEXT)


def split_records(name: str, inputs: ProcessedInputs) -> list[DatasetRecord]:
    """The processed train, val and test parts (filled and scaled features, each series' part in a panel)."""
    p = inputs.processed
    schema = [("timestamp", "datetime"), *((f, "double") for f in p.feature_names)]
    if p.series_ids is not None:
        schema.insert(0, ("series", "string"))
    records = []
    for part in ("train", "val", "test"):
        spans = [(offset + s.parts()[part][0], offset + s.parts()[part][1]) for offset, s in inputs.contract.segments]
        chunks = [b"%d" % len(spans)]
        for a, b in spans:
            chunks += [p.timestamps[a:b].tobytes(), np.ascontiguousarray(p.values[a:b]).tobytes()]
        rows = sum(b - a for a, b in spans)
        records.append(DatasetRecord(name, _digest(*chunks), inputs.meta.source.path, schema, rows, part))
    return records


def history_columns(settings: ServingSettings) -> list[str]:
    """The columns the pyfunc model's history must hold, in the order it lists them."""
    covariates = [c["name"] for c in settings.covariates]
    if settings.wide:
        return [settings.time_column, *settings.wide, *covariates]
    series = [settings.series_column] if settings.series_column else []
    return [*series, settings.time_column, settings.target, *covariates]


def model_signature(settings: ServingSettings) -> dict[str, str]:
    """The pyfunc model's signature, as MLmodel holds it: the history's columns, and the forecast's.

    Every history column is required; its cells are of type ``any``: text or numbers, empty where missing,
    timestamps as ISO 8601 or ``data.time_format`` text, which the model checks itself (exit 28 naming the row).
    """
    inputs = [{"type": "any", "name": c, "required": True} for c in history_columns(settings)]
    levels = quantile_columns(settings.target, settings.quantiles or [])
    outputs = [
        (settings.time_column, "datetime"),
        ("step", "long"),
        *((c, "double") for c in [settings.target, *levels]),
    ]
    series = settings.series_column or (WIDE_SERIES_COLUMN if settings.wide else None)  # a panel: per series
    outputs = [*([(series, "string")] if series else []), *outputs]
    cols = [{"type": t, "name": n, "required": True} for n, t in outputs]
    return {"inputs": json.dumps(inputs), "outputs": json.dumps(cols)}


def pip_requirements() -> list[str]:
    """The runtime requirements of the served model: this package and its own dependencies."""
    try:
        requires = importlib.metadata.requires("splineforecast") or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    return [f"splineforecast=={__version__}", *(r for r in requires if "extra ==" not in r)]


def _stamps(index: pd.DatetimeIndex, time_format: str | None) -> list[str]:
    """Timestamps written as the run reads them: ``time_format``, else ISO 8601 (the date alone at midnight)."""
    if time_format:
        return list(index.strftime(time_format))
    midnight = bool((index == index.normalize()).all())
    return list(index.strftime("%Y-%m-%d" if midnight else "%Y-%m-%dT%H:%M:%S"))


def _tail(frame: pd.DataFrame, train: tuple[int, int], n: int) -> pd.DataFrame:
    a, b = train
    return frame.iloc[max(a, b - n) : b]


def history_example(
    raw: RawInputs | PanelRawInputs | None,
    inputs: ProcessedInputs | None,
    time_column: str,
    time_format: str | None,
    lookback: int,
) -> pd.DataFrame | None:
    """The model's input example: the last ``lookback`` + a few rows of the train part as a history table (of
    the first few series of a panel). From the raw table when the run read it, else (stage=train) from the
    processed target in original units, which holds no covariates: None for a run with covariates."""
    from splineforecast.contracts import PanelRawInputs

    n = lookback + EXAMPLE_EXTRA
    if raw is None:
        return None if inputs is None else _processed_example(inputs, time_column, time_format, n)
    if not isinstance(raw, PanelRawInputs):
        tail = _tail(raw.frame, raw.split.train, n)
        out = tail.reset_index(drop=True).assign(**{time_column: _stamps(tail.index, time_format)})
        return out[[time_column, *raw.frame.columns]]
    table = raw.table
    if table.wide:  # one wide table: the first series' train tail, every series' value at those steps
        first = table.series[0]
        tail = _tail(first.frame, first.split.train, n)
        values = {s.id: s.frame[table.target].reindex(tail.index).to_numpy() for s in table.series}
        wide = pd.DataFrame({c: values.get(c, np.nan) for c in table.wide}, index=tail.index)
        rest = tail.drop(columns=[table.target])
        out = pd.concat([wide, rest], axis=1).reset_index(drop=True)
        return out.assign(**{time_column: _stamps(tail.index, time_format)})[[time_column, *wide, *rest.columns]]
    parts = []
    for s in table.series[:EXAMPLE_SERIES]:
        tail = _tail(s.frame, s.split.train, n)
        part = tail.reset_index(drop=True).assign(**{table.series_column: s.id})
        parts.append(part.assign(**{time_column: _stamps(tail.index, time_format)}))
    return pd.concat(parts, ignore_index=True)[[table.series_column, time_column, *table.series[0].frame.columns]]


def _processed_example(
    inputs: ProcessedInputs, time_column: str, time_format: str | None, n: int
) -> pd.DataFrame | None:
    p, meta = inputs.processed, inputs.meta
    if p.targets_raw is None or meta.covariates.dynamic or meta.covariates.static or (meta.panel and meta.panel.wide):
        return None
    parts = []
    for k, (offset, split) in enumerate(inputs.contract.segments[:EXAMPLE_SERIES]):
        a, b = split.train
        rows = slice(offset + max(a, b - n), offset + b)
        index = pd.DatetimeIndex(p.timestamps[rows].astype("datetime64[ns]"))
        part = pd.DataFrame({time_column: _stamps(index, time_format), meta.target: p.targets_raw[rows, 0]})
        if meta.panel is not None:
            part.insert(0, meta.panel.series_column, meta.panel.series_ids[k])
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def run_inputs(
    cfg: Config, paths: RunPaths, raw: RawInputs | PanelRawInputs | None, inputs: ProcessedInputs | None
) -> tuple[list[DatasetRecord], pd.DataFrame | None]:
    """The datasets of a run (the table; the processed parts once it trains) and its model's input example."""
    d = cfg.data
    meta = inputs.meta if inputs is not None else paths.processed().read_meta()  # stage=preprocess wrote it
    records = [table_record(d.name, meta, d.time_column)]
    if inputs is not None:
        records += split_records(d.name, inputs)
    return records, history_example(raw, inputs, d.time_column, d.time_format, d.lookback)
