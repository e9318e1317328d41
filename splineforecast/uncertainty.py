"""Quantile forecasts: their scores, the baselines' intervals, and conformal calibration on the val part.

Score rules (original units, observed test points only, the points the point metrics use):

* ``pinball_<q>``: the mean of ``max(q * (y - f), (q - 1) * (y - f))``; ``crps`` is twice the mean over the
  levels of the pinball losses (the quantile approximation of the CRPS).
* each symmetric pair of levels ``l < 0.5 < 1 - l`` is the ``100 * (1 - 2l)`` % interval: ``coverage_<p>`` is
  the share of points inside ``[L, U]``, ``width_<p>`` the mean of ``U - L``.
* ``msis_<p>`` (each interval, a = 1 - p/100; ``msis_95`` is M4's MSIS): the mean of ``(U - L) + 2/a * (L - y) *
  (y < L) + 2/a * (y - U) * (y > U)``, divided by the in-sample seasonal-naive MAE of the train part (MASE's scale).

The baselines' levels are their forecast plus the level's quantile of their own residuals on the train
part, per horizon step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from splineforecast.models.registry import CONFORMAL_LEVELS, MEDIAN
from splineforecast.records import Calibration

RELATIVE = ("cqr_relative",)  # calibration methods whose offsets are in widths of the interval
MIN_WIDTH = 1e-8  # scaled units: a collapsed interval's width in the relative score


def level_name(q: float) -> str:
    """``0.025`` -> ``"0.025"``: the level as column and metric names write it."""
    return f"{q:g}"


def quantile_columns(target: str, levels: list[float] | tuple[float, ...]) -> list[str]:
    """The forecast frame's quantile columns: ``<target>_q<level>`` (``co2_q0.025``)."""
    return [f"{target}_q{level_name(q)}" for q in levels]


def intervals(levels: list[float] | tuple[float, ...]) -> list[tuple[int, int, str]]:
    """(lower index, upper index, nominal percent) of each symmetric pair of levels, widest first."""
    rounded = [round(q, 10) for q in levels]
    out = []
    for i, q in enumerate(rounded):
        if q < MEDIAN and round(1 - q, 10) in rounded:
            out.append((i, rounded.index(round(1 - q, 10)), f"{100 * (1 - 2 * q):g}"))
    return out


def pinball(y: np.ndarray, f: np.ndarray, q: float) -> np.ndarray:
    """The pinball loss of each point at level ``q``."""
    err = y - f
    return np.maximum(q * err, (q - 1.0) * err)


def _msis_terms(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, a: float) -> np.ndarray:
    return (hi - lo) + 2 / a * (lo - y) * (y < lo) + 2 / a * (y - hi) * (y > hi)


def _point_scores(y: np.ndarray, qf: np.ndarray, levels: list[float], scale: float) -> dict[str, float]:
    """The scores of flat points: ``y`` (n,), ``qf`` (n, n_levels)."""
    losses = {level_name(q): float(pinball(y, qf[:, k], q).mean()) for k, q in enumerate(levels)}
    out: dict[str, float] = {"crps": 2 * float(np.mean(list(losses.values())))}
    for lo, hi, pct in intervals(levels):
        out[f"coverage_{pct}"] = float(((qf[:, lo] <= y) & (y <= qf[:, hi])).mean())
        out[f"width_{pct}"] = float((qf[:, hi] - qf[:, lo]).mean())
        terms = _msis_terms(y, qf[:, lo], qf[:, hi], 2 * levels[lo])
        out[f"msis_{pct}"] = float(terms.mean()) / scale if scale > 0 else float("nan")
    out.update({f"pinball_{k}": v for k, v in losses.items()})
    return out


def score_levels(
    y_true: np.ndarray, forecasts: dict[str, np.ndarray], points: np.ndarray, levels: list[float], scale: float
) -> dict[str, Any]:
    """metrics.json ``uncertainty``: each forecaster's scores over ``points`` and per horizon step.

    Args:
        y_true: (n, horizon) the truth; ``points`` (n, horizon) the points scored.
        forecasts: name -> (n, horizon, n_levels) quantile forecasts.
        scale: the in-sample seasonal-naive MAE (MSIS's denominator).
    """
    scores = {name: _point_scores(y_true[points], qf[points], levels, scale) for name, qf in forecasts.items()}
    per_horizon: dict[str, dict[str, list[float]]] = {}
    for name, qf in forecasts.items():
        steps = [
            _point_scores(y_true[:, h][points[:, h]], qf[:, h][points[:, h]], levels, scale) for h in range(qf.shape[1])
        ]
        per_horizon[name] = {k: [s[k] for s in steps] for k in scores[name]}
    return {"levels": list(levels), "n_points": int(points.sum()), "scores": scores, "per_horizon": per_horizon}


def residual_levels(forecast: np.ndarray, y: np.ndarray, seen: np.ndarray, levels: list[float]) -> np.ndarray:
    """(horizon, n_levels): each level's quantile of the residuals ``y - forecast`` per step (seen points)."""
    out = np.full((forecast.shape[1], len(levels)), np.nan)
    for h in range(forecast.shape[1]):
        ok = seen[:, h] & np.isfinite(forecast[:, h])
        if ok.any():
            out[h] = np.quantile(y[ok, h] - forecast[ok, h], levels)
    return out


def conformal_offsets(
    base: np.ndarray, y: np.ndarray, seen: np.ndarray, levels: list[float], relative: bool = False
) -> tuple[np.ndarray, list[int]]:
    """Per-step offsets (n_levels, horizon) that make each symmetric interval cover its level.

    ``base`` (n, horizon, n_levels) holds the val forecasts (the point forecast in every column for split
    conformal). For the pair at nominal ``1 - a``, the score of a point is ``max(L - y, y - U)``, and the
    interval widens (or narrows) by the ``ceil((n + 1)(1 - a)) / n`` empirical quantile of the scores at its
    step (Romano et al. 2019's conformalised quantile regression). With ``relative`` the score is divided by
    the interval's own width ``U - L`` and the offset is that many widths (the normalised CQR score), so a
    window the network is sure of stays narrow and an unsure one widens more. Levels without a partner keep
    offset 0.
    """
    horizon = base.shape[1]
    offsets = np.zeros((len(levels), horizon))
    counts = [int(seen[:, h].sum()) for h in range(horizon)]
    for lo, hi, pct in intervals(levels):
        coverage = float(pct) / 100
        for h, n in enumerate(counts):
            if n == 0:
                continue
            ok = seen[:, h]
            scores = np.maximum(base[ok, h, lo] - y[ok, h], y[ok, h] - base[ok, h, hi])
            if relative:
                scores = scores / np.maximum(base[ok, h, hi] - base[ok, h, lo], MIN_WIDTH)
            rank = min(1.0, np.ceil((n + 1) * coverage) / n)
            q = float(np.quantile(scores, rank, method="higher"))
            offsets[lo, h], offsets[hi, h] = -q, q
    return offsets, counts


def calibrate(
    run_id: str, out: np.ndarray, y: np.ndarray, seen: np.ndarray, quantiles: list[float], window: int | None = None
) -> Calibration:
    """The conformal calibration of a network's val output ``out`` (n, horizon, [n_levels]), scaled space.

    With trained ``quantiles`` it is conformalised quantile regression on them with the score relative to
    each interval's width (``cqr_relative``: the windows of all series of a panel share one calibration, and
    an additive offset would widen the intervals of every series alike); without, split conformal around the
    point forecast at :data:`~splineforecast.models.registry.CONFORMAL_LEVELS` (``split``: additive).
    With ``window`` (rolling calibration) the offsets are fitted on the last ``window`` val windows only.
    """
    levels, method = _method(quantiles)
    if window is not None:
        out, y, seen = out[-window:], y[-window:], seen[-window:]
    offsets, counts = conformal_offsets(_as_levels(out, len(levels)), y, seen, levels, relative=method in RELATIVE)
    return Calibration(run_id, method, levels, offsets.tolist(), counts, window)


def _method(quantiles: list[float]) -> tuple[list[float], str]:
    return (list(quantiles), "cqr_relative") if quantiles else (list(CONFORMAL_LEVELS), "split")


def _as_levels(out: np.ndarray, n_levels: int) -> np.ndarray:
    """A network's first-target output (n, horizon) of a point model or (n, horizon, n_levels) -> the latter."""
    base = out.astype(np.float64)
    return np.broadcast_to(base if base.ndim == 3 else base[:, :, None], (*base.shape[:2], n_levels))


def rolling_offsets(
    history: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], origins: np.ndarray, calibration: Calibration
) -> np.ndarray:
    """Rolling calibration: (n, horizon, n_levels) offsets, window ``i``'s fitted on the last
    ``calibration.window`` history windows whose end row is at most ``origins[i]`` (their whole truth was
    observed before that forecast origin); ``calibration``'s own offsets where no history window ended yet.

    ``history`` is (output (m, horizon[, n_levels]), truth (m, horizon), seen (m, horizon), end rows (m,)).
    """
    out, y, seen, ends = history
    levels, window = calibration.levels, int(calibration.window or 0)
    base = _as_levels(out, len(levels))
    order = np.argsort(ends, kind="stable")
    done = np.searchsorted(ends[order], origins, side="right")  # history windows ended by each origin
    fixed = np.asarray(calibration.offsets).T
    result = np.empty((len(origins), *fixed.shape))
    fitted: dict[int, np.ndarray] = {}
    for i, k in enumerate(done.tolist()):
        if k not in fitted:
            block = order[max(0, k - window) : k]
            if block.size:
                offsets, _ = conformal_offsets(
                    base[block], y[block], seen[block], levels, calibration.method in RELATIVE
                )
                fitted[k] = offsets.T
            else:
                fitted[k] = fixed
        result[i] = fitted[k]
    return result


def levels_of(net: Any, calibration: Calibration | None) -> tuple[float, ...]:
    """The quantile levels a run forecasts: its calibration's, else its network's (``()``: a point model)."""
    return tuple(calibration.levels) if calibration is not None else tuple(getattr(net, "quantiles", ()))


def calibrated_levels(
    out: np.ndarray, calibration: Calibration | None, n_levels: int, offsets: np.ndarray | None = None
) -> np.ndarray:
    """A network's first-target output, (n, horizon) of a point model or (n, horizon, n_levels) of a quantile
    head, scaled -> (n, horizon, n_levels) calibrated levels (see :func:`apply_calibration`); ``offsets``
    (n, horizon, n_levels), a rolling calibration's per window, replace the calibration's fixed ones."""
    base = out.astype(np.float64)
    return apply_calibration(base if base.ndim == 3 else base[:, :, None], calibration, n_levels, offsets)


def apply_calibration(
    base: np.ndarray, calibration: Calibration | None, n_levels: int, offsets: np.ndarray | None = None
) -> np.ndarray:
    """(..., horizon, n_levels or 1) scaled forecasts -> (..., horizon, n_levels), calibrated and nested.

    A point forecast (last axis 1) is repeated to every level first. The offsets are the calibration's
    (horizon, n_levels) for every window, or ``offsets`` broadcast against ``base``. After the offsets, each
    level below the median is kept at or below its inner neighbour and each one above at or above it, so
    adjusted intervals stay nested around the median.
    """
    out = np.broadcast_to(base, (*base.shape[:-1], n_levels)).astype(np.float64)
    if calibration is None:
        return out
    shift = np.asarray(calibration.offsets).T if offsets is None else offsets  # broadcast over windows
    if calibration.method in RELATIVE:  # offsets in widths of each window's own interval
        widths = np.zeros_like(out)
        for lo, hi, _ in intervals(calibration.levels):
            widths[..., lo] = widths[..., hi] = out[..., hi] - out[..., lo]
        shift = shift * widths
    out = out + shift
    m = calibration.levels.index(MEDIAN)
    below = np.minimum.accumulate(out[..., : m + 1][..., ::-1], axis=-1)[..., ::-1]
    above = np.maximum.accumulate(out[..., m:], axis=-1)
    return np.concatenate([below[..., :-1], above], axis=-1)
