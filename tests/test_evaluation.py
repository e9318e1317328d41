"""Metrics against independent computations; baselines by hand; only observed points are scored."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    r2_score,
    root_mean_squared_error,
)
from strategies import seeds

from splineforecast.evaluation import METRICS, Scale, baseline_forecasts, evaluate, score, train_scale


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 200), seed=seeds, level=st.floats(-500, 500))
def test_score_matches_sklearn(n: int, seed: int, level: float) -> None:
    rng = np.random.default_rng(seed)
    y_true = level + rng.normal(0, 10, n)
    y_pred = y_true + rng.normal(0, 3, n)
    scale = Scale(mase=rng.uniform(0.5, 5.0), mape_eps=0.5)
    got = score(y_true, y_pred, scale)
    assert set(got) == set(METRICS)
    assert got["mae"] == pytest.approx(mean_absolute_error(y_true, y_pred), rel=1e-12)
    assert got["mse"] == pytest.approx(mean_squared_error(y_true, y_pred), rel=1e-12)
    assert got["rmse"] == pytest.approx(root_mean_squared_error(y_true, y_pred), rel=1e-12)
    assert got["r2"] == pytest.approx(r2_score(y_true, y_pred), rel=1e-9, abs=1e-12)  # noise: var > 0
    assert got["mase"] == pytest.approx(mean_absolute_error(y_true, y_pred) / scale.mase, rel=1e-12)
    # robust MAPE is sklearn's MAPE with each |actual| floored at mape_eps (sklearn floors at machine eps)
    floored = np.where(np.abs(y_true) > scale.mape_eps, y_true, scale.mape_eps)
    expected = mean_absolute_percentage_error(floored, floored + (y_pred - y_true))
    assert got["mape"] == pytest.approx(expected, rel=1e-9)


def test_robust_mape_floors_a_zero_actual() -> None:
    y_true = np.array([0.0, 2.0, -4.0, 0.1])
    y_pred = np.array([1.0, 2.5, -4.0, 0.0])
    got = score(y_true, y_pred, Scale(mase=1.0, mape_eps=0.5))
    # |err| / max(|y|, 0.5): 1/0.5, 0.5/2, 0/4, 0.1/0.5
    assert np.isfinite(got["mape"])
    assert got["mape"] == pytest.approx((2.0 + 0.25 + 0.0 + 0.2) / 4)


def test_degenerate_denominators_give_nan() -> None:
    got = score(np.array([3.0, 3.0]), np.array([2.0, 4.0]), Scale(mase=0.0, mape_eps=0.1))
    assert np.isnan(got["r2"]) and np.isnan(got["mase"])
    assert got["mae"] == 1.0


def test_train_scale_by_hand() -> None:
    target = np.array([1.0, 2.0, 4.0, 7.0, 11.0, 16.0, 22.0, 29.0])
    observed = np.array([True, True, True, False, True, True, True, True])
    scale = train_scale(target, observed, season_length=3)  # 8 >= 2 * 3: lag 3
    pairs = [(i, i - 3) for i in range(3, 8) if observed[i] and observed[i - 3]]  # (4,1) (5,2) (7,4)
    assert len(pairs) == 3
    assert scale.mase == pytest.approx(np.mean([abs(target[i] - target[j]) for i, j in pairs]))
    assert scale.mase == pytest.approx((9 + 12 + 18) / 3)
    assert scale.mape_eps == pytest.approx(0.01 * np.mean(np.abs(target[observed])))
    short = train_scale(target, observed, season_length=5)  # 8 < 2 * 5: lag 1
    assert short.mase == pytest.approx(np.mean([1.0, 2.0, 5.0, 6.0, 7.0]))


def test_baselines_by_hand() -> None:
    series = np.arange(20.0) * 10
    got = baseline_forecasts(series, np.array([0, 3]), lookback=4, horizon=5, season_length=3)
    # origins 4 and 7; naive repeats the last input; seasonal: row = origin + h - 3 * (h // 3 + 1)
    np.testing.assert_array_equal(got["naive"], [[30.0] * 5, [60.0] * 5])
    np.testing.assert_array_equal(got["seasonal_naive"], [[10, 20, 30, 10, 20], [40, 50, 60, 40, 50]])
    early = baseline_forecasts(series, np.array([0]), lookback=2, horizon=5, season_length=3)
    np.testing.assert_array_equal(early["naive"], [[10.0] * 5])
    np.testing.assert_array_equal(early["seasonal_naive"], [[np.nan, 0, 10, np.nan, 0]])


def _case(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    t = np.arange(80, dtype=np.float64)
    series = 50 + 5 * np.sin(2 * np.pi * t / 6) + rng.normal(0, 0.5, 80)
    observed = rng.random(80) > 0.3
    lookback, horizon, season = 4, 3, 6
    starts = np.arange(0, 80 - lookback - horizon + 1, 5)
    forecast = series[(starts + lookback)[:, None] + np.arange(horizon)] + rng.normal(0, 1, (len(starts), 3))
    return {
        "forecast": forecast,
        "series": series,
        "observed": observed,
        "starts": starts,
        "lookback": lookback,
        "season_length": season,
        "scale": Scale(mase=1.5, mape_eps=0.5),
    }


def _inputs(starts: np.ndarray, lookback: int, horizon: int, season: int) -> set[int]:
    """Rows the baselines read: the last input, and one season back for each step."""
    rows = set()
    for s in starts:
        origin = s + lookback
        rows.add(origin - 1)
        rows.update(origin + h - season * (h // season + 1) for h in range(horizon))
    return rows


def test_evaluate_ignores_values_at_unobserved_points() -> None:
    case = _case()
    before = evaluate(**case)
    used = _inputs(case["starts"], case["lookback"], 3, case["season_length"])
    targets = {s + case["lookback"] + h for s in case["starts"] for h in range(3)}
    free = [r for r in range(80) if not case["observed"][r] and r not in used]
    assert set(free) & targets  # some unobserved target points are changed
    changed = dict(case, series=case["series"].copy())
    changed["series"][free] += 1e3
    after = evaluate(**changed)
    assert after.metrics == before.metrics and after.baselines == before.baselines
    assert after.n_points == before.n_points
    # the control: moving one observed target point does change the scores
    seen_target = next(r for r in sorted(targets) if case["observed"][r] and r not in used)
    changed["series"][seen_target] += 1.0
    assert evaluate(**changed).metrics["mae"] != before.metrics["mae"]


def test_model_and_baselines_are_scored_on_the_same_points() -> None:
    case = _case(1)
    starts, lookback, horizon, season = case["starts"], case["lookback"], 3, case["season_length"]
    result = evaluate(**case)
    rows = (starts + lookback)[:, None] + np.arange(horizon)
    y_true, seen = case["series"][rows], case["observed"][rows]
    base = baseline_forecasts(case["series"], starts, lookback, horizon, season)
    points = seen & np.isfinite(base["seasonal_naive"])  # the first window has no season of history
    assert points.sum() < seen.sum()
    assert result.n_points == points.sum()
    assert result.metrics == score(y_true[points], case["forecast"][points], case["scale"])
    for name in ("naive", "seasonal_naive"):
        assert result.baselines[name] == score(y_true[points], base[name][points], case["scale"])
    for name in ("model", "naive", "seasonal_naive"):
        assert len(result.per_horizon[name]["mae"]) == horizon


def test_actual_is_the_truth_while_baselines_read_the_series() -> None:
    """With smoothing, ``series`` (model inputs) differs from the raw observations scored."""
    case = _case(2)
    starts, lookback, horizon, season = case["starts"], case["lookback"], 3, case["season_length"]
    actual = case["series"] + np.random.default_rng(5).normal(0, 0.3, 80)
    result = evaluate(**case, actual=actual)
    rows = (starts + lookback)[:, None] + np.arange(horizon)
    base = baseline_forecasts(case["series"], starts, lookback, horizon, season)
    points = case["observed"][rows] & np.isfinite(base["seasonal_naive"])
    assert result.metrics == score(actual[rows][points], case["forecast"][points], case["scale"])
    assert result.baselines["naive"] == score(actual[rows][points], base["naive"][points], case["scale"])
    assert result.metrics != evaluate(**case).metrics
