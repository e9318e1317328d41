"""The panel split contract: the rule that cut every series of a panel, and each series' boundaries.

A record of :mod:`splineforecast.records` (versioned, read with the same checks); kept apart because
only panels use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from splineforecast.data.splits import PARTS, Split
from splineforecast.records import PartBounds, _build, _contract, _ordered, check_version


@dataclass(frozen=True)
class SeriesBounds:
    """One series of a panel: its id, where its rows start in processed.npz, and its parts (rows local to it)."""

    id: str
    offset: int
    rows: int
    train: PartBounds
    val: PartBounds
    test: PartBounds

    @property
    def split(self) -> Split:
        return Split(**{n: (getattr(self, n).start, getattr(self, n).stop) for n in PARTS})


@dataclass(frozen=True)
class PanelSplitContract:
    """split_contract.json of a panel: the rule that cut every series, and each series' boundaries.

    Series lie end to end in processed.npz (``offset``, ``rows``); each series' rows are exactly its
    train, val and test parts, so its split starts at local row 0 and ends at ``rows``.
    """

    SCHEMA: ClassVar[str] = "splineforecast.panel_split_contract.v1"

    run_id: str
    rule: str  # from_end (data.split sizes, from each series' end) | calendar (data.split.val_start/test_start)
    lookback: int
    horizon: int
    series: list[SeriesBounds]

    @classmethod
    def of(
        cls,
        run_id: str,
        rule: str,
        ids: Sequence[str],
        splits: Sequence[Split],
        stamps: Any,  # indexable by row: a sequence or an array
        lookback: int,
        horizon: int,
    ) -> PanelSplitContract:
        """The contract of series laid end to end; ``stamps`` are the timestamps of all rows, in that order."""
        series, offset = [], 0
        for sid, split in zip(ids, splits, strict=True):
            bounds = {
                n: PartBounds(a, b, str(stamps[offset + a]), str(stamps[offset + b - 1]))
                for n, (a, b) in split.parts().items()
            }
            series.append(SeriesBounds(str(sid), offset, split.n_rows, **bounds))
            offset += split.n_rows
        return cls(run_id, rule, lookback, horizon, series)

    @property
    def segments(self) -> list[tuple[int, Split]]:
        return [(s.offset, s.split) for s in self.series]

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.series]

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": self.SCHEMA, **dataclasses.asdict(self), "n_series": len(self.series)}

    @classmethod
    def from_json(cls, data: Any, path: Path, n_rows: int | None = None) -> PanelSplitContract:
        """Read and check: every series' parts contiguous and ordered, series end to end over ``n_rows``."""
        d = check_version(data, path, "schema_version", cls.SCHEMA, required=True)

        def part(p: dict[str, Any]) -> PartBounds:
            return PartBounds(int(p["start"]), int(p["stop"]), p["first"], p["last"])

        def bounds(s: dict[str, Any]) -> SeriesBounds:
            parts = {n: part(s[n]) for n in PARTS}
            return SeriesBounds(str(s["id"]), int(s["offset"]), int(s["rows"]), **parts)

        contract = _build(
            path,
            lambda: cls(
                d["run_id"], str(d["rule"]), int(d["lookback"]), int(d["horizon"]), [bounds(s) for s in d["series"]]
            ),
        )
        offset = 0
        for s in contract.series:
            if s.offset != offset or not _ordered(s.split) or s.split.n_rows != s.rows:
                raise _contract(
                    f"`{path}`: series {s.id!r} (offset {s.offset}, {s.rows} rows) does not follow the one before "
                    f"at row {offset}, or its parts are not contiguous and time-ordered: {s.split.parts()}"
                )
            offset += s.rows
        if not contract.series or (n_rows is not None and offset != n_rows):
            raise _contract(
                f"`{path}` covers {offset} rows in {len(contract.series)} series; processed.npz has {n_rows}"
            )
        return contract
