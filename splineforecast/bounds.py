"""The sizes a run may ask for: the one place every bound of the command line and the API is written.

A bound stops a size no machine can hold before anything is allocated: ``check_config`` refuses a
value outside its bound (CONFIG_ERROR naming the key, the value and the bound), and the estimate of
training memory refuses a combination of in-bound values whose parameters and activations alone
would not fit in :data:`MAX_TRAIN_BYTES`. The API accepts the tighter ``api`` bound of each key it
exposes. The input caps (``data.max_bytes``, ``data.max_rows``, ``data.max_columns``) and the covariate
spec caps are here too. Imports nothing heavy: the API and the startup checks both read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from splineforecast.errors import ContractError, ErrorCode

# defaults of the input caps (DataConfig), and the fixed caps of a covariate spec file
MAX_BYTES = 1 << 30  # data.max_bytes: 1 GiB of CSV
MAX_ROWS = 10_000_000  # data.max_rows: data rows of the CSV (header aside)
MAX_COLUMNS = 10_000  # data.max_columns: columns of the CSV header
SPEC_MAX_BYTES = 1 << 20  # a covariate spec file: 1 MiB
SPEC_MAX_DEPTH = 32  # nesting of a covariate spec's arrays and objects (covariate_spec.v1 needs 3)
OVERRIDE_MAX_CHARS = 1 << 20  # one command-line override (key=value)
OVERRIDE_MAX_DEPTH = 32  # nesting of an override's lists and dicts, before Hydra's parser recurses into them
SNIFF_BYTES = 1 << 16  # the first block of a data file, checked to be text before it is parsed
# a training's weights, gradients and Adam moments plus the activations of one batch, at least
MAX_TRAIN_BYTES = 256 << 30
_FLOAT = 4  # bytes of a float32


@dataclass(frozen=True)
class Bound:
    """The values a key accepts: ``low`` .. ``high`` on the command line, ``low`` .. ``api`` through the API."""

    low: int
    high: int
    api: int | None = None  # the API's upper bound, when it exposes the key; None = ``high``

    @property
    def api_high(self) -> int:
        return self.high if self.api is None else self.api


BOUNDS: dict[str, Bound] = {
    "data.lookback": Bound(1, 100_000, api=2000),
    "data.horizon": Bound(1, 10_000, api=500),
    "data.stride": Bound(1, 100_000),
    "data.batch_size": Bound(1, 65_536),
    "data.season_length": Bound(1, 100_000),
    "data.max_windows_per_series": Bound(1, 1_000_000_000),
    "data.max_bytes": Bound(1, 1 << 40),
    "data.max_rows": Bound(1, 1_000_000_000),
    "data.max_columns": Bound(1, 1_000_000),
    "model.hidden_size": Bound(1, 4096, api=512),
    "model.num_layers": Bound(1, 16, api=4),
    "model.series_embedding": Bound(0, 4096),
    "model.quantiles": Bound(0, 99),  # how many levels
    "trainer.max_epochs": Bound(1, 100_000, api=200),
    "backtest.folds": Bound(1, 1000),
}


def _human(n: float) -> str:
    """``n`` bytes as a short size (``3.0 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_bytes(n: int) -> str:
    """``n`` bytes, exactly and in a readable unit: ``3221225472 bytes (3.0 GiB)``."""
    return f"{n} bytes ({_human(n)})"


def check_bounds(values: Mapping[str, int | None]) -> None:
    """Refuse the first value outside its bound in :data:`BOUNDS` (None: unset, not checked).

    Raises:
        ContractError: CONFIG_ERROR naming the key, the value and the bound.
    """
    for key, value in values.items():
        bound = BOUNDS[key]
        if value is None or bound.low <= value <= bound.high:
            continue
        what = "the number of levels of `model.quantiles`" if key == "model.quantiles" else f"`{key}`"
        side = f">= {bound.low}" if value < bound.low else f"<= {bound.high}"
        raise ContractError(
            ErrorCode.CONFIG_ERROR,
            f"{what} ({value}) must be {side} (splineforecast/bounds.py: {key} in [{bound.low}, {bound.high}]); "
            "beyond it no machine holds the run: choose a value within the bound",
        )


@dataclass(frozen=True)
class NetSize:
    """The sizes that set a recurrent network's memory (``model.*`` and ``data.*`` as configured)."""

    cell_gates: int  # 4 for an LSTM, 3 for a GRU
    n_inputs: int  # input columns per step, at least (targets, covariates, series embedding)
    n_targets: int
    hidden_size: int
    num_layers: int
    lookback: int
    horizon: int
    batch_size: int
    n_levels: int = 1  # quantile levels forecast (1: a point forecast)
    segment: int = 1  # lookback steps per recurrent step


def train_bytes(s: NetSize) -> int:
    """A lower estimate of a training's memory: weights, gradients and two Adam moments of the recurrent
    core, its heads and the skip path, plus what one batch keeps for the backward pass (each layer's gates,
    cell and hidden state at every recurrent step)."""
    g, h = s.cell_gates, s.hidden_size
    step_in = h if s.segment > 1 else s.n_inputs
    core = g * h * (step_in + h + 2) + (s.num_layers - 1) * g * h * (2 * h + 2)
    heads = (h + 1) * s.horizon * s.n_targets * s.n_levels + (s.lookback + 1) * s.horizon
    steps = -(-s.lookback // s.segment)
    activations = s.batch_size * steps * s.num_layers * h * (g + 2)
    return _FLOAT * (4 * (core + heads) + activations)


def check_train_memory(s: NetSize, keys: Mapping[str, int]) -> None:
    """Refuse a network whose :func:`train_bytes` exceeds :data:`MAX_TRAIN_BYTES` (CONFIG_ERROR), naming
    the keys that size it with their values (``keys``) and both sizes."""
    need = train_bytes(s)
    if need > MAX_TRAIN_BYTES:
        listed = ", ".join(f"{k}={v}" for k, v in keys.items())
        raise ContractError(
            ErrorCode.CONFIG_ERROR,
            f"training needs at least {human_bytes(need)} ({listed}), above the bound of "
            f"{human_bytes(MAX_TRAIN_BYTES)} (splineforecast/bounds.py MAX_TRAIN_BYTES); "
            "lower model.hidden_size, model.num_layers, data.lookback or data.batch_size",
        )


def override_depth(text: str) -> int:
    """How deep the lists, dicts and calls of the override ``text`` nest, counted without parsing it (quoted
    text skipped): linear in its length, whatever the nesting."""
    depth = deepest = 0
    quote = ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]})":
            depth -= 1
    return deepest


def check_overrides(args: list[str]) -> None:
    """Refuse a command-line override too long or nested too deep for Hydra's parser (which recurses once per
    level) with CONFIG_ERROR naming its key, before Hydra reads the command line."""
    for arg in args:
        key = arg.split("=", 1)[0][:80]
        if len(arg) > OVERRIDE_MAX_CHARS:
            message = f"the override `{key}=...` is {len(arg)} characters, above the bound of {OVERRIDE_MAX_CHARS}"
            raise ContractError(ErrorCode.CONFIG_ERROR, message + "; put large values in a file and name its path")
        depth = override_depth(arg)
        if depth > OVERRIDE_MAX_DEPTH:
            message = (
                f"the override `{key}=...` nests {depth} levels deep, above the bound of {OVERRIDE_MAX_DEPTH} "
                "(splineforecast/bounds.py OVERRIDE_MAX_DEPTH); give the value flat, or as a file"
            )
            raise ContractError(ErrorCode.CONFIG_ERROR, message)
