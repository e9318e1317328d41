"""Recurrent forecasters in pure torch: an LSTM or GRU core, point-wise or over segments (SegRNN), with a direct
or a parallel multi-step decoder."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from splineforecast.models.registry import CELLS, MEDIAN, check_segment

_Out = TypeVar("_Out", torch.Tensor, np.ndarray)


class RecurrentForecaster(nn.Module):
    """LSTM/GRU over the lookback, point-wise or in segments; the horizon decoded from its state.

    With ``norm="last"`` (or ``"mean"``) every window is made relative to its last value (or
    mean) before the network and the level is added back after the head, so a series that
    trends beyond the training range looks like the ones seen in training. ``skip`` adds a
    linear map from the (normalised) target lookback to the horizon, which carries seasonality.

    ``segment`` > 1 (SegRNN, Lin et al. 2023) cuts the lookback into segments of that many steps; each
    segment (every input column of its steps) is embedded by a linear layer and a ReLU into
    ``hidden_size`` values, one recurrent step each, so the core runs ``ceil(lookback / segment)`` steps
    instead of ``lookback``. A lookback that is not a multiple of the segment is padded at its far (oldest)
    end with copies of its oldest step, so every step reaches the core. ``segment=1`` feeds each time step
    as it is (no embedding layer).

    ``decoder="direct"`` maps the last hidden state to every horizon step at once. ``"parallel"`` (SegRNN's
    parallel multi-step decoding) runs one recurrent step of the same core for each of the
    ``ceil(horizon / segment)`` horizon segments, all from the encoder's final state, each fed a learned
    embedding of its position (and the series' vector in a panel); a linear head maps each step's output
    to the segment's values, and the steps past the horizon are cropped.

    Args:
        cell: a name of ``models.registry.CELLS``.
        n_features: input columns per step.
        target_indices: columns forecast, in output order.
        lookback, horizon: window lengths.
        hidden_size, num_layers, dropout: the recurrent core; with ``segment`` > 1 or the parallel decoder, the
            heads' input also passes through dropout (SegRNN's).
        norm: ``last``, ``mean`` or ``none``.
        skip: add the linear lookback -> horizon path.
        n_series, series_embedding: a panel's series count and the size of the learned vector of each
            series, fed beside the (normalised, embedded) inputs at every step; 0 = none.
        season_length: > 0 starts the skip path as the seasonal naive forecast at this lag (step ``h``
            copies the input ``season_length * (h // season_length + 1)`` steps before it) and the head at
            zero, so the untrained network forecasts exactly that baseline; 0 keeps PyTorch's init.
        quantiles: increasing levels holding 0.5; set, ``forward`` returns every level (last axis): the
            median is the point forecast above, and the other levels lie below or above it by cumulative
            softplus increments of a second head, so they cannot cross. ``()``: the point forecast only.
        segment: steps per segment of the lookback (and of the horizon, decoding in parallel), 1..lookback.
        decoder: a name of ``models.registry.DECODERS``.
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
        segment: int = 1,
        decoder: str = "direct",
    ) -> None:
        super().__init__()
        check_segment(segment, decoder, lookback)
        rnn_cls = getattr(nn, CELLS[cell])
        self.horizon, self.n_targets, self.norm = horizon, len(target_indices), norm
        self.segment, self.decoder = segment, decoder
        self.target_indices: torch.Tensor
        self.register_buffer("target_indices", torch.as_tensor(target_indices, dtype=torch.long))
        self.embed = nn.Embedding(n_series, series_embedding) if n_series and series_embedding else None
        step_size = hidden_size if segment > 1 else n_features  # what one recurrent step reads, series aside
        self.rnn = rnn_cls(
            step_size + (series_embedding if self.embed is not None else 0),
            hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.n_out = -(-horizon // segment) if decoder == "parallel" else 1  # decoded steps
        out_steps = segment if decoder == "parallel" else horizon  # horizon steps per decoded step
        self.head = nn.Linear(hidden_size, out_steps * self.n_targets)
        self.skip = nn.Linear(lookback, horizon) if skip else None
        if season_length and self.skip is not None:
            seasonal_start(self.skip, self.head, season_length)
        self.quantiles = tuple(float(q) for q in quantiles)
        self.n_below = self.quantiles.index(0.5) if self.quantiles else 0  # levels below the median
        n_spread = out_steps * self.n_targets * (len(quantiles) - 1)
        self.spread = nn.Linear(hidden_size, n_spread) if quantiles else None
        # created last, so that segment 1 with the direct decoder draws the same initial weights as before
        self.segments = nn.Linear(segment * n_features, hidden_size) if segment > 1 else None
        self.position = nn.Parameter(torch.randn(self.n_out, step_size)) if decoder == "parallel" else None
        # segment-wise (SegRNN) the head also reads its input through dropout; point-wise, only the core's layers do
        segmented = segment > 1 or decoder == "parallel"
        self.head_dropout = nn.Dropout(dropout) if segmented and dropout > 0 else None

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
        vector = self._series_vector(series)
        out, state = self.rnn(self._with_series(self._steps(z), vector))  # (batch, steps, hidden)
        features = out[:, -1:] if self.position is None else self._decode(state, vector)  # (batch, n_out, hidden)
        if self.head_dropout is not None:
            features = self.head_dropout(features)
        y = self._to_horizon(self.head(features))
        z_target = z[:, :, self.target_indices]  # (batch, lookback, n_targets)
        if self.skip is not None:
            y = y + self.skip(z_target.transpose(1, 2)).transpose(1, 2)
        y = y + level[:, :, self.target_indices]
        if self.spread is None:
            return y
        steps = self._to_horizon(F.softplus(self.spread(features)), len(self.quantiles) - 1)
        return non_crossing(y, steps, self.n_below)

    def _series_vector(self, series: torch.Tensor | None) -> torch.Tensor | None:
        if self.embed is None:
            return None
        if series is None:
            raise ValueError("this network has a series embedding: pass each window's series index")
        return self.embed(series)  # (batch, dim)

    @staticmethod
    def _with_series(inputs: torch.Tensor, vector: torch.Tensor | None) -> torch.Tensor:
        """Each step's inputs with the series' vector beside them: (batch, steps, size [+ dim])."""
        if vector is None:
            return inputs
        return torch.cat([inputs, vector[:, None, :].expand(-1, inputs.shape[1], -1)], dim=2)

    def _steps(self, z: torch.Tensor) -> torch.Tensor:
        """The normalised lookback -> the core's input steps: as it is, or one embedded segment a step."""
        if self.segments is None:
            return z
        pad = -z.shape[1] % self.segment  # the far end takes copies of the oldest step
        if pad:
            z = torch.cat([z[:, :1].expand(-1, pad, -1), z], dim=1)
        cut = z.reshape(z.shape[0], -1, self.segment * z.shape[2])  # (batch, n_segments, segment * n_features)
        return F.relu(self.segments(cut))

    def _decode(self, state: torch.Tensor | tuple[torch.Tensor, ...], vector: torch.Tensor | None) -> torch.Tensor:
        """One recurrent step per horizon segment from the encoder's final state: (batch, n_out, hidden)."""
        assert self.position is not None
        batch = (state[0] if isinstance(state, tuple) else state).shape[1]
        inputs = self._with_series(self.position.expand(batch, -1, -1), vector)  # (batch, n_out, size)
        inputs = inputs.reshape(batch * self.n_out, 1, -1)  # each horizon segment a sequence of one step
        if isinstance(state, tuple):  # LSTM: (h, c), each (num_layers, batch, hidden)
            repeated: torch.Tensor | tuple[torch.Tensor, ...] = tuple(
                s.repeat_interleave(self.n_out, dim=1) for s in state
            )
        else:
            repeated = state.repeat_interleave(self.n_out, dim=1)
        out, _ = self.rnn(inputs, repeated)  # (batch * n_out, 1, hidden)
        return out.reshape(batch, self.n_out, -1)

    def _to_horizon(self, values: torch.Tensor, *trailing: int) -> torch.Tensor:
        """A head's (batch, n_out, out_steps * n_targets * prod(trailing)) -> (batch, horizon, n_targets, *trailing),
        the decoded steps past the horizon cropped."""
        y = values.reshape(values.shape[0], -1, self.n_targets, *trailing)
        return y[:, : self.horizon]


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
