"""Interval scores against independent computations, and conformal coverage on a known distribution."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from splineforecast.models.registry import CONFORMAL_LEVELS
from splineforecast.records import Calibration
from splineforecast.uncertainty import (
    apply_calibration,
    calibrate,
    conformal_offsets,
    intervals,
    quantile_columns,
    residual_levels,
    score_levels,
)

LEVELS = [0.025, 0.05, 0.5, 0.95, 0.975]


def _by_hand(y: np.ndarray, qf: np.ndarray, levels: list[float], scale: float) -> dict[str, float]:
    """The scores with plain loops, one point at a time."""
    n = len(y)
    pin = {
        q: sum(q * (y[i] - qf[i, k]) if y[i] >= qf[i, k] else (1 - q) * (qf[i, k] - y[i]) for i in range(n)) / n
        for k, q in enumerate(levels)
    }
    lo, hi = qf[:, 0], qf[:, -1]
    msis = sum((hi[i] - lo[i]) + 40 * max(lo[i] - y[i], 0) + 40 * max(y[i] - hi[i], 0) for i in range(n)) / n
    l90, h90 = qf[:, 1], qf[:, 3]  # the 90% interval: a = 0.1, 2/a = 20
    msis_90 = sum((h90[i] - l90[i]) + 20 * max(l90[i] - y[i], 0) + 20 * max(y[i] - h90[i], 0) for i in range(n)) / n
    inside = sum(1 for i in range(n) if qf[i, 1] <= y[i] <= qf[i, 3]) / n
    return {
        "crps": 2 * sum(pin.values()) / len(levels),
        "msis_95": msis / scale,
        "msis_90": msis_90 / scale,
        "coverage_90": inside,
        "width_90": float(np.mean(qf[:, 3] - qf[:, 1])),
        "pinball_0.05": pin[0.05],
    }


def test_scores_match_loops_by_hand_per_point_and_per_step() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=(40, 3))
    qf = np.sort(rng.normal(size=(40, 3, 5)) * 1.5, axis=-1)
    points = rng.random((40, 3)) > 0.2
    out = score_levels(y, {"model": qf}, points, LEVELS, scale=0.7)
    got = out["scores"]["model"]
    for key, value in _by_hand(y[points], qf[points], LEVELS, 0.7).items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    step = _by_hand(y[:, 2][points[:, 2]], qf[:, 2][points[:, 2]], LEVELS, 0.7)
    assert out["per_horizon"]["model"]["msis_95"][2] == pytest.approx(step["msis_95"], rel=1e-12)
    assert out["n_points"] == int(points.sum())
    assert {"coverage_95", "width_95"} <= set(got)


def test_crps_from_many_quantiles_approaches_the_gaussian_closed_form() -> None:
    levels = list(np.round(np.arange(1, 200) / 200, 6))
    levels = [q for q in levels if q != 0.5][:99] + [0.5] + [q for q in levels if q > 0.5]
    levels = sorted(set(levels))
    y = np.random.default_rng(1).normal(size=(4000, 1))
    qf = np.broadcast_to(stats.norm.ppf(levels), (4000, 1, len(levels)))
    got = score_levels(y, {"model": qf}, np.ones_like(y, bool), levels, 1.0)["scores"]["model"]["crps"]
    # CRPS of N(0, 1) at y: y (2 Phi(y) - 1) + 2 phi(y) - 1 / sqrt(pi)
    closed = float(np.mean(y * (2 * stats.norm.cdf(y) - 1) + 2 * stats.norm.pdf(y) - 1 / np.sqrt(np.pi)))
    assert got == pytest.approx(closed, rel=0.02)


def test_intervals_pairs_and_column_names() -> None:
    assert intervals(LEVELS) == [(0, 4, "95"), (1, 3, "90")]
    assert intervals([0.1, 0.5, 0.95]) == []
    assert quantile_columns("co2", LEVELS)[0] == "co2_q0.025" and quantile_columns("co2", [0.5]) == ["co2_q0.5"]


def _coverage(
    cal: Calibration, base: np.ndarray, y: np.ndarray, levels: list[float], step: int | None = None
) -> dict[str, float]:
    qf = apply_calibration(base, cal, len(levels))
    inside = {pct: (qf[..., lo] <= y) & (y <= qf[..., hi]) for lo, hi, pct in intervals(levels)}
    return {pct: float((v if step is None else v[:, step]).mean()) for pct, v in inside.items()}


def test_split_conformal_covers_the_nominal_level_on_gaussian_noise() -> None:
    rng = np.random.default_rng(7)
    n_val, n_test, horizon = 1500, 20000, 3
    noise_sd = np.array([0.5, 1.0, 2.0])  # each step its own spread: the offsets are per step
    point_val, point_test = rng.normal(size=(n_val, horizon)), rng.normal(size=(n_test, horizon))
    y_val = point_val + rng.normal(size=(n_val, horizon)) * noise_sd
    y_test = point_test + rng.normal(size=(n_test, horizon)) * noise_sd
    cal = calibrate("r", point_val, y_val, np.ones_like(y_val, bool), [])
    assert cal.method == "split" and cal.levels == list(CONFORMAL_LEVELS) and cal.n_points == [n_val] * 3
    half_90 = np.asarray(cal.offsets)[cal.levels.index(0.95)]
    assert half_90 == pytest.approx(stats.norm.ppf(0.95) * noise_sd, rel=0.1)
    levels = list(CONFORMAL_LEVELS)
    for step in range(horizon):
        got = _coverage(cal, point_test[:, :, None], y_test, levels, step)
        for pct, share in got.items():
            nominal = float(pct) / 100
            sd = np.sqrt(nominal * (1 - nominal) * (1 / n_val + 1 / n_test))
            assert abs(share - nominal) < 4 * sd, (step, pct, share)


def test_cqr_widens_too_narrow_quantiles_to_the_nominal_level() -> None:
    rng = np.random.default_rng(11)
    levels = [0.05, 0.5, 0.95]
    z = stats.norm.ppf(levels) * 0.4  # quantiles of N(0, 0.4^2) for data drawn from N(0, 1)
    y_val, y_test = rng.normal(size=(2000, 2)), rng.normal(size=(20000, 2))
    base_val, base_test = np.broadcast_to(z, (2000, 2, 3)), np.broadcast_to(z, (20000, 2, 3))
    assert _coverage(Calibration("r", "none", levels, [[0, 0]] * 3, [0, 0]), base_test, y_test, levels)["90"] < 0.5
    cal = calibrate("r", base_val, y_val, np.ones_like(y_val, bool), levels)
    share = _coverage(cal, base_test, y_test, levels)["90"]
    assert cal.method == "cqr_relative" and abs(share - 0.9) < 4 * np.sqrt(0.09 * (1 / 2000 + 1 / 20000))


def test_relative_cqr_calibrates_each_noise_level_and_additive_cqr_does_not() -> None:
    """Two kinds of windows, noise sd 1 and 5, whose quantiles are right in shape but 0.4 times too narrow:
    the relative score widens each by its own width, so both reach the nominal 90%; one additive offset
    over-covers the quiet windows and under-covers the noisy ones."""
    rng = np.random.default_rng(5)
    levels, n_val, n_test = [0.05, 0.5, 0.95], 4000, 40000
    z = stats.norm.ppf(levels) * 0.4

    def draw(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sd = np.where(np.arange(n) % 2 == 0, 1.0, 5.0)[:, None]
        return np.broadcast_to(z, (n, 1, 3)) * sd[:, :, None], rng.normal(size=(n, 1)) * sd, sd[:, 0] > 1

    base_val, y_val, _ = draw(n_val)
    base_test, y_test, noisy = draw(n_test)
    seen = np.ones_like(y_val, bool)
    relative = calibrate("r", base_val, y_val, seen, levels)
    offsets, counts = conformal_offsets(base_val, y_val, seen, levels)
    additive = Calibration("r", "cqr", levels, offsets.tolist(), counts)
    tolerance = 4 * np.sqrt(0.09 * (2 / n_val + 2 / n_test))
    for group in (noisy, ~noisy):
        share = _coverage(relative, base_test[group], y_test[group], levels)["90"]
        assert abs(share - 0.9) < tolerance, share
    assert _coverage(additive, base_test[~noisy], y_test[~noisy], levels)["90"] > 0.97
    assert _coverage(additive, base_test[noisy], y_test[noisy], levels)["90"] < 0.8


def test_calibrated_levels_stay_nested_and_unmasked_points_are_ignored() -> None:
    levels = [0.05, 0.25, 0.5, 0.75, 0.95]
    # the inner interval is pushed wider than the outer one: nesting keeps outer levels outside it
    cal = Calibration("r", "cqr", levels, [[0.0], [-5.0], [0.0], [5.0], [0.0]], [10])
    out = apply_calibration(np.array([[[-1.0, -0.5, 0.0, 0.5, 1.0]]]), cal, 5)
    assert (np.diff(out, axis=-1) >= 0).all() and out[0, 0, 0] == -5.5 and out[0, 0, 2] == 0.0
    y = np.array([[0.0], [100.0]])
    seen = np.array([[True], [False]])
    res = residual_levels(np.zeros((2, 1)), y, seen, [0.05, 0.5, 0.95])
    assert res.tolist() == [[0.0, 0.0, 0.0]]


def test_fan_chart_bands_and_report_section() -> None:
    from splineforecast.evaluation import TestForecast
    from splineforecast.records import EvalResult, Scores, TrainingSummary
    from splineforecast.report import fan_bands, plot_forecast, render_report

    rng = np.random.default_rng(5)
    n, horizon, lookback, rows = 30, 2, 4, 40
    actual = rng.normal(size=rows)
    qf = np.sort(rng.normal(size=(n, horizon, 5)), axis=-1)
    plain = TestForecast(np.arange(n), qf[:, :, 2], actual, actual, np.ones(rows, bool))
    fan = TestForecast(np.arange(n), qf[:, :, 2], actual, actual, np.ones(rows, bool), tuple(LEVELS), qf)
    bands = fan_bands(fan)
    assert [b[0] for b in bands] == ["95", "90"] and fan_bands(plain) == []
    assert np.array_equal(bands[1][1], qf[:, 0, 1]) and np.array_equal(bands[1][2], qf[:, 0, 3])
    stamps = np.arange(rows).astype("datetime64[D]")
    png = plot_forecast(fan, stamps, lookback, "t")
    assert png.startswith(b"\x89PNG") and png != plot_forecast(plain, stamps, lookback, "t")
    y = actual[(np.arange(n) + lookback)[:, None] + np.arange(horizon)]
    unc = score_levels(y, {"model": qf}, np.ones_like(y, bool), LEVELS, 1.0)
    point = {m: 1.0 for m in ("mae", "mse", "rmse", "mape", "r2", "mase")}
    scores = Scores(point, {}, {"model": {"mae": [1.0, 1.0]}}, n * horizon)
    result = EvalResult("r", scores, TrainingSummary(1, 0.5), uncertainty={**unc, "calibration": "none"})
    md = render_report(result, {}, "forecast.png")
    assert "## Intervals (levels 0.025, 0.05, 0.5, 0.95, 0.975; calibration none)" in md
    cover = unc["scores"]["model"]["coverage_90"]
    assert f"| model | {unc['scores']['model']['coverage_95']:.4g} | " in md and f"{cover:.4g}" in md
    assert result.mlflow_metrics()["coverage_90"] == cover and "Intervals" not in render_report(
        EvalResult("r", scores, TrainingSummary(1, 0.5)), {}, "forecast.png"
    )
