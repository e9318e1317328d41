"""Uploaded data sets: a CSV checked by the CLI's own table checks, stored under the data root.

``POST /datasets`` sends ``{"name", "time_column", "target", "csv"}``. The CSV's size (UTF-8 bytes, at
most ``SPLINE_MAX_UPLOAD_BYTES``) is decided before it is parsed; then it goes through what
``python -m splineforecast`` runs on a table (``io.read_csv``, ``io.select``, ``schema.validate``, the
train part's checks), so a refusal is the CLI's ContractError, naming the column and the file line.

A table that passes is stored as ``<uuid>.csv`` (a generated name: nothing the client sends becomes a
path) and recorded in ``datasets.json`` beside it, both written atomically under a lock; a refusal
leaves neither. A job on it trains with the windows of the ``tiny`` data config and the overrides
:func:`upload_overrides` builds from the record, whose every string was checked on the way in.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from splineforecast.config import config_dir
from splineforecast.data import io, schema
from splineforecast.data.splits import time_splits
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.files import file_lock, read_json, write_bytes, write_json

NAME = r"^[a-z0-9_]{1,32}$"  # the data set names of TrainRequest.dataset
COLUMN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"  # a column name a job may be given (no quote, space or `$`)
FILE = r"^[0-9a-f]{32}\.csv$"  # the generated file name
FREQ = r"^[A-Za-z0-9-]{1,16}$"  # a pandas frequency alias, as schema.validate infers it
LIST_FILE = "datasets.json"
LIST_FORMAT = "splineforecast.datasets.v1"
UPLOAD_BASE = "tiny"  # the data config whose windows and split a job on an upload uses


class UploadRequest(BaseModel):
    """A CSV to keep as a data set: its name and the columns a job trains on."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME, description="the data set's name (lower-case letters, digits, `_`)")
    time_column: str = Field("date", pattern=COLUMN, description="the timestamp column (ISO 8601)")
    target: str = Field(pattern=COLUMN, description="the column to forecast")
    csv: str = Field(description="the CSV text: a header row, then one row per time step")

    @model_validator(mode="after")
    def _two_columns(self) -> UploadRequest:
        if self.time_column == self.target:
            raise ValueError(f"time_column and target are both {self.target!r}; name two different columns")
        return self


class Upload(BaseModel):
    """The record of a stored data set (one entry of ``datasets.json``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    file: str = Field(pattern=FILE)
    time_column: str = Field(pattern=COLUMN)
    target: str = Field(pattern=COLUMN)
    freq: str = Field(pattern=FREQ)
    rows: int
    columns: list[str]
    start: str
    end: str
    steps: int  # grid steps from start to end
    missing: int  # of them without a target value
    bytes: int
    sha256: str
    created: float

    def view(self) -> dict[str, Any]:
        """What the API shows of it (not where it is stored)."""
        return self.model_dump(exclude={"file"})


class UploadTooLarge(ValueError):
    """The CSV is over ``SPLINE_MAX_UPLOAD_BYTES`` (413)."""


class DatasetExists(ValueError):
    """The name is taken, by a configured or an uploaded data set (409)."""


def _base_split() -> tuple[float, float, float]:
    config = OmegaConf.load(config_dir() / "data" / f"{UPLOAD_BASE}.yaml")
    assert isinstance(config, DictConfig)
    split = config["split"]
    return float(split["train"]), float(split["val"]), float(split["test"])


def check_table(path: Path, body: UploadRequest, file: str) -> Upload:
    """The CLI's checks of the table at ``path`` for ``body``'s columns; its record, to be stored as ``file``.

    Raises:
        ContractError: the CLI's refusal, the file named as ``<name>.csv`` rather than its staging path.
    """
    try:
        table = io.read_csv(path)
        raw = io.select(table, path, body.time_column, [body.target])
        frame, freq, notes = schema.validate(raw, body.time_column, body.target, None)
        split = time_splits(len(frame), *_base_split())
        schema.check_train_columns(frame.iloc[split.train[0] : split.train[1]], body.target)
    except ContractError as exc:
        raise ContractError(exc.code, exc.message.replace(str(path), f"{body.name}.csv"), exc.type_name) from None
    data = path.read_bytes()
    if not re.fullmatch(FREQ, freq):  # pandas infers aliases such as W-SAT or 15min
        raise ContractError(ErrorCode.CONFIG_ERROR, f"the timestamps' frequency {freq!r} is not one a job can use")
    return Upload(
        name=body.name,
        file=file,
        time_column=body.time_column,
        target=body.target,
        freq=freq,
        rows=int(notes["rows"]),
        columns=[str(c) for c in table.columns],
        start=frame.index[0].isoformat(),
        end=frame.index[-1].isoformat(),
        steps=len(frame),
        missing=int(frame[body.target].isna().sum()),
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        created=time.time(),
    )


class DatasetStore:
    """The uploaded data sets under ``root``: ``<uuid>.csv`` files and their list, ``datasets.json``."""

    def __init__(self, root: Path, configured: Collection[str], max_upload: int) -> None:
        self.root, self.configured, self.max_upload = root, frozenset(configured), max_upload
        self.list_path = root / LIST_FILE

    def list(self) -> list[Upload]:
        """The uploaded data sets, by name."""
        if not self.list_path.is_file():
            return []
        try:
            data = read_json(self.list_path)
            if data.get("format") != LIST_FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            found = [Upload.model_validate(entry) for entry in data["datasets"]]
        except (ValueError, TypeError, KeyError, AttributeError, ValidationError) as exc:
            raise ContractError(
                ErrorCode.ARTIFACT_CONTRACT_ERROR,
                f"the data set list `{LIST_FILE}` of the data root is not a valid {LIST_FORMAT} file "
                f"({type(exc).__name__}); restore it or move it away",
            ) from None
        return sorted(found, key=lambda u: u.name)

    def get(self, name: str) -> Upload | None:
        return next((u for u in self.list() if u.name == name), None)

    def path(self, upload: Upload) -> Path:
        return self.root / upload.file

    def _check_free(self, name: str) -> None:
        if name in self.configured or self.get(name) is not None:
            raise DatasetExists(f"a data set named {name!r} exists already; choose another name")

    def add(self, body: UploadRequest) -> Upload:
        """Check ``body``'s CSV (its size first) and store it; on any refusal nothing stays written.

        Raises:
            UploadTooLarge, DatasetExists, ContractError: the refusals, in that order.
        """
        try:
            data = body.csv.encode("utf-8")
        except UnicodeEncodeError:
            raise ContractError(ErrorCode.DATA_SCHEMA_ERROR, "the CSV is not valid Unicode text") from None
        if len(data) > self.max_upload:
            raise UploadTooLarge(
                f"the CSV is {len(data)} bytes; at most {self.max_upload} (SPLINE_MAX_UPLOAD_BYTES) are accepted"
            )
        self._check_free(body.name)
        file = uuid.uuid4().hex + ".csv"
        staged = self.root / f".{file}.part"
        write_bytes(staged, data)
        try:
            record = check_table(staged, body, file)
            with file_lock(self.root / ".datasets.lock"):
                self._check_free(body.name)  # again: another upload may have taken it meanwhile
                kept = [u.model_dump() for u in self.list()]
                os.replace(staged, self.root / file)
                try:
                    write_json(self.list_path, {"format": LIST_FORMAT, "datasets": [*kept, record.model_dump()]})
                except BaseException:
                    (self.root / file).unlink(missing_ok=True)
                    raise
        finally:
            staged.unlink(missing_ok=True)
        return record


def upload_overrides(upload: Upload, path: Path) -> list[str]:
    """The data overrides of a job on ``upload`` (stored at ``path``): every value from the checked record."""
    quoted = {key: json.dumps(value) for key, value in upload.model_dump().items() if isinstance(value, str)}
    return [
        f"data={UPLOAD_BASE}",
        f"data.name={quoted['name']}",
        f"data.path={json.dumps(str(path))}",
        "data.bundled=null",
        f"data.time_column={quoted['time_column']}",
        f"data.target={quoted['target']}",
        f"data.freq={quoted['freq']}",
    ]
