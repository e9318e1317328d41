"""Panels below the command: per-series scaling and filling, windows that never cross a series,
the per-series window cap, and the panel preprocessor's JSON state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from splineforecast.data.panel import SeriesFrame
from splineforecast.data.panel_preprocess import PanelPreprocessor
from splineforecast.data.preprocess import Preprocessor
from splineforecast.data.splits import time_splits
from splineforecast.models.factory import build_network
from splineforecast.models.spec import DataSpec
from splineforecast.windows import EpochShuffle, part_windows

SPLINE = {"kind": "cubic", "max_gap": 4, "lam": None, "smooth_observed": False}


def _series(sid: str, n: int, level: float, seed: int, start: str = "2000-01-01") -> SeriesFrame:
    """A weekly series with a season, noise and a few short gaps, cut 60/20/20."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    y = level + 3.0 * np.sin(2 * np.pi * t / 13) + rng.normal(0.0, 0.3, n)
    y[rng.choice(np.arange(1, n - 1), size=max(1, n // 15), replace=False)] = np.nan
    frame = pd.DataFrame({"y": y}, index=pd.date_range(start, periods=n, freq="W-SAT", name="date"))
    return SeriesFrame(sid, frame, time_splits(n, 0.6, 0.2, 0.2))


def _panel(series: list[SeriesFrame], scaler: str = "per_series") -> PanelPreprocessor:
    return PanelPreprocessor("y", [], SPLINE, "W-SAT", "p", "sid", scaler).fit(series)


def _alone(s: SeriesFrame) -> np.ndarray:
    return Preprocessor("y", [], SPLINE, "W-SAT", "p").fit(s.frame, s.split).transform(s.frame, s.split).values


@settings(max_examples=25, deadline=None)
@given(n=st.lists(st.integers(40, 90), min_size=2, max_size=4), seed=st.integers(0, 10_000))
def test_each_series_is_filled_and_scaled_as_if_it_were_alone(n: list[int], seed: int) -> None:
    series = [_series(f"s{i}", k, 100.0 * i, seed + i) for i, k in enumerate(n)]
    out = _panel(series).transform(series)
    assert out.offsets.tolist() == [0, *np.cumsum(n).tolist()]
    for i, s in enumerate(series):
        np.testing.assert_array_equal(out.values[out.offsets[i] : out.offsets[i + 1]], _alone(s))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(-1e3, 1e3), scale=st.floats(0.1, 50.0))
def test_scaling_of_a_series_ignores_other_series_and_its_own_later_parts(
    seed: int, shift: float, scale: float
) -> None:
    a, b = _series("a", 60, 10.0, seed), _series("b", 70, 500.0, seed + 1)
    before = _panel([a, b])
    # change series b everywhere, and series a after its train part
    b2 = SeriesFrame("b", b.frame * scale + shift, b.split)
    a_frame = a.frame.copy()
    a_frame.iloc[a.split.val[0] :, 0] = a_frame.iloc[a.split.val[0] :, 0] * scale + shift
    after = _panel([SeriesFrame("a", a_frame, a.split), b2])
    np.testing.assert_array_equal(before.member(0).scaler_.mean_, after.member(0).scaler_.mean_)
    np.testing.assert_array_equal(before.member(0).scaler_.scale_, after.member(0).scaler_.scale_)
    a_train = slice(0, a.split.train[1])
    np.testing.assert_array_equal(
        before.transform([a, b]).values[a_train],
        after.transform([SeriesFrame("a", a_frame, a.split), b2]).values[a_train],
    )


def test_a_global_scaler_pools_the_train_parts_of_every_series() -> None:
    a, b = _series("a", 60, 10.0, 1), _series("b", 60, 500.0, 2)
    pooled = _panel([a, b], "global")
    trains = np.concatenate([s.frame["y"].to_numpy()[: s.split.train[1]] for s in (a, b)])
    assert pooled.member(0).scaler_.mean_[0] == pytest.approx(np.nanmean(trains))
    assert pooled.member(1).scaler_.mean_[0] == pooled.member(0).scaler_.mean_[0]
    assert _panel([a, b]).member(1).scaler_.mean_[0] == pytest.approx(np.nanmean(b.frame["y"].to_numpy()[:36]))


def test_a_mase_scaler_scales_each_target_by_its_train_parts_seasonal_naive_mae() -> None:
    """data.scaler=per_series_mase: centre as per_series, scale by mean |y[t] - y[t - 13]| over observed pairs of
    the train part (by hand here), so a scaled error of 1 is one in-sample seasonal-naive MAE; JSON round-trips."""
    a, b = _series("a", 60, 10.0, 1), _series("b", 70, 500.0, 2)
    pre = PanelPreprocessor("y", [], SPLINE, "W-SAT", "p", "sid", "per_series_mase", season_length=13).fit([a, b])
    for i, s in enumerate((a, b)):
        y = s.frame["y"].to_numpy()[: s.split.train[1]]
        pairs = [abs(y[t] - y[t - 13]) for t in range(13, len(y)) if not np.isnan(y[t]) and not np.isnan(y[t - 13])]
        assert pre.member(i).scaler_.scale_[0] == pytest.approx(np.mean(pairs), rel=1e-12)
        assert pre.member(i).scaler_.mean_[0] == pytest.approx(np.nanmean(y))
    assert pre.member(0).scaler_.scale_[0] != _panel([a, b]).member(0).scaler_.scale_[0]  # not the std
    back = PanelPreprocessor.from_json(pre.to_json())
    assert back.scaler == "per_series_mase" and back.season_length == 13
    np.testing.assert_array_equal(back.transform([a, b]).values, pre.transform([a, b]).values)


def test_the_panel_preprocessor_state_round_trips_through_json() -> None:
    series = [_series("a", 50, 1.0, 1), _series("b", 64, 9.0, 2)]
    pre = _panel(series)
    back = PanelPreprocessor.from_json(pre.to_json())
    assert back.series_ids_ == ["a", "b"] and back.index("b") == 1 and back.index("zz") is None
    np.testing.assert_array_equal(back.transform(series).values, pre.transform(series).values)
    assert back.inverse_target(np.array([0.0]), 1)[0] == pytest.approx(pre.member(1).scaler_.mean_[0])


@settings(max_examples=40, deadline=None)
@given(n=st.lists(st.integers(30, 80), min_size=1, max_size=5), lookback=st.integers(1, 12), horizon=st.integers(1, 6))
def test_no_window_crosses_from_one_series_into_the_next(n: list[int], lookback: int, horizon: int) -> None:
    offsets = np.concatenate(([0], np.cumsum(n)))
    segments = [(int(o), time_splits(k, 0.6, 0.2, 0.2)) for o, k in zip(offsets[:-1], n, strict=True)]
    values = np.zeros((int(offsets[-1]), 1), dtype=np.float32)
    spec = DataSpec(1, lookback, horizon, (0,))
    for part in ("train", "val", "test"):
        starts, groups, _ = part_windows(values, segments, part, spec, 1)
        assert (starts >= offsets[groups]).all()
        assert (starts + lookback + horizon <= offsets[groups + 1]).all()
        # and every target lies in that series' part
        lo = np.array([o + s.parts()[part][0] for o, s in segments])[groups]
        hi = np.array([o + s.parts()[part][1] for o, s in segments])[groups]
        assert ((starts + lookback >= lo) & (starts + lookback + horizon <= hi)).all()


def test_the_per_series_cap_draws_at_most_that_many_windows_of_each_series_anew_each_epoch() -> None:
    groups = np.repeat(np.arange(4), [3, 10, 25, 7])
    sampler = EpochShuffle(len(groups), seed=5, groups=groups, per_group=5)
    assert len(sampler) == 3 + 5 + 5 + 5
    epochs = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        drawn = list(sampler)
        assert len(drawn) == len(sampler) == len(set(drawn))
        assert np.bincount(groups[drawn], minlength=4).tolist() == [3, 5, 5, 5]
        epochs.append(drawn)
    assert epochs[0] != epochs[1]
    again = EpochShuffle(len(groups), seed=5, groups=groups, per_group=5)
    again.set_epoch(1)
    assert list(again) == epochs[1]  # (seed, epoch) decide the draw: a resumed run sees the same batches


def test_a_series_embedding_makes_the_same_window_forecast_differently_per_series() -> None:
    model = {"name": "gru", "hidden_size": 8, "num_layers": 1, "dropout": 0.0, "norm": "last", "skip": True}
    torch.manual_seed(0)
    net = build_network({**model, "series_embedding": 3}, DataSpec(1, 12, 4, (0,), n_series=5)).eval()
    x = torch.randn(1, 12, 1).repeat(5, 1, 1)  # one window, once per series
    out = net(x, torch.arange(5))
    assert net.embed is not None and tuple(net.embed.weight.shape) == (5, 3)
    assert not torch.allclose(out[0], out[1])
    with pytest.raises(ValueError, match="series index"):
        net(x)
    plain = build_network(model, DataSpec(1, 12, 4, (0,), n_series=5)).eval()
    assert plain.embed is None and torch.equal(plain(x, torch.arange(5)), plain(x))
