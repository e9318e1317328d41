"""M4's 95% prediction-interval scores for ``benchmarks/m4.py --intervals`` (Makridakis et al., IJF 36(1), 2020,
and the M4-methods R code):

* MSIS = the mean over series of ``mean_h[(U - L) + 2/a (L - y) 1{y < L} + 2/a (y - U) 1{y > U}]`` divided by
  the series' in-sample seasonal-naive MAE at lag ``m`` (the MASE scale), ``a = 0.05``;
* coverage = the share of all test points inside ``[L, U]``; ACD = ``|coverage - 0.95|``.

The 80% interval (levels 0.1 and 0.9, trained and calibrated beside them) is scored by its coverage too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import _common as common
import _m4
import numpy as np

ALPHA = 0.05  # M4 scored 95% intervals
LEVELS = (0.025, 0.1, 0.5, 0.9, 0.975)  # the product's model.quantiles for them: the median is the point forecast
# the served forecast's columns (target y) of the 95% bounds, then of the 80% ones
BOUNDS = ("y_q0.025", "y_q0.975", "y_q0.1", "y_q0.9")
# published M4 Hourly 95% interval rows (MSIS, ACD): Makridakis et al. 2020, the M4 Hourly prediction intervals
PUBLISHED_HOURLY = {
    "Doornik et al.": (6.139, 0.002),
    "ARIMA": (7.538, 0.001),
    "Smyl, ES-RNN": (7.928, 0.040),
    "ETS": (17.487, 0.001),
    "naive": (71.245, 0.011),
}


def overrides() -> list[str]:
    """The product's keys of a run that forecasts 95% intervals, conformally calibrated on val."""
    return [f"model.quantiles=[{','.join(str(q) for q in LEVELS)}]", "model.calibration=conformal"]


def msis(history: Sequence[np.ndarray], y: np.ndarray, lower: np.ndarray, upper: np.ndarray, m: int) -> np.ndarray:
    """Per-series MSIS of (n, h) bounds."""
    a = ALPHA
    terms = (upper - lower) + 2 / a * (lower - y) * (y < lower) + 2 / a * (y - upper) * (y > upper)
    scales = np.array([_m4.mase_scale(h, m) for h in history])
    return np.mean(terms, axis=1) / scales


def scored(method: str, history: Sequence[np.ndarray], y: np.ndarray, bounds: np.ndarray, m: int) -> dict[str, Any]:
    """One interval row of (n, h, 4) bounds (:data:`BOUNDS`): the 95% interval's mean MSIS, coverage, ACD and
    mean width, and the 80% interval's coverage."""
    lower, upper = bounds[..., 0], bounds[..., 1]
    coverage = float(np.mean((lower <= y) & (y <= upper)))
    return {
        "method": method,
        "msis": float(np.mean(msis(history, y, lower, upper, m))),
        "coverage": coverage,
        "acd": abs(coverage - (1 - ALPHA)),
        "width": float(np.mean(upper - lower)),
        "coverage_80": float(np.mean((bounds[..., 2] <= y) & (y <= bounds[..., 3]))),
    }


def published() -> list[dict[str, Any]]:
    return [{"method": k, "msis": v[0], "acd": v[1]} for k, v in PUBLISHED_HOURLY.items()]


def write(out: str | os.PathLike[str], ids: Sequence[str], bounds: np.ndarray) -> None:
    """``lower.csv`` and ``upper.csv`` in M4's wide layout (``id,F1..Fh``)."""
    _m4.write_wide(os.path.join(out, "lower.csv"), ids, bounds[..., 0])
    _m4.write_wide(os.path.join(out, "upper.csv"), ids, bounds[..., 1])


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample std over the seeds' interval rows, and each seed's."""
    out: dict[str, Any] = {"method": f"{rows[0]['method']} (mean of {len(rows)} seeds)", "seeds": len(rows)}
    for key in ("msis", "coverage", "acd", "width", "coverage_80"):
        out[key], out[f"{key}_std"] = common.mean_spread([r[key] for r in rows])
    return out | {"per_seed": rows}


def table(result: dict[str, Any]) -> str:
    """The printed interval table: measured rows, then published."""
    lines = [{**r, "source": "measured"} for r in result["rows"]]
    lines += [{**r, "source": "published"} for r in result["published"]]
    return common.table(lines, ("method", "source", "msis", "coverage", "acd", "width", "coverage_80"))
