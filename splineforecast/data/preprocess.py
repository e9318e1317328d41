"""The Preprocessor: covariate encoding, gap filling per split part, scaling fitted on train.

It saves itself as JSON (parameters + fitted state + run_id + version), never pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from splineforecast import __version__
from splineforecast.data.covariates import Covariate, CovariateEncoder
from splineforecast.data.scaling import fit_scaler, scaler_from_state, scaler_state
from splineforecast.data.splines import SplineGapFiller, fill_parts
from splineforecast.data.splits import Split
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.records import PREPROCESSOR_FORMAT

FORMAT = PREPROCESSOR_FORMAT


@dataclass
class Transformed:
    """Filled and scaled values with the mask of observed (not imputed) points."""

    values: np.ndarray  # (T, F) float32, scaled; NaN where a gap was left unfilled
    observed_mask: np.ndarray  # (T, F) bool
    n_imputed: dict[str, int]


class Preprocessor:
    """Encode covariates, fill gaps and scale: target first, then the covariate features.

    Numeric columns are filled with the configured spline; boolean and one-hot columns hold
    their previous state. Each part of the split is filled on its own.

    Args:
        target: the target column.
        covariates: declared covariates as dicts of ``name``, ``role``, ``type``.
        spline: keyword arguments of :class:`SplineGapFiller` for numeric features
            (``kind``, ``max_gap``, ``lam``, ``smooth_observed``).
        freq: the frequency of the time grid.
        run_id: the run this preprocessor belongs to.
    """

    def __init__(
        self,
        target: str,
        covariates: list[dict[str, str]],
        spline: dict[str, Any],
        freq: str,
        run_id: str,
    ) -> None:
        self.target, self.covariates, self.spline = target, list(covariates), dict(spline)
        self.freq, self.run_id = freq, run_id

    @classmethod
    def fitted(
        cls, params: dict[str, Any], run_id: str, encoder: CovariateEncoder, scaler: StandardScaler
    ) -> Preprocessor:
        """A fitted Preprocessor from its parts (a panel's series share ``encoder``, each has its scaler)."""
        pre = cls(run_id=run_id, **params)
        pre.encoder_, pre.scaler_ = encoder, scaler
        return pre

    def _require_fitted(self) -> None:
        if not hasattr(self, "scaler_"):
            raise RuntimeError("Preprocessor is not fitted; call fit() first")

    @property
    def feature_names(self) -> list[str]:
        self._require_fitted()
        return [self.target, *self.encoder_.feature_names]

    @property
    def target_index(self) -> int:
        return 0

    def raw_target(self, frame: pd.DataFrame, split: Split | None = None) -> np.ndarray:
        """The target as observed, in original units (NaN where missing): what metrics score."""
        rows = frame if split is None else frame.iloc[: split.n_rows]
        return rows[self.target].to_numpy(dtype=np.float64, na_value=np.nan)

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        """(T, F) float64: the target, then the encoded covariates (``feature_names``); NaN where missing."""
        target = frame[self.target].to_numpy(dtype=np.float64, na_value=np.nan)
        if not self.covariates:
            return target[:, None]
        return np.column_stack([target, self.encoder_.transform(frame).to_numpy(dtype=np.float64)])

    def fit(self, frame: pd.DataFrame, split: Split) -> Preprocessor:
        """Learn categories and scaling statistics from the observed values of the train part."""
        a, b = split.train
        train = frame.iloc[a:b]
        self.encoder_ = CovariateEncoder([Covariate(**c) for c in self.covariates]).fit(train)
        self.scaler_: StandardScaler = fit_scaler(self._encode(train))
        return self

    def _fill(self, encoded: np.ndarray, split: Split | None) -> np.ndarray:
        step = set(self.encoder_.step_features)
        smooth = SplineGapFiller(**self.spline).checked()
        held = SplineGapFiller("previous", self.spline["max_gap"]).checked()
        columns = [
            fill_parts(encoded[:, j], split, held if name in step else smooth)
            for j, name in enumerate(self.feature_names)
        ]
        return np.column_stack(columns)

    def transform(self, frame: pd.DataFrame, split: Split | None = None) -> Transformed:
        """Encode, fill (per part of ``split``, or ``frame`` as one part) and scale.

        Returns:
            The scaled values, the observed mask, and the number of imputed points per feature.
        """
        self._require_fitted()
        encoded = self._encode(frame if split is None else frame.iloc[: split.n_rows])
        filled = self._fill(encoded, split)
        observed = ~np.isnan(encoded)
        imputed = ~np.isnan(filled) & ~observed
        values = self.scaler_.transform(filled).astype(np.float32)
        n_imputed = dict(zip(self.feature_names, imputed.sum(axis=0).tolist(), strict=True))
        return Transformed(values=values, observed_mask=observed, n_imputed=n_imputed)

    def inverse_target(self, scaled: np.ndarray) -> np.ndarray:
        """Scaled target values -> original units."""
        i = self.target_index
        return scaled * self.scaler_.scale_[i] + self.scaler_.mean_[i]

    def to_json(self) -> dict[str, Any]:
        self._require_fitted()
        return {
            "format": FORMAT,
            "version": __version__,
            "run_id": self.run_id,
            "params": {
                "target": self.target,
                "covariates": self.covariates,
                "spline": self.spline,
                "freq": self.freq,
            },
            "feature_names": self.feature_names,
            "categories": self.encoder_.categories_,
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
        try:
            pre = cls(run_id=state["run_id"], **state["params"])
            pre.encoder_ = CovariateEncoder.from_json({"covariates": pre.covariates, "categories": state["categories"]})
            pre.scaler_ = scaler_from_state(state["scaler"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ContractError(
                ErrorCode.ARTIFACT_CONTRACT_ERROR,
                f"preprocessor state is incomplete: {exc}; re-run stage=preprocess",
            ) from exc
        return pre
