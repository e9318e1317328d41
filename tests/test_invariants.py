"""Property-based invariants of SPEC §4: observed points kept, no leakage from val/test, honest metrics."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from strategies import BOOLEANS, CATEGORIES, evaluation_inputs, finite, frames, spline_kinds

from splineforecast.data.preprocess import Preprocessor
from splineforecast.data.splines import KINDS
from splineforecast.data.splits import Split
from splineforecast.evaluation import evaluate
from splineforecast.records import Scores

FAST = settings(max_examples=40, deadline=None)


NUMERIC = [{"name": "x", "role": "dynamic", "type": "numeric"}]
ALL = [
    *NUMERIC,
    {"name": "c", "role": "dynamic", "type": "categorical"},
    {"name": "b", "role": "dynamic", "type": "boolean"},
]


def _spline(kind: str, max_gap: int = 5, smooth_observed: bool = False) -> dict[str, object]:
    return {"kind": kind, "max_gap": max_gap, "lam": None, "smooth_observed": smooth_observed}


# --- observed points survive the whole preprocessing --------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=frames(covariates=False), max_gap=st.integers(0, 8))
def test_observed_points_unchanged_by_every_spline(kind: str, data: tuple[pd.DataFrame, Split], max_gap: int) -> None:
    frame, split = data
    pre = Preprocessor("y", NUMERIC, _spline(kind, max_gap), "D", "inv").fit(frame, split)
    out = pre.transform(frame, split)
    rows = frame.iloc[: split.n_rows]
    for col, name in enumerate(("y", "x")):
        raw = rows[name].to_numpy()
        seen = ~np.isnan(raw)
        np.testing.assert_array_equal(out.observed_mask[:, col], seen)
        mean, scale = pre.scaler_.mean_[col], pre.scaler_.scale_[col]
        # bit-identical in scaled space: the filled value at an observed point is the observation
        expected = ((raw[seen] - mean) / scale).astype(np.float32)
        assert out.values[seen, col].tobytes() == expected.tobytes()
    # and in original units, up to the float32 rounding of the stored values
    y = rows["y"].to_numpy()
    seen = ~np.isnan(y)
    back = pre.inverse_target(out.values[:, 0].astype(np.float64))
    tol = 1e-6 * (np.abs(y[seen] - pre.scaler_.mean_[0]).max() + 1.0)
    np.testing.assert_allclose(back[seen], y[seen], rtol=0, atol=tol)


# --- train results do not depend on val/test values (leakage) -----------------------------------


@st.composite
def changed_after_train(draw: st.DrawFn, frame: pd.DataFrame, split: Split) -> pd.DataFrame:
    """``frame`` with some val/test (and later) cells replaced or made missing."""
    other = frame.copy()
    a = split.train[1]
    n = len(frame) - a
    for name in frame.columns:
        values = other[name].to_numpy(copy=True)
        change = draw(arrays(np.bool_, n, elements=st.booleans()))
        if name in ("y", "x"):
            new = draw(arrays(np.float64, n, elements=finite | st.just(np.nan)))
        else:
            cells = CATEGORIES if name == "c" else BOOLEANS
            new = np.array(draw(st.lists(cells | st.none(), min_size=n, max_size=n)), dtype=object)
        values[a:][change] = new[change]
        other[name] = values
    return other


@FAST
@given(data=st.data(), frame_split=frames(), kind=spline_kinds, smooth=st.booleans())
def test_train_results_unchanged_when_val_and_test_change(
    data: st.DataObject, frame_split: tuple[pd.DataFrame, Split], kind: str, smooth: bool
) -> None:
    frame, split = frame_split
    other = data.draw(changed_after_train(frame, split))
    a, b = split.train
    pd.testing.assert_frame_equal(frame.iloc[a:b], other.iloc[a:b])

    spline = _spline(kind, 5, smooth)
    first = Preprocessor("y", ALL, spline, "D", "inv").fit(frame, split)
    second = Preprocessor("y", ALL, spline, "D", "inv").fit(other, split)
    assert first.feature_names == second.feature_names
    assert first.encoder_.categories_ == second.encoder_.categories_
    for key in ("mean_", "var_", "scale_"):
        assert getattr(first.scaler_, key).tobytes() == getattr(second.scaler_, key).tobytes(), key

    one, two = first.transform(frame, split), second.transform(other, split)
    assert one.values[a:b].tobytes() == two.values[a:b].tobytes()
    assert one.observed_mask[a:b].tobytes() == two.observed_mask[a:b].tobytes()


# --- metrics score observed points only ---------------------------------------------------------


def _baseline_rows(args: dict[str, object]) -> set[int]:
    """Rows the baselines read: each window's last input row, and every seasonal-naive source row."""
    starts, lookback, season = args["starts"], args["lookback"], args["season_length"]
    horizon = args["forecast"].shape[1]  # type: ignore[attr-defined]
    rows: set[int] = set()
    for start in starts:  # type: ignore[attr-defined]
        origin = int(start) + int(lookback)  # type: ignore[call-overload]
        rows.add(origin - 1)
        for step in range(horizon):
            source = origin + step - season * (step // season + 1)  # type: ignore[operator]
            if source >= 0:
                rows.add(source)
    return rows


def _dump(result: Scores) -> str:
    """Exact text of a result (floats by repr, NaN included) for a bit-level comparison."""
    return json.dumps(dataclasses.asdict(result), sort_keys=True)


def _replace(values: np.ndarray, where: np.ndarray, new: np.ndarray) -> np.ndarray:
    out = values.copy()
    out[where] = new[where]
    return out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # nanmean over a horizon step with no points
@FAST
@given(args=evaluation_inputs(), data=st.data())
def test_metrics_unchanged_when_actual_changes_at_unobserved_points(
    args: dict[str, np.ndarray], data: st.DataObject
) -> None:
    before = _dump(evaluate(**args))
    n = len(args["series"])
    new = data.draw(arrays(np.float64, n, elements=finite | st.just(np.nan)))
    changed = {**args, "actual": _replace(args["actual"], ~args["observed"], new)}
    assert _dump(evaluate(**changed)) == before


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@FAST
@given(args=evaluation_inputs(), data=st.data(), with_actual=st.booleans())
def test_metrics_unchanged_when_imputed_series_changes_outside_baseline_inputs(
    args: dict[str, np.ndarray], data: st.DataObject, with_actual: bool
) -> None:
    if not with_actual:  # the series is the truth as well
        args = {**args, "actual": None}
    before = _dump(evaluate(**args))
    n = len(args["series"])
    free = ~args["observed"]
    free[sorted(_baseline_rows(args))] = False
    new = data.draw(arrays(np.float64, n, elements=finite | st.just(np.nan)))
    changed = {**args, "series": _replace(args["series"], free, new)}
    assert _dump(evaluate(**changed)) == before


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@FAST
@given(args=evaluation_inputs(), data=st.data())
def test_metrics_change_when_a_scored_point_or_a_baseline_input_changes(
    args: dict[str, np.ndarray], data: st.DataObject
) -> None:
    """The control of the two tests above: a change where the metrics do look shows in them.

    One target point of one window is made observed; with season 1 both baselines read the window's last
    input row, so that point is scored. Values stay within 1e4, so a 1e6 shift raises every error it touches.
    """
    starts, lookback = args["starts"], int(args["lookback"])  # type: ignore[call-overload]
    origin = int(starts[data.draw(st.integers(0, len(starts) - 1))]) + lookback
    row = origin + data.draw(st.integers(0, args["forecast"].shape[1] - 1))
    observed, actual = args["observed"].copy(), args["actual"].copy()
    observed[row], actual[row] = True, data.draw(finite)
    args = {**args, "observed": observed, "actual": actual, "season_length": 1}  # type: ignore[dict-item]
    before = evaluate(**args)
    assert before.n_points >= 1

    moved = actual.copy()
    moved[row] += 1e6
    assert evaluate(**{**args, "actual": moved}).metrics["mae"] > before.metrics["mae"]
    series = args["series"].copy()
    series[origin - 1] += 1e6
    assert evaluate(**{**args, "series": series}).baselines["naive"]["mae"] > before.baselines["naive"]["mae"]
