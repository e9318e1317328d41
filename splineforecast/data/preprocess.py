"""The Preprocessor: spline filling per split part, then scaling fitted on train.

It saves itself as JSON (parameters + fitted statistics + run_id + version), never pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from splineforecast import __version__
from splineforecast.data.scaling import fit_scaler, scaler_from_state, scaler_state
from splineforecast.data.splines import SplineGapFiller, fill_by_part
from splineforecast.data.splits import Split
from splineforecast.errors import ContractError, ErrorCode

FORMAT = "splineforecast.preprocessor.v1"


@dataclass
class Transformed:
    """Filled and scaled values with the mask of observed (not imputed) points."""

    values: np.ndarray  # (T, F) float32, scaled; NaN where a gap was left unfilled
    observed_mask: np.ndarray  # (T, F) bool
    n_imputed: dict[str, int]


class Preprocessor:
    """Spline gap filling and standard scaling of a frame of features.

    Args:
        feature_names: columns in model order (targets first).
        target: the target column.
        spline_kind, max_gap: passed to :class:`SplineGapFiller`.
        freq: the frequency of the time grid.
        run_id: the run this preprocessor belongs to.
    """

    def __init__(
        self,
        feature_names: list[str],
        target: str,
        spline_kind: str,
        max_gap: int,
        freq: str,
        run_id: str,
    ) -> None:
        self.feature_names, self.target = list(feature_names), target
        self.spline_kind, self.max_gap = spline_kind, max_gap
        self.freq, self.run_id = freq, run_id

    @property
    def filler(self) -> SplineGapFiller:
        return SplineGapFiller(self.spline_kind, self.max_gap).fit(pd.DataFrame(columns=self.feature_names))

    @property
    def target_index(self) -> int:
        return self.feature_names.index(self.target)

    def fit(self, frame: pd.DataFrame, split: Split) -> Preprocessor:
        """Fit the scaler on the observed values of the train part only."""
        a, b = split.train
        self.scaler_: StandardScaler = fit_scaler(frame[self.feature_names].iloc[a:b].to_numpy())
        return self

    def transform(self, frame: pd.DataFrame, split: Split | None = None) -> Transformed:
        """Fill (per part of ``split``, or ``frame`` as one part) and scale.

        Returns:
            The scaled values, the observed mask, and the number of imputed points per column.
        """
        if not hasattr(self, "scaler_"):
            raise RuntimeError("Preprocessor is not fitted; call fit() first")
        raw = frame[self.feature_names]
        if split is not None:
            raw = raw.iloc[: split.n_rows]
            filled = fill_by_part(raw, split, self.filler)
        else:
            filled = self.filler.transform(raw)
        observed = raw.notna().to_numpy()
        imputed = filled.notna().to_numpy() & ~observed
        values = self.scaler_.transform(filled.to_numpy()).astype(np.float32)
        n_imputed = dict(zip(self.feature_names, imputed.sum(axis=0).tolist(), strict=True))
        return Transformed(values=values, observed_mask=observed, n_imputed=n_imputed)

    def inverse_target(self, scaled: np.ndarray) -> np.ndarray:
        """Scaled target values -> original units."""
        i = self.target_index
        return scaled * self.scaler_.scale_[i] + self.scaler_.mean_[i]

    def to_json(self) -> dict[str, Any]:
        if not hasattr(self, "scaler_"):
            raise RuntimeError("Preprocessor is not fitted; call fit() first")
        return {
            "format": FORMAT,
            "version": __version__,
            "run_id": self.run_id,
            "params": {
                "feature_names": self.feature_names,
                "target": self.target,
                "spline_kind": self.spline_kind,
                "max_gap": self.max_gap,
                "freq": self.freq,
            },
            "scaler": {"kind": "standard", **scaler_state(self.scaler_)},
        }

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> Preprocessor:
        """Rebuild a fitted Preprocessor; refuse an unknown format."""
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ContractError(
                ErrorCode.ARTIFACT_CONTRACT_ERROR,
                f"preprocessor format is not `{FORMAT}`; re-run stage=preprocess",
            )
        pre = cls(run_id=state["run_id"], **state["params"])
        pre.scaler_ = scaler_from_state(state["scaler"])
        return pre
