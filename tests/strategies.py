"""Hypothesis strategies shared by the tests: series with gaps, frames with covariates, splits, run_ids,
evaluation inputs.

Import them with ``from strategies import ...`` (``tests`` is on ``sys.path``, see pyproject's
``[tool.pytest.ini_options] pythonpath``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from splineforecast.artifacts import RUN_ID_PATTERN
from splineforecast.data.splines import KINDS
from splineforecast.data.splits import Split
from splineforecast.evaluation import Scale

# on a 1e-6 grid: no differences so tiny that scipy's slope arithmetic overflows
finite = st.floats(-1e4, 1e4, allow_nan=False).map(lambda v: round(v, 6))
# any ordinary value a column may hold (no subnormals: their squares underflow in a variance)
plain_floats = st.floats(-1e4, 1e4, allow_nan=False, allow_subnormal=False)
seeds = st.integers(0, 2**32 - 1)
spline_kinds = st.sampled_from(KINDS)
CATEGORIES = st.sampled_from(["a", "b", "c", "new", "zz"])
BOOLEANS = st.sampled_from(["yes", "no", "TRUE", "false", "1", "0"])

# arbitrary text, plus text built from the characters that matter for paths, plus names the pattern allows
run_ids = st.one_of(
    st.text(max_size=140),
    st.text(alphabet="./\\-_ azAZ09~:\x00%", max_size=12),
    st.from_regex(RUN_ID_PATTERN, fullmatch=True),
)

# (rows, columns) of a train part to fit a scaler on
train_matrices = arrays(np.float64, st.tuples(st.integers(2, 40), st.integers(1, 3)), elements=plain_floats)


@st.composite
def series_with_gaps(
    draw: st.DrawFn,
    min_size: int = 1,
    max_size: int = 60,
    max_run: int = 40,
    min_observed: int = 0,
    first_observed: bool = False,
) -> np.ndarray:
    """A float series with scattered missing points plus up to three runs of missing points.

    Args:
        min_size: fewest points; ``max_size``: most points.
        max_run: the longest run of missing points drawn.
        min_observed: this many randomly chosen points (repeats allowed) are made observed afterwards,
            so a test that needs an observation never has to skip.
        first_observed: point 0 is observed (a train part that starts with something to scale with).
    """
    n = draw(st.integers(min_size, max_size))
    y = draw(arrays(np.float64, n, elements=finite))
    y[draw(arrays(np.bool_, n, elements=st.booleans()))] = np.nan
    for _ in range(draw(st.integers(0, 3))):
        start = draw(st.integers(0, n - 1))
        y[start : start + draw(st.integers(1, max_run))] = np.nan
    for _ in range(min_observed):
        y[draw(st.integers(0, n - 1))] = draw(finite)
    if first_observed:
        y[0] = draw(finite)
    return y


@st.composite
def splits(draw: st.DrawFn, n: int, min_part: int = 3) -> Split:
    """Time-ordered train/val/test of ``n`` rows, each at least ``min_part`` rows (rows after test may be left)."""
    a = draw(st.integers(min_part, n - 2 * min_part))
    b = draw(st.integers(a + min_part, n - min_part))
    c = draw(st.integers(b + min_part, n))
    return Split(train=(0, a), val=(a, b), test=(b, c))


@st.composite
def text_column(draw: st.DrawFn, n: int, values: st.SearchStrategy[str]) -> np.ndarray:
    """``n`` text cells from ``values`` with missing cells (NaN); cell 0 is present."""
    cells = np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=object)
    cells[draw(arrays(np.bool_, n, elements=st.booleans()))] = np.nan
    cells[0] = draw(values)
    return cells


@st.composite
def frames(draw: st.DrawFn, covariates: bool = True) -> tuple[pd.DataFrame, Split]:
    """A daily frame (target ``y``, numeric ``x``; with ``covariates``, categorical ``c`` and boolean ``b``)
    with gaps in every column, and a split of it."""
    n = draw(st.integers(12, 50))
    gappy = series_with_gaps(n, n, max_run=12, first_observed=True)
    columns: dict[str, np.ndarray] = {"y": draw(gappy), "x": draw(gappy)}
    if covariates:
        columns["c"] = draw(text_column(n, CATEGORIES))
        columns["b"] = draw(text_column(n, BOOLEANS))
    index = pd.date_range("2020-01-01", periods=n, freq="D", name="date")
    return pd.DataFrame(columns, index=index), draw(splits(n))


@st.composite
def evaluation_inputs(draw: st.DrawFn) -> dict[str, object]:
    """Keyword arguments of ``splineforecast.evaluation.evaluate``: forecasts of stride-spaced windows over a
    finite series, an observed mask, a scale, and the raw ``actual`` (NaN where unobserved)."""
    lookback = draw(st.integers(1, 6))
    horizon = draw(st.integers(1, 4))
    season = draw(st.integers(1, 8))
    n = draw(st.integers(lookback + horizon, 40))
    stride = draw(st.integers(1, 3))
    starts = np.arange(0, n - lookback - horizon + 1, stride)
    observed = draw(arrays(np.bool_, n, elements=st.booleans()))
    series = draw(arrays(np.float64, n, elements=finite))
    actual = np.where(observed, draw(arrays(np.float64, n, elements=finite)), np.nan)
    return {
        "forecast": draw(arrays(np.float64, (len(starts), horizon), elements=finite)),
        "series": series,
        "observed": observed,
        "starts": starts,
        "lookback": lookback,
        "season_length": season,
        "scale": Scale(mase=draw(st.floats(0.1, 100.0)), mape_eps=draw(st.floats(1e-3, 10.0))),
        "actual": actual,
    }
