"""processed.npz: the filled and scaled arrays that hand preprocessing over to training.

Its companions (meta.json, the split contract) are records of :mod:`splineforecast.records`;
:mod:`splineforecast.artifacts` says where each lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splineforecast.errors import ContractError, ErrorCode
from splineforecast.files import write_npz

NPZ_KEYS = ("values", "observed_mask", "timestamps", "feature_names", "target_indices")


@dataclass
class Processed:
    values: np.ndarray  # (T, F) float32, filled and scaled
    observed_mask: np.ndarray  # (T, F) bool
    timestamps: np.ndarray  # (T,) int64 ns since the epoch
    feature_names: list[str]
    target_indices: list[int]
    targets_raw: np.ndarray | None = None  # (T, n_targets) float64, original units, NaN if unobserved
    # a panel: the series lie end to end; series i is rows [offsets[i], offsets[i + 1])
    series_ids: list[str] | None = None
    offsets: np.ndarray | None = None  # (n_series + 1,) int64, 0 first and T last

    def series_rows(self, i: int) -> slice:
        """The rows of series ``i`` (the whole array for a one-series run)."""
        if self.offsets is None:
            return slice(0, len(self.values))
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))


def write_processed(path: Path, p: Processed) -> None:
    write_npz(
        path,
        values=p.values.astype(np.float32),
        observed_mask=p.observed_mask.astype(bool),
        timestamps=p.timestamps.astype(np.int64),
        feature_names=np.asarray(p.feature_names, dtype=np.str_),
        target_indices=np.asarray(p.target_indices, dtype=np.int64),
        **({} if p.targets_raw is None else {"targets_raw": p.targets_raw.astype(np.float64)}),
        **(
            {}
            if p.series_ids is None or p.offsets is None
            else {"series_ids": np.asarray(p.series_ids, dtype=np.str_), "series_offsets": p.offsets.astype(np.int64)}
        ),
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
            panel = "series_ids" in npz.files and "series_offsets" in npz.files
            ids = [str(i) for i in npz["series_ids"]] if panel else None
            offsets = npz["series_offsets"] if panel else None
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
        series_ids=ids,
        offsets=offsets,
    )
    _check_arrays(path, p)
    _check_offsets(path, p)
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


def _check_offsets(path: Path, p: Processed) -> None:
    """A panel's offsets start at 0, end at the last row, never decrease, one series per id."""
    if p.offsets is None or p.series_ids is None:
        return
    o = p.offsets
    if o.ndim != 1 or len(o) != len(p.series_ids) + 1 or o[0] != 0 or o[-1] != len(p.values) or (np.diff(o) <= 0).any():
        raise ContractError(
            ErrorCode.INPUT_SHAPE_ERROR,
            f"`{path}`: series_offsets must rise from 0 to {len(p.values)} with one step per series "
            f"({len(p.series_ids)} series_ids); re-run stage=preprocess",
        )
