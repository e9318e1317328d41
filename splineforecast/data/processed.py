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
    targets_raw: np.ndarray | None = None  # (T, n_targets) float64, original units, NaN if unobserved


def write_processed(path: Path, p: Processed) -> None:
    artifacts.write_npz(
        path,
        values=p.values.astype(np.float32),
        observed_mask=p.observed_mask.astype(bool),
        timestamps=p.timestamps.astype(np.int64),
        feature_names=np.asarray(p.feature_names, dtype=np.str_),
        target_indices=np.asarray(p.target_indices, dtype=np.int64),
        **({} if p.targets_raw is None else {"targets_raw": p.targets_raw.astype(np.float64)}),
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
            targets_raw = npz["targets_raw"] if "targets_raw" in npz.files else None
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
        targets_raw=targets_raw,
    )
    _check_arrays(path, p)
    return p


def _check_arrays(path: Path, p: Processed) -> None:
    """Shapes agree (INPUT_SHAPE_ERROR); values are finite where observed (ARTIFACT_CONTRACT_ERROR)."""
    if p.values.ndim != 2:
        raise ContractError(ErrorCode.INPUT_SHAPE_ERROR, f"`{path}`: values must be 2-D (T x F), got {p.values.shape}")
    t, f = p.values.shape
    if p.observed_mask.shape != (t, f) or p.timestamps.shape != (t,) or len(p.feature_names) != f:
        raise ContractError(
            ErrorCode.INPUT_SHAPE_ERROR,
            f"`{path}`: values {p.values.shape}, observed_mask {p.observed_mask.shape}, "
            f"timestamps {p.timestamps.shape} and {len(p.feature_names)} feature_names disagree",
        )
    if not p.target_indices or not all(0 <= i < f for i in p.target_indices):
        raise ContractError(
            ErrorCode.INPUT_SHAPE_ERROR,
            f"`{path}`: target_indices {p.target_indices} out of range for {f} features",
        )
    if p.targets_raw is not None and p.targets_raw.shape != (t, len(p.target_indices)):
        raise ContractError(
            ErrorCode.INPUT_SHAPE_ERROR,
            f"`{path}`: targets_raw {p.targets_raw.shape} disagrees with {t} rows x {len(p.target_indices)} targets",
        )
    if p.values.dtype.kind != "f" or p.observed_mask.dtype != bool:
        raise ContractError(
            ErrorCode.ARTIFACT_CONTRACT_ERROR,
            f"`{path}`: values must be float and observed_mask bool, got {p.values.dtype} and {p.observed_mask.dtype}",
        )
    if np.isinf(p.values).any() or np.isnan(p.values[p.observed_mask]).any():
        raise ContractError(
            ErrorCode.ARTIFACT_CONTRACT_ERROR,
            f"`{path}`: values hold infinities or NaN at observed points; re-run stage=preprocess",
        )


def split_contract(run_id: str, split: Split, timestamps: np.ndarray, lookback: int, horizon: int) -> dict[str, Any]:
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


def split_from_contract(contract: dict[str, Any], n_rows: int | None = None) -> Split:
    """Read the Split back from a split contract; refuse a wrong schema or bad boundaries."""
    version = contract.get("schema_version") if isinstance(contract, dict) else None
    if version != SPLIT_SCHEMA:
        raise ContractError(
            ErrorCode.ARTIFACT_CONTRACT_ERROR,
            f"split_contract.json schema_version is {version!r}, expected {SPLIT_SCHEMA!r}; re-run stage=preprocess",
        )
    try:
        bounds = {k: (int(contract[k]["start"]), int(contract[k]["stop"])) for k in ("train", "val", "test")}
    except (KeyError, TypeError, ValueError) as exc:
        raise ContractError(
            ErrorCode.ARTIFACT_CONTRACT_ERROR, f"split_contract.json lacks part boundaries: {exc}"
        ) from exc
    split = Split(**bounds)
    if not (0 == split.train[0] < split.train[1] == split.val[0] < split.val[1] == split.test[0] < split.test[1]):
        raise ContractError(
            ErrorCode.ARTIFACT_CONTRACT_ERROR,
            f"split_contract.json boundaries are not contiguous and time-ordered: {split.parts()}",
        )
    if n_rows is not None and split.n_rows > n_rows:
        raise ContractError(
            ErrorCode.ARTIFACT_CONTRACT_ERROR,
            f"split_contract.json ends at row {split.n_rows} but processed.npz has {n_rows} rows",
        )
    return split
