"""DataSpec: what a network needs to know about its data (sizes, never values).

Code builds it from the data and hands it to ``build_network`` (no data-derived sizes in YAML). It lives
with the models, free of Lightning, so networks and their registry load without the training stack.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataSpec:
    """Sizes of a network's input and output windows."""

    n_features: int
    lookback: int
    horizon: int
    target_indices: tuple[int, ...]
    n_series: int = 0  # a panel: the series the windows come from (their index is fed with each window)
    season_length: int = 0  # data.season_length: the lag of the seasonal naive forecast (0: not recorded)

    @property
    def n_targets(self) -> int:
        return len(self.target_indices)
