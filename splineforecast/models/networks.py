"""Recurrent forecasters in pure torch: an LSTM or GRU core with a direct multi-step head."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from splineforecast.models.registry import CELLS, MEDIAN

_Out = TypeVar("_Out", torch.Tensor, np.ndarray)


class RecurrentForecaster(nn.Module):
    """LSTM/GRU over the lookback; the last hidden state maps to all ``horizon`` steps at once.

    With ``norm="last"`` (or ``"mean"``) every window is made relative to its last value (or
    mean) before the network and the level is added back after the head, so a series that
    trends beyond the training range looks like the ones seen in training. ``skip`` adds a
    linear map from the (normalised) target lookback to the horizon, which carries seasonality.

    Args:
        cell: a name of ``models.registry.CELLS``.
        n_features: input columns per step.
        target_indices: columns forecast, in output order.
        lookback, horizon: window lengths.
        hidden_size, num_layers, dropout: the recurrent core.
        norm: ``last``, ``mean`` or ``none``.
        skip: add the linear lookback -> horizon path.
        n_series, series_embedding: a panel's series count and the size of the learned vector of each
            series, fed beside the (normalised) inputs at every step; 0 = none.
        season_length: > 0 starts the skip path as the seasonal naive forecast at this lag (step ``h``
            copies the input ``season_length * (h // season_length + 1)`` steps before it) and the head at
            zero, so the untrained network forecasts exactly that baseline; 0 keeps PyTorch's init.
        quantiles: increasing levels holding 0.5; set, ``forward`` returns every level (last axis): the
            median is the point forecast above, and the other levels lie below or above it by cumulative
            softplus increments of a second head, so they cannot cross. ``()``: the point forecast only.
    """

    def __init__(
        self,
        cell: str,
        n_features: int,
        target_indices: tuple[int, ...],
        lookback: int,
        horizon: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        norm: str = "last",
        skip: bool = True,
        n_series: int = 0,
        series_embedding: int = 0,
        season_length: int = 0,
        quantiles: tuple[float, ...] = (),
    ) -> None:
        super().__init__()
        rnn_cls = getattr(nn, CELLS[cell])
        self.horizon, self.n_targets, self.norm = horizon, len(target_indices), norm
        self.target_indices: torch.Tensor
        self.register_buffer("target_indices", torch.as_tensor(target_indices, dtype=torch.long))
        self.embed = nn.Embedding(n_series, series_embedding) if n_series and series_embedding else None
        self.rnn = rnn_cls(
            n_features + (series_embedding if self.embed is not None else 0),
            hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(hidden_size, horizon * self.n_targets)
        self.skip = nn.Linear(lookback, horizon) if skip else None
        if season_length and self.skip is not None:
            seasonal_start(self.skip, self.head, season_length)
        self.quantiles = tuple(float(q) for q in quantiles)
        self.n_below = self.quantiles.index(0.5) if self.quantiles else 0  # levels below the median
        self.spread = nn.Linear(hidden_size, horizon * self.n_targets * (len(quantiles) - 1)) if quantiles else None

    def forward(self, x: torch.Tensor, series: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, lookback, n_features), and each window's series index for a panel -> (batch, horizon, n_targets),
        or (batch, horizon, n_targets, len(quantiles)) with quantiles."""
        if self.norm == "last":
            level = x[:, -1:, :]  # (batch, 1, n_features)
        elif self.norm == "mean":
            level = x.mean(dim=1, keepdim=True)
        else:
            level = torch.zeros_like(x[:, -1:, :])
        z = x - level
        inputs = z
        if self.embed is not None:
            if series is None:
                raise ValueError("this network has a series embedding: pass each window's series index")
            vector = self.embed(series)[:, None, :].expand(-1, z.shape[1], -1)  # (batch, lookback, dim)
            inputs = torch.cat([z, vector], dim=2)
        out, _ = self.rnn(inputs)  # (batch, lookback, hidden)
        y = self.head(out[:, -1]).view(-1, self.horizon, self.n_targets)
        z_target = z[:, :, self.target_indices]  # (batch, lookback, n_targets)
        if self.skip is not None:
            y = y + self.skip(z_target.transpose(1, 2)).transpose(1, 2)
        y = y + level[:, :, self.target_indices]
        if self.spread is None:
            return y
        steps = F.softplus(self.spread(out[:, -1])).view(-1, self.horizon, self.n_targets, len(self.quantiles) - 1)
        return non_crossing(y, steps, self.n_below)


def non_crossing(median: torch.Tensor, steps: torch.Tensor, n_below: int) -> torch.Tensor:
    """(..., ) median and (..., n_levels - 1) non-negative steps -> (..., n_levels) increasing quantiles.

    Level ``k`` below the median lies the sum of the steps from it to the median below it, a level above
    it the sum of the steps up to it above: ordered whatever the steps are, as long as they are >= 0.
    """
    below = steps[..., :n_below].flip(-1).cumsum(-1).flip(-1)  # the outermost level takes every step
    above = steps[..., n_below:].cumsum(-1)
    m = median.unsqueeze(-1)
    return torch.cat([m - below, m, m + above], dim=-1)


def point_of(out: _Out, net: nn.Module) -> _Out:
    """A network's output (as a tensor or an array) -> its point forecast (batch, horizon, n_targets): the
    median of a quantile head."""
    quantiles = getattr(net, "quantiles", ())
    return out[..., quantiles.index(MEDIAN)] if quantiles else out


@torch.no_grad()
def seasonal_start(skip: nn.Linear, head: nn.Linear, season_length: int) -> None:
    """Set ``skip`` (lookback -> horizon) to the seasonal naive map and ``head`` to zero."""
    horizon, lookback = skip.weight.shape
    if season_length > lookback:
        raise ValueError(f"season_length {season_length} is longer than the lookback {lookback}")
    steps = torch.arange(horizon)
    source = lookback + steps - season_length * (steps // season_length + 1)
    skip.weight.zero_()
    skip.bias.zero_()
    skip.weight[steps, source] = 1.0
    head.weight.zero_()
    head.bias.zero_()
