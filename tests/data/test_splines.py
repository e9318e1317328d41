"""Spline gap filling: observed points kept exactly, long gaps left open, no reading across a split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import finite, series_with_gaps, spline_kinds, splits

from splineforecast.data.splines import KINDS, SplineGapFiller, fill_by_part
from splineforecast.data.splits import Split
from splineforecast.errors import ContractError, ErrorCode

FAST = settings(max_examples=50, deadline=None)


def gap_runs(missing: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of missing points, by a plain loop."""
    runs, start = [], None
    for i, m in enumerate(missing):
        if m and start is None:
            start = i
        if not m and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(missing)))
    return runs


def fill(y: np.ndarray, kind: str, max_gap: int) -> np.ndarray:
    frame = pd.DataFrame({"y": y})
    return SplineGapFiller(kind, max_gap).fit(frame).transform(frame)["y"].to_numpy()


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(y=series_with_gaps(), max_gap=st.integers(0, 12))
def test_filler_keeps_observed_points_and_fills_only_short_gaps(kind: str, y: np.ndarray, max_gap: int) -> None:
    filled = fill(y, kind, max_gap)
    seen = ~np.isnan(y)
    assert filled.shape == y.shape
    assert filled[seen].tobytes() == y[seen].tobytes()  # bit-identical
    for start, stop in gap_runs(~seen):
        gap = filled[start:stop]
        if stop - start > max_gap or kind == "off" or not seen.any():
            assert np.isnan(gap).all(), (start, stop)
        else:
            assert np.isfinite(gap).all(), (start, stop)


@FAST
@given(y=series_with_gaps(min_size=2, min_observed=1))
def test_leading_and_trailing_gaps_take_the_nearest_observed_value(y: np.ndarray) -> None:
    seen = np.flatnonzero(~np.isnan(y))
    filled = fill(y, "cubic", max_gap=len(y))
    assert (filled[: seen[0]] == y[seen[0]]).all()
    assert (filled[seen[-1] + 1 :] == y[seen[-1]]).all()


@FAST
@given(y=series_with_gaps(min_size=2, min_observed=1))
def test_linear_fill_matches_numpy_interp(y: np.ndarray) -> None:
    x_obs = np.flatnonzero(~np.isnan(y))
    expected = np.interp(np.arange(len(y)), x_obs, y[x_obs])
    np.testing.assert_allclose(fill(y, "linear", max_gap=len(y)), expected, rtol=0, atol=1e-9)


@FAST
@given(y=series_with_gaps(min_size=3), ends=st.tuples(finite, finite))
def test_pchip_stays_between_the_observed_neighbours_of_each_gap(y: np.ndarray, ends: tuple[float, float]) -> None:
    # observed ends and a missing middle: every gap is interior, and there is at least one
    y[0], y[-1] = ends
    y[len(y) // 2] = np.nan
    filled = fill(y, "pchip", max_gap=len(y))
    runs = gap_runs(np.isnan(y))
    assert runs
    for start, stop in runs:
        lo, hi = sorted((y[start - 1], y[stop]))
        tol = 1e-9 * max(1.0, abs(lo), abs(hi))
        assert (filled[start:stop] >= lo - tol).all() and (filled[start:stop] <= hi + tol).all()


def test_cubic_with_few_points_falls_back_to_linear() -> None:
    y = np.array([1.0, np.nan, 3.0, np.nan, np.nan, 9.0])  # three observed points
    np.testing.assert_allclose(fill(y, "cubic", max_gap=5), [1.0, 2.0, 3.0, 5.0, 7.0, 9.0])


def test_cubic_reproduces_a_cubic_polynomial(tiny_frame: pd.DataFrame) -> None:
    t = np.arange(len(tiny_frame), dtype=np.float64) / 10
    truth = 0.5 * t**3 - 2 * t**2 + t - 4
    y = np.where(tiny_frame["y"].isna(), np.nan, truth)
    filled = fill(y, "cubic", max_gap=26)
    short = np.r_[10:13, 40]
    np.testing.assert_allclose(filled[short], truth[short], rtol=1e-7, atol=1e-9)
    assert np.isnan(filled[70:100]).all()  # 30 missing weeks > max_gap 26


def test_gap_longer_than_max_gap_stays_missing(tiny_frame: pd.DataFrame) -> None:
    filled = SplineGapFiller("cubic", max_gap=26).fit(tiny_frame).transform(tiny_frame)
    assert np.isnan(filled["y"].iloc[70:100]).all()
    assert filled["y"].iloc[:70].notna().all() and filled["y"].iloc[100:].notna().all()
    wider = SplineGapFiller("cubic", max_gap=30).fit(tiny_frame).transform(tiny_frame)
    assert wider["y"].notna().all()


@pytest.mark.parametrize(("kind", "max_gap"), [("spline", 3), ("cubic", -1)])
def test_filler_refuses_bad_parameters_at_fit(kind: str, max_gap: int) -> None:
    with pytest.raises(ContractError) as info:
        SplineGapFiller(kind, max_gap).fit(pd.DataFrame({"y": [1.0]}))
    assert info.value.code is ErrorCode.CONFIG_ERROR


@st.composite
def split_frames(draw: st.DrawFn) -> tuple[pd.DataFrame, Split, str, pd.DataFrame, str]:
    """A frame, a split, a kind, and a copy of the frame whose rows outside one part are redrawn."""
    n = draw(st.integers(6, 60))
    split = draw(splits(n, min_part=2))
    y = draw(series_with_gaps(min_size=n, max_size=n))
    changed = y.copy()
    keep = draw(st.sampled_from(["train", "val", "test"]))
    lo, hi = split.parts()[keep]
    other = np.ones(n, dtype=bool)
    other[lo:hi] = False
    changed[other] = draw(series_with_gaps(min_size=n, max_size=n))[other]
    frame = pd.DataFrame({"y": y})
    return frame, split, draw(spline_kinds), pd.DataFrame({"y": changed}), keep


@FAST
@given(case=split_frames(), max_gap=st.integers(0, 40))
def test_fill_by_part_never_reads_across_a_split_boundary(case: tuple, max_gap: int) -> None:
    frame, split, kind, changed, keep = case
    filler = SplineGapFiller(kind, max_gap).fit(frame)
    before = fill_by_part(frame, split, filler)
    after = fill_by_part(changed, split, filler)
    assert len(before) == split.n_rows and before.index.equals(frame.index[: split.n_rows])
    lo, hi = split.parts()[keep]
    assert before["y"].to_numpy()[lo:hi].tobytes() == after["y"].to_numpy()[lo:hi].tobytes()


def test_fill_by_part_fills_each_part_as_if_it_stood_alone(tiny_frame: pd.DataFrame) -> None:
    split = Split(train=(0, 11), val=(11, 60), test=(60, 110))  # the 10-12 gap straddles train/val
    filler = SplineGapFiller("linear", 26).fit(tiny_frame)
    filled = fill_by_part(tiny_frame, split, filler)["y"].to_numpy()
    y = tiny_frame["y"].to_numpy()
    assert filled[10] == y[9]  # end of train: nearest train value, not a line towards val
    assert filled[11] == filled[12] == y[13]  # start of val: nearest val value
    for a, b in split.parts().values():
        alone = filler.transform(tiny_frame.iloc[a:b])["y"].to_numpy()
        assert filled[a:b].tobytes() == alone.tobytes()
