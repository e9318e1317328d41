"""Spline gap filling. Observed points are kept exactly; gaps never borrow across a split.

Each part of the split is filled on its own (``fill_by_part``), so no value of val or test
shapes a filled point of train, and vice versa.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.interpolate import (
    Akima1DInterpolator,
    CubicSpline,
    PchipInterpolator,
    interp1d,
    make_smoothing_spline,
)

from splineforecast.data.splits import Split
from splineforecast.errors import ContractError, ErrorCode

Interpolant = Callable[[np.ndarray], np.ndarray]


def _linear(x: np.ndarray, y: np.ndarray) -> Interpolant:
    return lambda t: np.interp(t, x, y)


INTERPOLANTS: dict[str, Callable[[np.ndarray, np.ndarray], Interpolant]] = {
    "cubic": lambda x, y: CubicSpline(x, y, bc_type="not-a-knot", extrapolate=False),
    "pchip": lambda x, y: PchipInterpolator(x, y, extrapolate=False),
    "akima": lambda x, y: Akima1DInterpolator(x, y, extrapolate=False),
    "linear": _linear,
    # a state held until the next observation: for boolean and one-hot features
    "previous": lambda x, y: interp1d(x, y, kind="previous", assume_sorted=True),
}
KINDS = ("cubic", "pchip", "akima", "linear", "smoothing", "off")  # what spline= offers
_STEP_KINDS = ("previous",)  # for boolean and one-hot features, not offered as spline=
_MIN_POINTS = {"smoothing": 5, "previous": 1}  # fewer observed points fall back to linear


def check_spline(kind: str, max_gap: int, lam: float | None = None, kinds: tuple[str, ...] = KINDS) -> None:
    """Refuse spline settings no filler can use (CONFIG_ERROR), naming the key and the value."""
    if kind not in kinds:
        raise ContractError(ErrorCode.CONFIG_ERROR, f"`spline.kind` ({kind}) must be one of {list(KINDS)}")
    if max_gap < 0:
        raise ContractError(ErrorCode.CONFIG_ERROR, f"`spline.max_gap` ({max_gap}) must be >= 0")
    if lam is not None and lam < 0:
        raise ContractError(ErrorCode.CONFIG_ERROR, f"`spline.lam` ({lam}) must be >= 0")


def _gap_runs(missing: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of True in a 1-D bool array."""
    padded = np.concatenate(([False], missing, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


class SplineGapFiller:
    """Fill runs of missing values with a spline through the observed points.

    Args:
        kind: ``cubic``, ``pchip``, ``akima``, ``linear``, ``smoothing`` (scipy's
            ``make_smoothing_spline``) or ``off`` (no filling).
        max_gap: longest run of missing steps that is filled; longer runs stay NaN.
            Leading and trailing runs take the nearest observed value (no extrapolation).
        lam: smoothing strength of ``smoothing``; None chooses it by generalised cross-validation.
        smooth_observed: with ``smoothing``, also replace observed points by the smoothed curve
            (the model's inputs are denoised; metrics still score the raw observations).
    """

    def __init__(
        self, kind: str = "cubic", max_gap: int = 26, lam: float | None = None, smooth_observed: bool = False
    ) -> None:
        self.kind, self.max_gap, self.lam, self.smooth_observed = kind, max_gap, lam, smooth_observed

    def checked(self) -> SplineGapFiller:
        """This filler, its settings checked (CONFIG_ERROR for settings no filler can use)."""
        check_spline(self.kind, self.max_gap, self.lam, kinds=(*KINDS, *_STEP_KINDS))
        return self

    def fit(self, frame: pd.DataFrame) -> SplineGapFiller:
        self.checked()
        self.columns_ = list(frame.columns)
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Filled copy of ``frame`` (its rows are treated as one contiguous part)."""
        if not hasattr(self, "columns_"):
            raise RuntimeError("SplineGapFiller is not fitted; call fit() first")
        filled = {name: self.fill(frame[name].to_numpy(dtype=np.float64)) for name in self.columns_}
        return pd.DataFrame(filled, index=frame.index)

    def fill(self, y: np.ndarray) -> np.ndarray:
        """Filled copy of one 1-D series."""
        out = y.copy()
        missing = np.isnan(y)
        n_obs = int((~missing).sum())
        smoothing = self.kind == "smoothing" and self.smooth_observed
        if self.kind == "off" or n_obs == 0 or (n_obs == len(y) and not smoothing):
            return out
        x_obs = np.flatnonzero(~missing)
        interpolant = self._interpolant(x_obs.astype(np.float64), y[x_obs])
        if smoothing:
            out[x_obs] = interpolant(x_obs.astype(np.float64))
        first, last = x_obs[0], x_obs[-1]
        for start, stop in _gap_runs(missing):
            if stop - start > self.max_gap:
                continue
            if stop <= first:
                out[start:stop] = y[first]
            elif start > last:
                out[start:stop] = y[last]
            else:
                out[start:stop] = interpolant(np.arange(start, stop, dtype=np.float64))
        return out

    def _interpolant(self, x: np.ndarray, y: np.ndarray) -> Interpolant:
        kind = self.kind if len(x) >= _MIN_POINTS.get(self.kind, 4) else "linear"
        build = _smoothing(self.lam) if kind == "smoothing" else INTERPOLANTS[kind]
        return build(x, y)


def _smoothing(lam: float | None) -> Callable[[np.ndarray, np.ndarray], Interpolant]:
    return lambda x, y: make_smoothing_spline(x, y, lam=lam)


def fill_parts(y: np.ndarray, split: Split | None, filler: SplineGapFiller) -> np.ndarray:
    """One 1-D series filled per part of ``split``, each on its own, joined (rows after test are dropped);
    with no split, filled as one part."""
    if split is None:
        return filler.fill(y)
    return np.concatenate([filler.fill(y[a:b]) for a, b in split.parts().values()])


def fill_by_part(frame: pd.DataFrame, split: Split, filler: SplineGapFiller) -> pd.DataFrame:
    """Fill each part of ``split`` on its own and join them (rows after test are dropped)."""
    rows = np.concatenate([np.arange(a, b) for a, b in split.parts().values()])
    filled = {name: fill_parts(frame[name].to_numpy(dtype=np.float64), split, filler) for name in filler.columns_}
    return pd.DataFrame(filled, index=frame.index[rows])
