"""Time-ordered train/val/test boundaries: fractions, row counts and refusals."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import splits

from splineforecast.data.splits import Split, time_splits
from splineforecast.errors import ContractError, ErrorCode


@pytest.mark.parametrize(
    ("n", "sizes", "expected"),
    [
        (100, (0.7, 0.15, 0.15), ((0, 70), (70, 85), (85, 100))),
        # fractions summing to 1: test takes the remainder, no row lost to rounding
        (101, (0.7, 0.15, 0.15), ((0, 71), (71, 86), (86, 101))),
        (400, (0.6, 0.2, 0.2), ((0, 240), (240, 320), (320, 400))),
        # fractions summing below 1 leave the last rows unused
        (100, (0.5, 0.1, 0.1), ((0, 50), (50, 60), (60, 70))),
        # row counts (>= 1), as in etth1's 12/4/4 months of hours
        (20000, (8640, 2880, 2880), ((0, 8640), (8640, 11520), (11520, 14400))),
        (10, (5, 3, 2), ((0, 5), (5, 8), (8, 10))),
        # mixed: a row count and fractions of n
        (100, (50, 0.2, 0.1), ((0, 50), (50, 70), (70, 80))),
    ],
)
def test_split_boundaries(n: int, sizes: tuple[float, float, float], expected: tuple) -> None:
    split = time_splits(n, *sizes)
    assert (split.train, split.val, split.test) == expected
    assert split.n_rows == expected[2][1]
    assert list(split.parts()) == ["train", "val", "test"]


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(10, 5000),
    train=st.floats(0.3, 0.8),
    val=st.floats(0.05, 0.3),
)
def test_fraction_splits_are_contiguous_and_cover_the_series(n: int, train: float, val: float) -> None:
    test = 1.0 - train - val
    assume(test * n >= 1.5 and val * n >= 1.5)
    split = time_splits(n, train, val, test)
    assert split.train[0] == 0
    assert split.train[1] == split.val[0] and split.val[1] == split.test[0]
    assert split.test[1] == n == split.n_rows
    assert split.train[1] == round(train * n) and split.val[1] - split.val[0] == round(val * n)


@settings(max_examples=50, deadline=None)
@given(data=st.data(), n=st.integers(9, 5000))
def test_row_counts_give_back_the_split_they_describe(data: st.DataObject, n: int) -> None:
    split = data.draw(splits(n))
    lengths = [b - a for a, b in split.parts().values()]
    assert time_splits(n, *lengths) == split


@pytest.mark.parametrize(
    ("n", "sizes"),
    [
        (100, (80, 15, 10)),  # 105 rows asked of 100
        (10, (8, 2, 1)),
        (100, (0.9, 0.1, 0.1)),  # fractions summing above 1
        (3, (0.7, 0.15, 0.15)),  # val rounds to 0 rows
    ],
)
def test_too_many_rows_or_an_empty_part_is_insufficient_data(n: int, sizes: tuple) -> None:
    with pytest.raises(ContractError) as info:
        time_splits(n, *sizes)
    assert info.value.code is ErrorCode.INSUFFICIENT_DATA_ERROR
    assert info.value.exit_code == 26
    assert str(n) in info.value.message


@pytest.mark.parametrize("sizes", [(0.7, 0.0, 0.3), (0.7, -0.1, 0.15), (50, 10.5, 10)])
def test_bad_sizes_are_config_errors(sizes: tuple) -> None:
    with pytest.raises(ContractError) as info:
        time_splits(100, *sizes)
    assert info.value.code is ErrorCode.CONFIG_ERROR
    assert "data.split.val" in info.value.message


def test_split_is_frozen() -> None:
    split = Split(train=(0, 5), val=(5, 7), test=(7, 9))
    with pytest.raises(AttributeError):
        split.train = (0, 6)  # type: ignore[misc]
