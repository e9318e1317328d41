"""Rolling conformal calibration (``model.calibration_window``): each origin is calibrated only on windows
whose truth was observed before it, follows a change of spread that fixed offsets miss, and serving
recalibrates on the history it is given."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from test_serving import HORIZON, LOOKBACK, MODEL_CFG, SETTINGS, _history

from splineforecast import serving
from splineforecast.data.preprocess import Preprocessor
from splineforecast.data.splits import time_splits
from splineforecast.models.factory import build_network
from splineforecast.models.spec import DataSpec
from splineforecast.uncertainty import apply_calibration, calibrate, conformal_offsets, intervals, rolling_offsets

LEVELS = [0.025, 0.1, 0.5, 0.9, 0.975]


def _stream(rng: np.random.Generator, sds: list[float], n: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Point forecasts 0 and truths with spread ``sds[k]`` in the k-th block of ``n`` windows."""
    y = np.concatenate([rng.normal(scale=sd, size=(n, horizon)) for sd in sds])
    return np.zeros_like(y), y


def test_each_origin_reads_only_windows_ended_before_it() -> None:
    rng = np.random.default_rng(3)
    point, y = _stream(rng, [1.0], 400, 2)
    seen, ends = np.ones_like(y, bool), np.arange(400) + 10
    cal = calibrate("r", point[:100], y[:100], seen[:100], [], window=50)
    origins = np.array([5, 60, 200, 409])
    got = rolling_offsets((point, y, seen, ends), origins, cal)
    assert got.shape == (4, 2, len(cal.levels))
    np.testing.assert_array_equal(got[0], np.asarray(cal.offsets).T)  # nothing ended by row 5: the stored ones
    for i, origin in enumerate(origins[1:], start=1):
        done = np.flatnonzero(ends <= origin)[-50:]
        want, _ = conformal_offsets(np.repeat(point[done, :, None], 7, 2), y[done], seen[done], cal.levels)
        np.testing.assert_allclose(got[i], want.T)
    later = y.copy()
    later[ends > 200] *= 100  # truths not yet observed at origin 200 change nothing up to it
    again = rolling_offsets((point, later, seen, ends), origins, cal)
    np.testing.assert_array_equal(again[:3], got[:3])
    assert not np.allclose(again[3], got[3])


def test_calibrate_with_a_window_fits_the_last_val_windows_and_records_it() -> None:
    rng = np.random.default_rng(4)
    point, y = _stream(rng, [5.0, 1.0], 300, 3)
    seen = np.ones_like(y, bool)
    cal = calibrate("r", point, y, seen, [], window=300)
    assert cal.window == 300 and cal.n_points == [300] * 3
    assert cal.offsets == calibrate("r", point[300:], y[300:], seen[300:], []).offsets


def test_rolling_offsets_follow_a_calmer_test_part_that_fixed_offsets_over_cover() -> None:
    rng = np.random.default_rng(5)
    horizon, n_val, n_test = 2, 2000, 6000
    y = np.concatenate([rng.normal(scale=2.0, size=(n_val, horizon)), rng.normal(size=(n_test, horizon))])
    point = np.zeros_like(y)  # val spread 2, then 1: a calmer test part
    seen, ends = np.ones_like(y, bool), np.arange(len(y)) + horizon
    fixed = calibrate("r", point[:n_val], y[:n_val], seen[:n_val], [])
    rolling = dataclasses.replace(fixed, window=500)
    origins = ends[n_val:] - horizon
    offsets = rolling_offsets((point, y, seen, ends), origins, rolling)
    test, truth = point[n_val:, :, None], y[n_val:]
    qf_fixed = apply_calibration(test, fixed, 7)
    qf_roll = apply_calibration(test, rolling, 7, offsets)[500:]  # once the window holds only the test part
    assert qf_fixed.shape == (n_test, horizon, 7) and qf_roll.shape == (n_test - 500, horizon, 7)
    for lo, hi, pct in intervals(fixed.levels):
        nominal = float(pct) / 100
        inside_fixed = ((qf_fixed[..., lo] <= truth) & (truth <= qf_fixed[..., hi])).mean()
        inside_roll = ((qf_roll[..., lo] <= truth[500:]) & (truth[500:] <= qf_roll[..., hi])).mean()
        assert inside_fixed > nominal + 0.04, (pct, inside_fixed)  # fixed: fitted on the wilder val part
        assert abs(inside_roll - nominal) < 0.02, (pct, inside_roll)


@pytest.fixture
def fitted(tiny_frame: pd.DataFrame) -> Preprocessor:
    spline = {"kind": "cubic", "max_gap": 26, "lam": None, "smooth_observed": False}
    return Preprocessor("y", [], spline, "W-SAT", "unit").fit(tiny_frame, time_splits(len(tiny_frame), 0.6, 0.2, 0.2))


def test_serving_recalibrates_on_the_history_it_is_given(fitted: Preprocessor, tiny_frame: pd.DataFrame) -> None:
    torch.manual_seed(0)
    net = build_network({**MODEL_CFG, "quantiles": LEVELS}, DataSpec(1, LOOKBACK, HORIZON, (0,))).eval()
    settings = dataclasses.replace(SETTINGS, quantiles=list(LEVELS))
    history = _history(tiny_frame.iloc[:60])  # 60 rows: whole windows end at rows 20..60
    scaled = fitted.transform(tiny_frame.iloc[:60].asfreq("W-SAT"))
    stored = dataclasses.replace(
        calibrate("r", np.zeros((5, HORIZON)), np.ones((5, HORIZON)), np.ones((5, HORIZON), bool), []), window=8
    )
    quantile = dataclasses.replace(stored, method="cqr_relative", levels=LEVELS, offsets=[[0.0] * HORIZON] * 5)
    offsets = serving.recent_offsets(net, scaled, settings, quantile)
    assert offsets is not None and offsets.shape == (1, HORIZON, len(LEVELS))
    starts = np.arange(60 - LOOKBACK - HORIZON - 7, 60 - LOOKBACK - HORIZON + 1)  # the last 8 whole windows
    x = torch.from_numpy(np.stack([scaled.values[j : j + LOOKBACK] for j in starts]).astype(np.float32))
    with torch.no_grad():
        out = net(x)[:, :, 0].numpy()  # (8, horizon, levels)
    rows = starts[:, None] + LOOKBACK + np.arange(HORIZON)
    y, seen = scaled.values[rows, 0].astype(np.float64), scaled.observed_mask[rows, 0]
    want, _ = conformal_offsets(out.astype(np.float64), y, seen, LEVELS, relative=True)
    np.testing.assert_allclose(offsets[0], want.T, rtol=1e-6)
    frame = serving.forecast(history, fitted, net, settings, quantile)
    assert list(frame.columns[-5:]) == [f"y_q{q:g}" for q in LEVELS]
    short_frame = tiny_frame.iloc[41:60]  # 19 rows: no whole window (lookback 16 + horizon 4)
    short = serving.forecast(_history(short_frame), fitted, net, settings, quantile)
    assert serving.recent_offsets(net, fitted.transform(short_frame.asfreq("W-SAT")), settings, quantile) is None
    assert not np.allclose(frame["y_q0.975"].to_numpy(), short["y_q0.975"].to_numpy())
