"""The quantile head: levels that cannot cross, the pinball loss against numpy, and the level rules."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from splineforecast.errors import ContractError, ErrorCode
from splineforecast.models.factory import build_network
from splineforecast.models.module import ForecastModule, masked_pinball
from splineforecast.models.networks import non_crossing, point_of
from splineforecast.models.registry import check_quantiles
from splineforecast.models.spec import DataSpec

SPEC = DataSpec(n_features=3, lookback=12, horizon=5, target_indices=(2, 0))
LEVELS = [0.025, 0.1, 0.5, 0.9, 0.975]


def _cfg(quantiles: list[float], norm: str = "last") -> dict[str, Any]:
    return {
        "name": "lstm",
        "hidden_size": 8,
        "num_layers": 1,
        "dropout": 0.0,
        "norm": norm,
        "skip": True,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "quantiles": quantiles,
    }


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.01, 1e3), norm=st.sampled_from(["last", "mean", "none"]))
def test_levels_never_cross_on_random_weights_and_inputs(seed: int, scale: float, norm: str) -> None:
    torch.manual_seed(seed)
    net = build_network(_cfg(LEVELS, norm), SPEC)
    with torch.no_grad():  # large random weights push the raw spread outputs far negative and positive
        for p in net.spread.parameters():  # type: ignore[union-attr]
            p.mul_(scale)
        out = net(torch.randn(6, SPEC.lookback, SPEC.n_features) * scale)
    assert out.shape == (6, SPEC.horizon, SPEC.n_targets, len(LEVELS))
    assert (out.diff(dim=-1) >= 0).all()
    assert torch.equal(point_of(out, net), out[..., LEVELS.index(0.5)])


@settings(max_examples=60, deadline=None)
@given(
    median=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=6),
    raw=st.lists(st.floats(-50, 50), min_size=4, max_size=4),
    n_below=st.integers(0, 4),
)
def test_non_crossing_orders_any_non_negative_steps(median: list[float], raw: list[float], n_below: int) -> None:
    m = torch.tensor(median, dtype=torch.float64)
    steps = torch.nn.functional.softplus(torch.tensor(raw, dtype=torch.float64)).expand(len(median), 4)
    out = non_crossing(m, steps, n_below)
    assert out.shape == (len(median), 5)
    assert (out.diff(dim=-1) >= 0).all()
    assert torch.equal(out[:, n_below], m)


def test_pinball_matches_numpy_by_hand() -> None:
    rng = np.random.default_rng(3)
    pred = np.sort(rng.normal(size=(4, 5, 2, 3)), axis=-1)
    y = rng.normal(size=(4, 5, 2))
    mask = rng.random((4, 5, 2)) > 0.4
    levels = np.array([0.1, 0.5, 0.9])
    total, count = 0.0, 0
    for idx in np.ndindex(*y.shape):
        if not mask[idx]:
            continue
        per_level = []
        for k, q in enumerate(levels):
            e = y[idx] - pred[idx][k]
            per_level.append(q * e if e >= 0 else (q - 1) * e)
        total += sum(per_level) / len(levels)
        count += 1
    got = masked_pinball(torch.tensor(pred), torch.tensor(y), torch.tensor(mask), torch.tensor(levels))
    assert got.item() == pytest.approx(total / count, rel=1e-12)


def test_module_trains_on_the_pinball_loss_and_point_nets_are_unchanged() -> None:
    spec = {"n_features": 3, "lookback": 12, "horizon": 5, "target_indices": [2, 0]}
    module = ForecastModule(_cfg([0.1, 0.5, 0.9]), spec)
    x = torch.randn(4, 12, 3)
    y, mask = torch.randn(4, 5, 2), torch.ones(4, 5, 2, dtype=torch.bool)
    out = module(x)
    expected = masked_pinball(out, y, mask, torch.tensor([0.1, 0.5, 0.9]))
    assert module.loss(out, y, mask).item() == pytest.approx(expected.item())
    plain = {k: v for k, v in _cfg([]).items() if k != "quantiles"}  # a checkpoint made before quantiles
    torch.manual_seed(0)
    old = build_network(plain, SPEC)
    torch.manual_seed(0)
    new = build_network(_cfg([]), SPEC)
    assert "spread.weight" not in old.state_dict() and old.state_dict().keys() == new.state_dict().keys()
    assert torch.equal(old(x), new(x)) and old(x).shape == (4, 5, 2)


@pytest.mark.parametrize(
    ("levels", "numbers"),
    [
        ([0.0, 0.5, 0.9], "[0.0]"),
        ([0.5, 1.2], "[1.2]"),
        ([0.9, 0.5, 0.1], "[0.9, 0.5, 0.1]"),
        ([0.1, 0.5, 0.5, 0.9], "[0.5] repeat"),
        ([0.1, 0.9], "0.5"),
    ],
    ids=["zero", "above_one", "unsorted", "duplicate", "no_median"],
)
def test_bad_levels_are_config_errors_naming_the_numbers(levels: list[float], numbers: str) -> None:
    with pytest.raises(ContractError) as err:
        check_quantiles(levels)
    assert err.value.code == ErrorCode.CONFIG_ERROR
    assert numbers in err.value.message and "model.quantiles" in err.value.message


def test_unknown_calibration_is_refused_and_good_levels_pass() -> None:
    check_quantiles([0.05, 0.5, 0.95], "conformal")
    check_quantiles([], "none")
    with pytest.raises(ContractError, match="model.calibration"):
        check_quantiles([0.05, 0.5, 0.95], "isotonic")
