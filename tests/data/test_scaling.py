"""Scaling fitted on train only, its JSON state, and the Preprocessor's JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import seeds, spline_kinds, train_matrices

from splineforecast.data.preprocess import FORMAT, Preprocessor
from splineforecast.data.scaling import fit_scaler, scaler_from_state, scaler_state
from splineforecast.data.splits import Split, time_splits
from splineforecast.errors import ContractError, ErrorCode

FAST = settings(max_examples=50, deadline=None)


@FAST
@given(train=train_matrices)
def test_scaler_round_trip(train: np.ndarray) -> None:
    scaler = fit_scaler(train)
    scaled = scaler.transform(train)
    atol = 1e-9 * max(1.0, np.abs(train).max())
    # it does standardise (an identity scaler would round-trip too): train's own mean, centred output
    np.testing.assert_allclose(scaler.mean_, train.mean(axis=0), rtol=1e-9, atol=atol)
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(scaler.inverse_transform(scaled), train, rtol=1e-9, atol=atol)


def test_scaler_ignores_missing_values_and_keeps_constant_columns() -> None:
    train = np.array([[1.0, 5.0], [np.nan, 5.0], [3.0, 5.0], [8.0, 5.0]])
    scaler = fit_scaler(train)
    np.testing.assert_allclose(scaler.mean_, [4.0, 5.0])
    np.testing.assert_allclose(scaler.scale_, [np.std([1.0, 3.0, 8.0]), 1.0])
    assert np.isnan(scaler.transform(train)[1, 0])


@FAST
@given(train=train_matrices)
def test_scaler_state_round_trip_through_json(train: np.ndarray) -> None:
    scaler = fit_scaler(train)
    rebuilt = scaler_from_state(json.loads(json.dumps(scaler_state(scaler))))
    probe = np.linspace(-2e4, 2e4, 7 * train.shape[1]).reshape(7, -1)
    assert np.array_equal(rebuilt.transform(probe), scaler.transform(probe))
    assert np.array_equal(rebuilt.inverse_transform(probe), scaler.inverse_transform(probe))


def _frame(y: np.ndarray, z: np.ndarray) -> pd.DataFrame:
    index = pd.date_range("2000-01-01", periods=len(y), freq="D", name="date")
    return pd.DataFrame({"y": y, "z": z}, index=index)


Z = {"name": "z", "role": "dynamic", "type": "numeric"}  # a numeric covariate beside the target


def _preprocessor(kind: str = "cubic", max_gap: int = 5, run_id: str = "run-1") -> Preprocessor:
    return Preprocessor("y", [Z], {"kind": kind, "max_gap": max_gap}, "D", run_id)


@FAST
@given(n=st.integers(20, 60), seed=seeds, kind=spline_kinds)
def test_train_results_do_not_depend_on_val_or_test_values(n: int, seed: int, kind: str) -> None:
    rng = np.random.default_rng(seed)
    y, z = rng.normal(10, 3, n), rng.normal(-5, 1, n)
    y[rng.random(n) < 0.3] = np.nan
    split = time_splits(n, 0.6, 0.2, 0.2)
    a, b = split.train
    y2, z2 = y.copy(), z.copy()
    y2[b:] = rng.normal(1e3, 50, n - b)  # val and test moved far away, with other gaps
    y2[b:][rng.random(n - b) < 0.5] = np.nan
    z2[b:] = -z2[b:] * 7
    first = _preprocessor(kind).fit(_frame(y, z), split)
    second = _preprocessor(kind).fit(_frame(y2, z2), split)
    assert np.array_equal(first.scaler_.mean_, second.scaler_.mean_)
    assert np.array_equal(first.scaler_.scale_, second.scaler_.scale_)
    np.testing.assert_allclose(first.scaler_.mean_, [np.nanmean(y[a:b]), z[a:b].mean()], rtol=1e-12)
    out1 = first.transform(_frame(y, z), split)
    out2 = second.transform(_frame(y2, z2), split)
    assert out1.values[a:b].tobytes() == out2.values[a:b].tobytes()
    assert np.array_equal(out1.observed_mask[a:b], out2.observed_mask[a:b])


def test_transform_scales_fills_and_masks(tiny_frame: pd.DataFrame) -> None:
    frame = tiny_frame.assign(z=np.arange(len(tiny_frame), dtype=np.float64))
    split = Split(train=(0, 60), val=(60, 90), test=(90, 115))
    pre = _preprocessor("cubic", max_gap=26).fit(frame, split)
    assert pre.feature_names == ["y", "z"] and pre.target_index == 0
    out = pre.transform(frame, split)
    raw = frame["y"].to_numpy()[:115]
    assert out.values.shape == (115, 2) and out.values.dtype == np.float32
    assert np.array_equal(out.observed_mask[:, 0], ~np.isnan(raw))
    assert out.observed_mask[:, 1].all()
    # train fills 10-12 and 40; the 30-row gap 70-99 is cut by the split into val's trailing
    # 20 rows and test's leading 10, each part filled alone, so both runs fit max_gap 26
    assert out.n_imputed == {"y": 4 + 20 + 10, "z": 0}
    seen = out.observed_mask[:, 0]
    np.testing.assert_allclose(pre.inverse_target(out.values[seen, 0].astype(np.float64)), raw[seen], rtol=1e-6)


def test_preprocessor_json_round_trip_gives_identical_transform(tiny_frame: pd.DataFrame) -> None:
    split = Split(train=(0, 60), val=(60, 80), test=(80, 120))
    frame = tiny_frame.assign(z=np.cos(np.arange(len(tiny_frame))))
    pre = _preprocessor("akima", max_gap=15, run_id="run-7").fit(frame, split)
    state = json.loads(json.dumps(pre.to_json()))
    assert state["format"] == FORMAT and state["run_id"] == "run-7"
    back = Preprocessor.from_json(state)
    assert (back.target, back.covariates, back.spline, back.freq, back.run_id) == (
        "y",
        [Z],
        {"kind": "akima", "max_gap": 15},
        "D",
        "run-7",
    )
    assert back.feature_names == pre.feature_names == ["y", "z"]
    a, b = pre.transform(frame, split), back.transform(frame, split)
    assert a.values.tobytes() == b.values.tobytes()
    assert np.isnan(a.values[80:100, 0]).all()  # test's leading 20-row gap > max_gap 15 stays open
    assert np.array_equal(a.observed_mask, b.observed_mask) and a.n_imputed == b.n_imputed
    probe = np.linspace(-3, 3, 9)
    assert np.array_equal(pre.inverse_target(probe), back.inverse_target(probe))


@pytest.mark.parametrize(
    "state",
    [
        {"format": "splineforecast.preprocessor.v0"},
        {"version": "0.1.0"},
        {"format": FORMAT, "run_id": "r"},  # the right format, but no parameters or statistics
        ["splineforecast.preprocessor.v1"],
        None,
    ],
)
def test_from_json_refuses_another_format(state: object) -> None:
    with pytest.raises(ContractError) as info:
        Preprocessor.from_json(state)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.ARTIFACT_CONTRACT_ERROR
    assert info.value.exit_code == 22


def test_unfitted_preprocessor_refuses_to_transform(tiny_frame: pd.DataFrame) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        _preprocessor().transform(tiny_frame.assign(z=1.0))
