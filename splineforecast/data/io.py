"""Read the table of observations into a frame with a regular, sorted DatetimeIndex."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import pandas as pd

from splineforecast.errors import ContractError, ErrorCode


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


def read_csv(path: Path, delimiter: str = ",") -> pd.DataFrame:
    """Read a whole CSV file as text cells (parsing is ``schema.py``'s job); BOM tolerated.

    Raises:
        ContractError: DATA_SCHEMA_ERROR for an empty or unreadable file, or one whose single
            column looks separated by another delimiter.
    """
    try:
        frame = pd.read_csv(path, encoding="utf-8-sig", dtype=str, sep=delimiter)
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


def read_table(path: Path, time_column: str, columns: list[str], delimiter: str = ",") -> pd.DataFrame:
    """Read ``time_column`` and ``columns`` of a CSV file (text cells)."""
    return select(read_csv(path, delimiter), path, time_column, columns)
