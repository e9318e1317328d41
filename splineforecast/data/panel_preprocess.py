"""The PanelPreprocessor: the one-series Preprocessor applied per series, with shared covariate categories.

Categories are learned from the train parts of all series (so every series has the same feature columns);
scaling is fitted per series on its own train part (``per_series``) or once on all train parts
(``global``). Each series is filled per part exactly as one series is, so a panel of one series gives the
one-series arrays. Saved as JSON (``splineforecast.panel_preprocessor.v1``), never pickle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from splineforecast import __version__
from splineforecast.data.covariates import Covariate, CovariateEncoder
from splineforecast.data.panel import SeriesFrame
from splineforecast.data.preprocess import Preprocessor, Transformed
from splineforecast.data.scaling import fit_scaler, scaler_from_state, scaler_state, seasonal_mae
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.records import PANEL_PREPROCESSOR_FORMAT

FORMAT = PANEL_PREPROCESSOR_FORMAT
_T = TypeVar("_T")
_R = TypeVar("_R")
# mapper(fn, items) -> fn's results in the order of items, yielded as they come (see data.engine)
Mapper = Callable[[Callable[[_T], _R], Sequence[_T]], Iterable[_R]]


def serial_map(fn: Callable[[_T], _R], items: Sequence[_T]) -> Iterator[_R]:
    """``fn(x)`` for each of ``items`` in turn: the mapper of ``data.n_jobs=1``."""
    return (fn(x) for x in items)


@dataclass
class PanelTransformed:
    """All series' filled and scaled values end to end, with where each series starts."""

    values: np.ndarray  # (T, F) float32
    observed_mask: np.ndarray  # (T, F) bool
    offsets: np.ndarray  # (n_series + 1,) int64
    n_imputed: dict[str, int]


def _transform(job: tuple[Preprocessor, SeriesFrame]) -> Transformed:
    pre, s = job
    return pre.transform(s.frame, s.split)


def _job(pre: Preprocessor, s: SeriesFrame) -> tuple[Preprocessor, SeriesFrame]:
    """One series' work: its time index is dropped (transform reads values by row), which halves what
    travels to a worker process."""
    return pre, SeriesFrame(s.id, s.frame.set_axis(pd.RangeIndex(len(s.frame))), s.split)


class PanelPreprocessor:
    """Encode, fill and scale every series of a panel.

    Args:
        target: the target column of every series.
        covariates: declared covariates as dicts of ``name``, ``role``, ``type``.
        spline: the :class:`SplineGapFiller` settings.
        freq: the time grid.
        run_id: the run it belongs to.
        series_column: the column holding series ids.
        scaler: ``per_series``, ``per_series_mase`` (the target's scale is the series' in-sample
            seasonal-naive MAE at ``season_length``, so a scaled error is a MASE-like error) or ``global``.
        season_length: the seasonal lag of ``per_series_mase``.
    """

    def __init__(
        self,
        target: str,
        covariates: list[dict[str, str]],
        spline: dict[str, Any],
        freq: str,
        run_id: str,
        series_column: str,
        scaler: str = "per_series",
        season_length: int = 0,
    ) -> None:
        self.target, self.covariates, self.spline, self.freq = target, list(covariates), dict(spline), freq
        self.run_id, self.series_column, self.scaler = run_id, series_column, scaler
        self.season_length = season_length

    @property
    def per_series(self) -> bool:
        """Whether every series has its own scaling statistics."""
        return self.scaler != "global"

    @property
    def params(self) -> dict[str, Any]:
        """The one-series Preprocessor's parameters."""
        return {"target": self.target, "covariates": self.covariates, "spline": self.spline, "freq": self.freq}

    def fit(self, series: Sequence[SeriesFrame]) -> PanelPreprocessor:
        """Categories from all train parts; scaling statistics per series (or pooled), train parts only."""
        trains = [s.frame.iloc[s.split.train[0] : s.split.train[1]] for s in series]
        categorical = [c["name"] for c in self.covariates if c["type"] == "categorical"]
        pooled_categories = pd.concat([t[categorical] for t in trains]) if categorical else pd.DataFrame()
        encoder = CovariateEncoder([Covariate(**c) for c in self.covariates]).fit(pooled_categories)
        probe = Preprocessor.fitted(self.params, self.run_id, encoder, StandardScaler())
        if self.per_series:  # one train part in memory at a time
            scalers = [self._fit_one(probe._encode(t)) for t in trains]
        else:
            scalers = [fit_scaler(np.concatenate([probe._encode(t) for t in trains]))]
        self._set(encoder, scalers, [s.id for s in series])
        return self

    def _fit_one(self, encoded: np.ndarray) -> StandardScaler:
        """One series' scaler; with ``per_series_mase`` the target's scale is its seasonal-naive MAE (kept
        as the standard deviation where that is 0 or undefined: a constant or too short train part)."""
        scaler = fit_scaler(encoded)
        if self.scaler == "per_series_mase":
            target = encoded[:, self.target_index]
            mae = seasonal_mae(target, ~np.isnan(target), self.season_length)
            if np.isfinite(mae) and mae > 0:
                scaler.scale_[self.target_index] = mae
        return scaler

    def _set(self, encoder: CovariateEncoder, scalers: list[StandardScaler], ids: list[str]) -> None:
        self.encoder_, self.scalers_, self.series_ids_ = encoder, scalers, ids
        self._index = {sid: i for i, sid in enumerate(ids)}

    def _require_fitted(self) -> None:
        if not hasattr(self, "scalers_"):
            raise RuntimeError("PanelPreprocessor is not fitted; call fit() first")

    @property
    def feature_names(self) -> list[str]:
        self._require_fitted()
        return [self.target, *self.encoder_.feature_names]

    @property
    def target_index(self) -> int:
        return 0

    def index(self, series_id: str) -> int | None:
        """The position of ``series_id`` among the trained series, None when it was not trained."""
        self._require_fitted()
        return self._index.get(series_id)

    def member(self, i: int) -> Preprocessor:
        """The fitted one-series Preprocessor of series ``i`` (its scaler, the shared categories)."""
        self._require_fitted()
        scaler = self.scalers_[i if self.per_series else 0]
        return Preprocessor.fitted(self.params, self.run_id, self.encoder_, scaler)

    def transform(self, series: Sequence[SeriesFrame], mapper: Mapper | None = None) -> PanelTransformed:
        """Fill and scale every series (per part, each on its own) and lay them end to end.

        Each series' result is written into the arrays as it comes, so at most the mapper's results in
        flight are held beside them.

        Args:
            series: the fitted series, in the fitted order.
            mapper: runs the per-series work (``serial_map`` by default; see ``data.engine``).
        """
        self._require_fitted()
        if [s.id for s in series] != self.series_ids_:
            raise ValueError("transform() takes the series fit() was given, in the same order")
        jobs = [_job(self.member(i), s) for i, s in enumerate(series)]
        offsets = np.concatenate(([0], np.cumsum([s.split.n_rows for s in series]))).astype(np.int64)
        shape = (int(offsets[-1]), len(self.feature_names))
        out = PanelTransformed(np.empty(shape, np.float32), np.empty(shape, bool), offsets, {})
        for i, part in enumerate((mapper or serial_map)(_transform, jobs)):
            a, b = int(offsets[i]), int(offsets[i + 1])
            if part.values.shape != (b - a, shape[1]):
                raise ValueError(f"series {series[i].id}: {part.values.shape} values for {b - a} rows")
            out.values[a:b], out.observed_mask[a:b] = part.values, part.observed_mask
            out.n_imputed = _sum_counts((out.n_imputed, part.n_imputed))
        return out

    def raw_target(self, series: Sequence[SeriesFrame]) -> np.ndarray:
        """(T,) every series' target as observed, end to end (original units, NaN where missing)."""
        return np.concatenate([s.frame[self.target].to_numpy(dtype=np.float64, na_value=np.nan) for s in series])

    def inverse_target(self, scaled: np.ndarray, i: int) -> np.ndarray:
        """Scaled target values of series ``i`` -> original units."""
        return self.member(i).inverse_target(scaled)

    def to_json(self) -> dict[str, Any]:
        self._require_fitted()
        states = [scaler_state(s) for s in self.scalers_]
        return {
            "format": FORMAT,
            "version": __version__,
            "run_id": self.run_id,
            "params": {
                **self.params,
                "series_column": self.series_column,
                "scaler": self.scaler,
                "season_length": self.season_length,
            },
            "feature_names": self.feature_names,
            "categories": self.encoder_.categories_,
            "series_ids": self.series_ids_,
            "scalers": {"kind": "standard", **{k: [st[k] for st in states] for k in states[0]}},
        }

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> PanelPreprocessor:
        """Rebuild a fitted PanelPreprocessor; refuse an unknown format or an incomplete state."""
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ContractError(
                ErrorCode.ARTIFACT_CONTRACT_ERROR, f"preprocessor format is not `{FORMAT}`; re-run stage=preprocess"
            )
        try:
            pre = cls(run_id=state["run_id"], **state["params"])
            encoder = CovariateEncoder.from_json({"covariates": pre.covariates, "categories": state["categories"]})
            s = state["scalers"]
            keys = ("mean", "scale", "var", "n_samples_seen")
            rows = zip(*(s[k] for k in keys), strict=True)
            scalers = [scaler_from_state(dict(zip(keys, row, strict=True))) for row in rows]
            ids = [str(i) for i in state["series_ids"]]
            if len(scalers) != (len(ids) if pre.per_series else 1):
                raise ValueError(f"{len(scalers)} scalers for {len(ids)} series ({pre.scaler})")
            pre._set(encoder, scalers, ids)
        except (KeyError, TypeError, ValueError) as exc:
            raise ContractError(
                ErrorCode.ARTIFACT_CONTRACT_ERROR, f"preprocessor state is incomplete: {exc}; re-run stage=preprocess"
            ) from exc
        return pre


def _sum_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    return total
