"""Read the table of observations into a frame with a regular, sorted DatetimeIndex."""

from __future__ import annotations

import codecs
import csv
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from splineforecast import bounds
from splineforecast.errors import ContractError, ErrorCode


@dataclass(frozen=True)
class ReadLimits:
    """The caps of a data file (``data.max_bytes``, ``data.max_rows``, ``data.max_columns``)."""

    max_bytes: int = bounds.MAX_BYTES
    max_rows: int = bounds.MAX_ROWS
    max_columns: int = bounds.MAX_COLUMNS

    @classmethod
    def of(cls, data: Any) -> ReadLimits:
        """The caps a ``DataConfig`` sets."""
        return cls(data.max_bytes, data.max_rows, data.max_columns)


DEFAULT_LIMITS = ReadLimits()


def resolve_path(path: str | None, bundled: str | None) -> Path:
    """The file to read: ``path`` when given, else the bundled data set ``bundled``.

    Raises:
        ContractError: FILE_NOT_FOUND when the file is missing or is a directory;
            CONFIG_ERROR when neither is given.
    """
    if path:
        p = Path(path).expanduser()
        if not p.exists():
            raise ContractError(
                ErrorCode.FILE_NOT_FOUND,
                f"data file `{path}` does not exist; set data.path to an existing CSV file",
                "FileNotFoundError",
            )
        if not p.is_file():
            raise ContractError(
                ErrorCode.FILE_NOT_FOUND,
                f"data.path `{path}` is a directory, not a file; point it at a CSV file",
                "IsADirectoryError",
            )
        return p
    if bundled:
        p = Path(str(resources.files("splineforecast") / "datasets" / bundled))
        if not p.is_file():
            raise ContractError(
                ErrorCode.FILE_NOT_FOUND,
                f"bundled data set `{bundled}` is not in splineforecast/datasets",
                "FileNotFoundError",
            )
        return p
    raise ContractError(ErrorCode.CONFIG_ERROR, "no data file: set data.path=/path/to/file.csv")


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def text_problem(block: bytes, final: bool = True) -> tuple[int, str] | None:
    """Why ``block`` (the start of a file) is not UTF-8 text: ``(line, reason)`` of the first NUL byte or
    invalid UTF-8 sequence, lines counted from 1; None for text. ``final=False``: more of the file follows,
    so a multi-byte character cut at the block's end is not a fault."""
    nul = block.find(b"\0")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(block if nul < 0 else block[:nul], final=final or nul >= 0)
    except UnicodeDecodeError as exc:
        bad = block[exc.start : exc.end]
        return block.count(b"\n", 0, exc.start) + 1, f"is not valid UTF-8 (byte {bad[:1].hex()} at offset {exc.start})"
    if nul >= 0:
        return block.count(b"\n", 0, nul) + 1, f"holds a NUL byte (at offset {nul})"
    return None


def check_file(path: Path, limits: ReadLimits = DEFAULT_LIMITS, delimiter: str = ",") -> None:
    """Refuse a data file before parsing it: larger than ``max_bytes`` (by ``stat``), not text in its first
    block (a NUL byte or invalid UTF-8), or a header of more than ``max_columns`` columns.

    Raises:
        ContractError: INPUT_SHAPE_ERROR for a cap, naming both sizes and the key; DATA_SCHEMA_ERROR for a
            file that is not text, naming the line.
    """
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise ContractError(
            ErrorCode.INPUT_SHAPE_ERROR,
            f"data file `{path}` is {bounds.human_bytes(size)}, above data.max_bytes "
            f"({bounds.human_bytes(limits.max_bytes)}); give a smaller file, or raise data.max_bytes=N "
            "if the machine can hold it",
        )
    with path.open("rb") as fh:
        block = fh.read(bounds.SNIFF_BYTES)
    problem = text_problem(block, final=len(block) < bounds.SNIFF_BYTES)
    if problem is not None:
        line, reason = problem
        raise ContractError(
            ErrorCode.DATA_SCHEMA_ERROR,
            f"data file `{path}` is not a UTF-8 text file: line {line} {reason}; "
            "point data.path at a CSV file saved as UTF-8",
            "UnicodeDecodeError",
        )
    if len(delimiter) == 1:  # a regular-expression separator is counted once parsed (read_csv)
        header = block.decode("utf-8-sig", errors="ignore").splitlines()[:1]
        _check_columns(path, len(next(csv.reader(header, delimiter=delimiter), [])), limits.max_columns)


def _check_columns(path: Path, n_columns: int, max_columns: int) -> None:
    if n_columns > max_columns:
        raise ContractError(
            ErrorCode.INPUT_SHAPE_ERROR,
            f"data file `{path}` has {n_columns} columns, above data.max_columns ({max_columns}); "
            "drop the columns the run does not use, or raise data.max_columns=N",
        )


def read_csv(path: Path, delimiter: str = ",", limits: ReadLimits = DEFAULT_LIMITS) -> pd.DataFrame:
    """Read a whole CSV file as text cells (parsing is ``schema.py``'s job); BOM tolerated.

    The file is checked first (:func:`check_file`); at most ``limits.max_rows`` rows are read.

    Raises:
        ContractError: INPUT_SHAPE_ERROR above a cap; DATA_SCHEMA_ERROR for an empty, unreadable or
            binary file, or one whose single column looks separated by another delimiter.
    """
    check_file(path, limits, delimiter)
    try:
        frame = pd.read_csv(path, encoding="utf-8-sig", dtype=str, sep=delimiter, nrows=limits.max_rows + 1)
    except pd.errors.EmptyDataError as exc:
        raise ContractError(
            ErrorCode.DATA_SCHEMA_ERROR,
            f"data file `{path}` is empty; supply a header and rows",
            "EmptyDataError",
        ) from exc
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ContractError(
            ErrorCode.DATA_SCHEMA_ERROR, f"data file `{path}` is not a readable UTF-8 CSV: {exc}"
        ) from exc
    _check_columns(path, len(frame.columns), limits.max_columns)  # a header longer than the first block
    if len(frame) > limits.max_rows:
        raise ContractError(
            ErrorCode.INPUT_SHAPE_ERROR,
            f"data file `{path}` has more than data.max_rows ({limits.max_rows}) rows; "
            "give a shorter file, or raise data.max_rows=N",
        )
    if len(frame.columns) == 1:
        header = str(frame.columns[0])
        for other in (";", "\t", "|", ","):
            if other != delimiter and other in header:
                raise ContractError(
                    ErrorCode.DATA_SCHEMA_ERROR,
                    f"data file `{path}` has one column named {header!r}: it looks {other!r}-separated; "
                    f"set data.delimiter='{other}'",
                )
    return frame


def select(frame: pd.DataFrame, path: Path, time_column: str, columns: list[str]) -> pd.DataFrame:
    """The time column and ``columns`` of ``frame``; refuse names the file lacks."""
    missing = [c for c in [time_column, *columns] if c not in frame.columns]
    if missing:
        raise ContractError(
            ErrorCode.DATA_SCHEMA_ERROR,
            f"column(s) {missing} not in `{path}`; available columns: {list(frame.columns)}. "
            "Set data.time_column, data.target and covariate.dynamic/static to existing names",
        )
    return frame[[time_column, *columns]]


def read_table(
    path: Path, time_column: str, columns: list[str], delimiter: str = ",", limits: ReadLimits = DEFAULT_LIMITS
) -> pd.DataFrame:
    """Read ``time_column`` and ``columns`` of a CSV file (text cells)."""
    return select(read_csv(path, delimiter, limits), path, time_column, columns)
