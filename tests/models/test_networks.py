"""Every registry model with every norm: shapes, finite loss, gradients, level equivariance."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch

from splineforecast.errors import ContractError, ErrorCode
from splineforecast.models.factory import REGISTRY, build_network
from splineforecast.models.module import ForecastModule, masked_mse
from splineforecast.models.registry import NORMS
from splineforecast.models.spec import DataSpec

SPEC = DataSpec(n_features=3, lookback=12, horizon=5, target_indices=(2, 0))
BATCH = 4


def _model_cfg(name: str, norm: str, skip: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "hidden_size": 8,
        "num_layers": 2,
        "dropout": 0.0,
        "norm": norm,
        "skip": skip,
        "lr": 1e-3,
        "weight_decay": 0.0,
    }


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, SPEC.lookback, SPEC.n_features, generator=g)
    y = torch.randn(BATCH, SPEC.horizon, SPEC.n_targets, generator=g)
    mask = torch.rand(BATCH, SPEC.horizon, SPEC.n_targets, generator=g) > 0.3
    return x, y, mask


CASES = list(itertools.product(sorted(REGISTRY), NORMS, [True, False]))


@pytest.mark.parametrize(("name", "norm", "skip"), CASES)
def test_shape_loss_and_gradients(name: str, norm: str, skip: bool) -> None:
    torch.manual_seed(0)
    net = build_network(_model_cfg(name, norm, skip), SPEC)
    x, y, mask = _batch()
    out = net(x)
    assert out.shape == (BATCH, SPEC.horizon, SPEC.n_targets)
    loss = masked_mse(out, y, mask)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    params = dict(net.named_parameters())
    assert params and any(k.startswith("skip") for k in params) is skip
    for key, p in params.items():
        assert p.grad is not None, key
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, key


@pytest.mark.parametrize(("name", "norm"), itertools.product(sorted(REGISTRY), ["last", "mean"]))
def test_level_equivariance(name: str, norm: str) -> None:
    """Adding a constant to every input shifts every output by that constant."""
    torch.manual_seed(0)
    net = build_network(_model_cfg(name, norm), SPEC).eval()
    x, _, _ = _batch(1)
    with torch.no_grad():
        base = net(x)
        for c in (-7.5, 3.0, 250.0):
            torch.testing.assert_close(net(x + c), base + c, rtol=0, atol=1e-4 * max(1.0, abs(c)))


def test_norm_none_is_not_level_equivariant() -> None:
    """The control case: without normalisation the shift is not passed through."""
    torch.manual_seed(0)
    net = build_network(_model_cfg("lstm", "none"), SPEC).eval()
    x, _, _ = _batch(1)
    with torch.no_grad():
        assert (net(x + 3.0) - net(x) - 3.0).abs().max() > 1e-2


def test_masked_mse_ignores_unobserved_points() -> None:
    x, y, mask = _batch(2)
    pred = torch.randn_like(y)
    changed = torch.where(mask, y, y + 100.0)
    assert masked_mse(pred, y, mask) == masked_mse(pred, changed, mask)
    expected = ((pred - y)[mask] ** 2).mean()
    torch.testing.assert_close(masked_mse(pred, y, mask), expected)
    assert masked_mse(pred, y, torch.zeros_like(mask)) == 0


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_module_step_and_optimizer(name: str) -> None:
    torch.manual_seed(0)
    spec = {"n_features": 3, "lookback": 12, "horizon": 5, "target_indices": [2, 0]}
    module = ForecastModule(_model_cfg(name, "last"), spec)
    x, y, mask = _batch(3)
    torch.testing.assert_close(module._step((x, y, mask), "train"), masked_mse(module(x), y, mask))
    optimizer = module.configure_optimizers()
    assert optimizer.param_groups[0]["lr"] == 1e-3
    assert module.hparams["spec"] == spec  # plain values, so checkpoints load with weights_only


def test_unknown_model_name_is_a_config_error() -> None:
    with pytest.raises(ContractError) as info:
        build_network(_model_cfg("transformer", "last"), SPEC)
    assert info.value.code is ErrorCode.CONFIG_ERROR


def test_the_losses_score_observed_points_only_and_every_registered_loss_exists() -> None:
    from splineforecast.models.module import LOSS_FUNCTIONS
    from splineforecast.models.registry import LOSSES

    assert tuple(LOSS_FUNCTIONS) == LOSSES
    pred = torch.tensor([[1.0, 2.0, 10.0]])
    target = torch.tensor([[0.0, 4.0, -50.0]])
    mask = torch.tensor([[True, True, False]])  # the last point was imputed: no loss
    assert LOSS_FUNCTIONS["mae"](pred, target, mask).item() == pytest.approx(1.5)
    assert LOSS_FUNCTIONS["mse"](pred, target, mask).item() == pytest.approx(2.5)


@pytest.mark.parametrize(("name", "norm"), list(itertools.product(sorted(REGISTRY), NORMS)))
def test_seasonal_skip_init_starts_as_the_seasonal_naive_forecast(name: str, norm: str) -> None:
    """Step h of the untrained network is the target ``season * (h // season + 1)`` steps before it."""
    season = 4
    spec = DataSpec(n_features=3, lookback=12, horizon=9, target_indices=(2, 0), season_length=season)
    net = build_network({**_model_cfg(name, norm), "skip_init": "seasonal"}, spec)
    x = torch.randn(BATCH, spec.lookback, spec.n_features, generator=torch.Generator().manual_seed(3))
    expected = torch.stack(
        [x[:, spec.lookback + h - season * (h // season + 1)][:, [2, 0]] for h in range(spec.horizon)], dim=1
    )
    torch.testing.assert_close(net(x), expected)
    random = build_network(_model_cfg(name, norm), spec)  # the default init ignores season_length
    assert not torch.allclose(random(x), expected)
