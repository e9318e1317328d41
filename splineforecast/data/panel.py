"""Panels: many series in one table, checked and cut per series.

A long table has one row per series and timestamp (``data.series_column`` holds the id, as text); a wide
table with ``data.target=[a, b, ...]`` makes each listed column one series (its id is the column name).
Every series is validated on its own (messages name the series id and the file line), put on the time
grid, and split on its own: ``data.split`` sizes from each series' end, or calendar cutoffs. A series too
short for a window in some part is left out and counted; the rows a series' split does not use are dropped,
so each kept series is exactly its train, val and test rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from splineforecast.data.splits import Split

WIDE_SERIES_COLUMN = "series"  # the series id column of a wide table's panel (ids: the target columns)
WIDE_TARGET = "value"  # the target column of a wide table's panel


@dataclass
class SeriesFrame:
    """One kept series: its rows on the time grid (target, then covariates) and its split (local rows)."""

    id: str
    frame: pd.DataFrame  # DatetimeIndex on the grid; exactly the rows of `split` (train starts at row 0)
    split: Split


@dataclass
class PanelTable:
    """The checked series of a panel, sorted by id, and the ones left out."""

    series_column: str
    target: str  # the target column of every series' frame
    series: list[SeriesFrame]
    left_out: dict[str, str]  # series id -> reason
    freq: str
    rule: str  # from_end | calendar
    notes: dict[str, Any] = field(default_factory=dict)  # what validation did (rows, sorted, off grid, ...)
    wide: list[str] | None = None  # the wide table's target columns, when the panel came from one

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.series]
