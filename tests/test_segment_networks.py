"""Segment-wise recurrence (``model.segment``) and parallel decoding (``model.decoder``): shapes and gradients
over the registry, segment 1 as the point-wise network bit for bit, the documented padding, and the refusals."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import Compose

from splineforecast.contracts import check_config
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.models.factory import REGISTRY, build_network
from splineforecast.models.module import masked_mse, masked_pinball
from splineforecast.models.networks import RecurrentForecaster
from splineforecast.models.registry import DECODERS
from splineforecast.models.spec import DataSpec

FIXTURES = Path(__file__).parent / "fixtures"
# three input columns (two of them targets), a panel of four series; 12 is no multiple of 5 (padded)
SPEC = DataSpec(n_features=3, lookback=12, horizon=5, target_indices=(2, 0), n_series=4)
LEVELS = [0.1, 0.5, 0.9]
BATCH = 6


def _cfg(name: str, segment: int, decoder: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "hidden_size": 8,
        "num_layers": 2,
        "dropout": 0.0,
        "norm": "last",
        "skip": True,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "segment": segment,
        "decoder": decoder,
        **extra,
    }


def _batch(spec: DataSpec = SPEC, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, spec.lookback, spec.n_features, generator=g)
    y = torch.randn(BATCH, spec.horizon, spec.n_targets, generator=g)
    mask = torch.rand(BATCH, spec.horizon, spec.n_targets, generator=g) > 0.3
    series = torch.arange(BATCH) % max(spec.n_series, 1)
    return x, y, mask, series


# segment 1 (point-wise), 5 (the lookback padded to 15, the horizon decoded as one segment and cropped),
# 12 (the whole lookback one segment) and 2 (three horizon segments, the last cropped)
COMBINATIONS = list(itertools.product(sorted(REGISTRY), [1, 2, 5, 12], DECODERS))
VARIANTS = {
    "point": {},
    "panel_quantiles": {"series_embedding": 3, "quantiles": LEVELS, "norm": "mean"},
    "no_skip_no_norm": {"skip": False, "norm": "none"},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize(("name", "segment", "decoder"), COMBINATIONS)
def test_shapes_and_gradients_of_every_segment_decoder_and_core(
    name: str, segment: int, decoder: str, variant: str
) -> None:
    torch.manual_seed(0)
    net = build_network(_cfg(name, segment, decoder, **VARIANTS[variant]), SPEC)
    x, y, mask, series = _batch()
    out = net(x, series)
    quantiles = VARIANTS[variant].get("quantiles")
    assert out.shape == (BATCH, SPEC.horizon, SPEC.n_targets, *([len(LEVELS)] if quantiles else []))
    loss = masked_pinball(out, y, mask, torch.tensor(LEVELS)) if quantiles else masked_mse(out, y, mask)
    loss.backward()
    params = dict(net.named_parameters())
    assert ("segments.weight" in params) is (segment > 1)
    assert ("position" in params) is (decoder == "parallel")
    assert ("embed.weight" in params) is bool(quantiles)
    # one encoder step from a zero state, decoded directly: no hidden-to-hidden path to learn
    still = {k for k in params if k.startswith("rnn.weight_hh")} if (segment, decoder) == (12, "direct") else set()
    for key, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), key
        assert bool(p.grad.abs().sum() > 0) is (key not in still), key
    if quantiles:
        assert (out.diff(dim=-1) >= 0).all()  # the levels do not cross


@pytest.mark.parametrize(("name", "segment", "decoder"), [c for c in COMBINATIONS if c[1] > 1])
def test_segments_keep_level_equivariance_and_the_series_changes_the_forecast(
    name: str, segment: int, decoder: str
) -> None:
    """norm=last: adding a constant shifts every output by it; a panel's series vector reaches the forecast."""
    torch.manual_seed(0)
    net = build_network(_cfg(name, segment, decoder, series_embedding=3), SPEC).eval()
    x, _, _, series = _batch(seed=1)
    with torch.no_grad():
        base = net(x, series)
        torch.testing.assert_close(net(x + 40.0, series), base + 40.0, rtol=0, atol=1e-3)
        assert (net(x, (series + 1) % SPEC.n_series) - base).abs().max() > 1e-4


def test_segment_1_with_the_direct_decoder_is_the_point_wise_network_bit_for_bit() -> None:
    """Recorded from the point-wise network before segments existed: the seeded initial weights, the state_dict
    keys and the outputs, for both cores, with a panel's embedding, quantiles, norm=mean and the seasonal start."""
    recorded = torch.load(FIXTURES / "segment" / "pointwise.pt", weights_only=True)
    assert len(recorded) == 8
    spec = DataSpec(n_features=3, lookback=12, horizon=5, target_indices=(2, 0), n_series=4, season_length=4)
    for key, case in recorded.items():
        for cfg in (case["cfg"], {**case["cfg"], "segment": 1, "decoder": "direct"}):
            torch.manual_seed(0)
            net = build_network(cfg, spec).eval()
            assert list(net.state_dict()) == case["keys"], key
            with torch.no_grad():
                assert torch.equal(net(case["x"], case["series"]), case["y"]), key


def test_a_checkpoint_from_before_segments_loads_as_segment_1() -> None:
    from splineforecast import serving

    net, spec = serving.load_network(FIXTURES / "legacy_run" / "artifacts" / "checkpoints" / "legacy" / "best.ckpt")
    assert isinstance(net, RecurrentForecaster)
    assert (net.segment, net.decoder, net.segments, net.position) == (1, "direct", None, None)
    with torch.no_grad():
        assert net(torch.zeros(2, spec.lookback, spec.n_features)).shape == (2, spec.horizon, spec.n_targets)


@pytest.mark.parametrize("decoder", DECODERS)
def test_a_lookback_no_multiple_of_the_segment_is_padded_at_its_oldest_end(decoder: str) -> None:
    """Segment 7 over lookback 100: 15 segments, the first holding 5 copies of the oldest step and steps 0-1.
    The core (skip path off) forecasts as the same weights do on the padded 105-step window; each step counts."""
    short, padded = DataSpec(2, 100, 24, (0,)), DataSpec(2, 105, 24, (0,))
    torch.manual_seed(0)
    net = build_network(_cfg("gru", 7, decoder, skip=False), short).eval()
    twin = build_network(_cfg("gru", 7, decoder, skip=False), padded).eval()
    twin.load_state_dict(net.state_dict())
    x = _batch(short, seed=2)[0]
    with torch.no_grad():
        out = net(x)
        torch.testing.assert_close(out, twin(torch.cat([x[:, :1].expand(-1, 5, -1), x], dim=1)), rtol=0, atol=0)
        for step in (0, 1, 99):  # the oldest steps reach the core as well as the newest
            changed = x.clone()
            changed[:, step, 0] += 1.0
            assert (net(changed) - out).abs().max() > 1e-6, step


def test_parallel_decoding_runs_one_recurrent_step_per_horizon_segment() -> None:
    """Horizon 96 in segments of 24 over lookback 96: the encoder runs 4 steps, the decoder 4 sequences of 1."""
    spec = DataSpec(1, 96, 96, (0,))
    net = build_network(_cfg("lstm", 24, "parallel"), spec)
    lengths: list[tuple[int, int]] = []
    net.rnn.register_forward_hook(lambda _m, args, _o: lengths.append(tuple(args[0].shape[:2])))
    assert net(torch.randn(3, 96, 1)).shape == (3, 96, 1)
    assert lengths == [(3, 4), (3 * 4, 1)]
    assert net.position is not None and net.position.shape == (4, 8)


BAD = [
    (["model.segment=0"], "`model.segment` (0) must be >= 1"),
    (["model.segment=-3"], "`model.segment` (-3) must be >= 1"),
    (["model.segment=17"], "`model.segment` (17) must be <= `data.lookback` (16)"),
    (["model.decoder=seq2seq"], "`model.decoder` (seq2seq) must be one of ['direct', 'parallel']"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[o[0] for o, _ in BAD])
def test_bad_segment_and_decoder_are_config_errors_at_startup_and_in_the_library(
    compose: Compose, overrides: list[str], message: str
) -> None:
    cfg = compose(["data=tiny", "run_id=v", *overrides])
    with pytest.raises(ContractError) as err:
        check_config(cfg)
    assert err.value.code is ErrorCode.CONFIG_ERROR and err.value.exit_code == 25 and message in err.value.message
    with pytest.raises(ContractError) as built:
        build_network(_cfg("lstm", cfg.model.segment, cfg.model.decoder), DataSpec(1, 16, 4, (0,)))
    assert built.value.message == err.value.message


def test_the_whole_lookback_as_one_segment_is_accepted(compose: Compose) -> None:
    check_config(compose(["data=tiny", "run_id=v", "model.segment=16", "model.decoder=parallel"]))


@pytest.mark.parametrize(("segment", "decoder"), [(1, "direct"), (4, "direct"), (1, "parallel"), (4, "parallel")])
def test_dropout_reaches_the_head_segment_wise_only(segment: int, decoder: str) -> None:
    """Segment-wise, model.dropout also drops the heads' input in training (SegRNN's); point-wise it acts between
    the core's layers only, as before: one layer, the training forward is deterministic."""
    torch.manual_seed(0)
    net = build_network(_cfg("gru", segment, decoder, dropout=0.5, num_layers=1), SPEC).train()
    x, _, _, series = _batch()
    segmented = (segment, decoder) != (1, "direct")
    assert bool((net(x, series) - net(x, series)).abs().max() > 0) is segmented
    net.eval()
    torch.testing.assert_close(net(x, series), net(x, series), rtol=0, atol=0)
