"""The processed artifacts that hand preprocessing over to training.

``processed.npz`` (arrays), ``meta.json`` (provenance) and ``split_contract.json``
(the split), each carrying the run_id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splineforecast import artifacts
from splineforecast.data.splits import Split
from splineforecast.errors import ContractError, ErrorCode

SPLIT_SCHEMA = "phase1.split_contract.v1"
NPZ_KEYS = ("values", "observed_mask", "timestamps", "feature_names", "target_indices")


@dataclass
class Processed:
    values: np.ndarray  # (T, F) float32, filled and scaled
    observed_mask: np.ndarray  # (T, F) bool
    timestamps: np.ndarray  # (T,) int64 ns since the epoch
    feature_names: list[str]
    target_indices: list[int]


def write_processed(path: Path, p: Processed) -> None:
    artifacts.write_npz(
        path,
        values=p.values.astype(np.float32),
        observed_mask=p.observed_mask.astype(bool),
        timestamps=p.timestamps.astype(np.int64),
        feature_names=np.asarray(p.feature_names, dtype=np.str_),
        target_indices=np.asarray(p.target_indices, dtype=np.int64),
    )


def read_processed(path: Path) -> Processed:
    """Load processed.npz without pickle; refuse missing keys or disagreeing shapes."""
    if not path.is_file():
        raise ContractError(
            ErrorCode.FILE_NOT_FOUND,
            f"processed artifact `{path}` does not exist; run stage=preprocess first",
            "FileNotFoundError",
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise ContractError(
                    ErrorCode.ARTIFACT_CONTRACT_ERROR,
                    f"`{path}` lacks key(s) {missing}; re-run stage=preprocess",
                )
            arrays = {k: npz[k] for k in NPZ_KEYS}
    except (ValueError, OSError) as exc:
        raise ContractError(
            ErrorCode.ARTIFACT_CONTRACT_ERROR, f"`{path}` is not a readable npz without pickle: {exc}"
        ) from exc
    p = Processed(
        values=arrays["values"],
        observed_mask=arrays["observed_mask"],
        timestamps=arrays["timestamps"],
        feature_names=[str(n) for n in arrays["feature_names"]],
        target_indices=[int(i) for i in arrays["target_indices"]],
    )
    t, f = p.values.shape
    if p.observed_mask.shape != (t, f) or p.timestamps.shape != (t,) or len(p.feature_names) != f:
        raise ContractError(
            ErrorCode.INPUT_SHAPE_ERROR,
            f"`{path}`: values {p.values.shape}, observed_mask {p.observed_mask.shape}, "
            f"timestamps {p.timestamps.shape} and {len(p.feature_names)} feature_names disagree",
        )
    return p


def split_contract(
    run_id: str, split: Split, timestamps: np.ndarray, lookback: int, horizon: int
) -> dict[str, Any]:
    """The split contract: row boundaries and first/last timestamps of each part."""
    stamps = timestamps.astype("datetime64[ns]")
    parts = {
        name: {"start": a, "stop": b, "first": str(stamps[a]), "last": str(stamps[b - 1])}
        for name, (a, b) in split.parts().items()
    }
    return {
        "schema_version": SPLIT_SCHEMA,
        "run_id": run_id,
        **parts,
        "lookback": lookback,
        "horizon": horizon,
    }


def split_from_contract(contract: dict[str, Any]) -> Split:
    """Read the Split back from a split contract; refuse a wrong schema or bad boundaries."""
    if contract.get("schema_version") != SPLIT_SCHEMA:
        raise ContractError(
            ErrorCode.ARTIFACT_CONTRACT_ERROR,
            f"split_contract.json schema_version is {contract.get('schema_version')!r}, "
            f"expected {SPLIT_SCHEMA!r}; re-run stage=preprocess",
        )
    try:
        bounds = {k: (int(contract[k]["start"]), int(contract[k]["stop"])) for k in ("train", "val", "test")}
    except (KeyError, TypeError, ValueError) as exc:
        raise ContractError(
            ErrorCode.ARTIFACT_CONTRACT_ERROR, f"split_contract.json lacks part boundaries: {exc}"
        ) from exc
    return Split(**bounds)
