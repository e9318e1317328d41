"""Setting M of the accuracy benchmark: all seven ETTh columns as one wide panel, one global model.

Each column is one series (channel-independent, PatchTST style) through the package's panel path: a
Config composed as the command line composes it (``data.target=[HUFL,...,OT]``), ``contracts.check_config``
and ``check_raw`` (the calendar cutoffs ``val_start``/``test_start`` are the timestamps of the protocol's
first val and test rows, and ``data.split.test`` its test row count), ``pipeline_panel.preprocess_panel``
(each channel scaled by its own train part), the WindowDataModule a run builds, and
``panel_eval.forecast_panel``/``score_series`` for the forecasts and the per-channel scores.

MSE/MAE are the literature's: in the scaled space, averaged over every test window (stride 1), step and
channel. MAE/RMSE/MASE are the means over channels of each channel's scores in its own units.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

import _common as common
import numpy as np
import pandas as pd

CHANNELS = (*common.LOADS, common.TARGET)
SEASON = 24
# ETTh1, setting M, lookback 96, horizon 96: (MSE, MAE) in the scaled space
PUBLISHED = {
    "SegRNN": (0.368, 0.395),
    "iTransformer": (0.386, 0.405),
    "DLinear": (0.386, 0.400),
    "PatchTST": (0.414, 0.419),
}
PUBLISHED_SOURCE = (
    "github.com/lss-1138/SegRNN README, 'Comparison Results for Lookback L = 96' (ETTh1, horizon 96; "
    "models other than SegRNN as published by iTransformer)"
)


def published_rows() -> list[dict[str, Any]]:
    """The published ETTh1 M results at lookback 96, horizon 96."""
    return [
        {"setting": "M", "horizon": 96, "lookback": 96, "model": name, "mse_scaled": mse, "mae_scaled": mae}
        | {"source": PUBLISHED_SOURCE}
        for name, (mse, mae) in PUBLISHED.items()
    ]


def cutoffs(path: str, sizes: tuple[int, int, int]) -> tuple[str, str]:
    """The timestamps of the first val row and the first test row of the protocol's split."""
    dates = pd.read_csv(path, usecols=["date"])["date"]
    a, b, _ = sizes
    return str(pd.Timestamp(dates.iloc[a])), str(pd.Timestamp(dates.iloc[a + b]))


# accuracy.py's flag (argparse dest) -> the product key it sets in setting M
M_KEYS = {
    "lookback": "data.lookback",
    "batch_size": "data.batch_size",
    "max_windows_per_series": "data.max_windows_per_series",
    "loss": "model.loss",
    "hidden": "model.hidden_size",
    "layers": "model.num_layers",
    "norm": "model.norm",
    "skip": "model.skip",
    "segment": "model.segment",
    "decoder": "model.decoder",
    "dropout": "model.dropout",
    "lr": "model.lr",
    "series_embedding": "model.series_embedding",
    "epochs": "trainer.max_epochs",
}
# without --experiment, the keys a caller's namespace may lack keep the values the README's M rows measured
FALLBACK = {"loss": "auto", "segment": 1, "decoder": "direct", "dropout": 0.0, "lr": 1e-3, "series_embedding": 0}


def _override(args: argparse.Namespace, dest: str) -> str:
    value = getattr(args, dest, FALLBACK.get(dest))
    if dest == "loss":  # auto: the MSE loss the README's M rows measured
        value = value.replace("auto", "mse")
    elif dest == "max_windows_per_series":
        value = value or "null"
    elif isinstance(value, bool):
        value = str(value).lower()
    return f"{M_KEYS[dest]}={value}"


def overrides(args: argparse.Namespace, horizon: int | None, model: str | None, seed: int) -> list[str]:
    """The product overrides of one M run. With ``--experiment`` they start from ``experiment=NAME`` and only
    the flags given (``args.explicit``) override it; without, every flag (or its default) sets its key."""
    experiment = getattr(args, "experiment", None)
    given = set(getattr(args, "explicit", M_KEYS)) if experiment else set(M_KEYS) | {"split"}
    out = [f"experiment={experiment}"] if experiment else ["data=etth1", f"data.target=[{','.join(CHANNELS)}]"]
    if not experiment:  # the protocol's standardised channels and the random init the README's M rows measured
        out += ["data.scaler=per_series", "model.skip_init=random"]
    out += [f"data.path={args.data}", f"seed={seed}"]
    if "split" in given:
        val_start, test_start = cutoffs(args.data, args.split)
        out += [f"data.split.val_start='{val_start}'", f"data.split.test_start='{test_start}'"]
        out.append(f"data.split.test={args.split[2]}")
    out += [f"data.horizon={horizon}"] if horizon is not None else []
    out += [f"model={model}"] if model is not None else []
    return out + [
        _override(args, dest) for dest in M_KEYS if dest in given and (hasattr(args, dest) or dest in FALLBACK)
    ]


def compose(args: argparse.Namespace, horizon: int | None, model: str | None, seed: int) -> Any:
    """The Config of the M run, composed as ``python -m splineforecast`` composes its overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from splineforecast.config import config_dir, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = OmegaConf.to_object(hydra_compose("config", overrides=overrides(args, horizon, model, seed)))
    return cfg


def panel_data(cfg: Any) -> tuple[Any, Any]:
    """The checked, preprocessed panel and the WindowDataModule a run trains on."""
    from splineforecast.contracts import PanelRawInputs, check_config, check_raw
    from splineforecast.models.spec import DataSpec
    from splineforecast.pipeline_panel import preprocess_panel
    from splineforecast.windows import WindowDataModule

    check_config(cfg)
    raw = check_raw(cfg)
    assert isinstance(raw, PanelRawInputs)
    done = preprocess_panel(cfg, "benchmark-m", raw)
    p, d = done.processed, cfg.data
    spec = DataSpec(len(p.feature_names), d.lookback, d.horizon, tuple(p.target_indices), len(p.series_ids))
    segments = done.contract.segments
    data = WindowDataModule(
        p.values, p.observed_mask, segments, spec, d.stride, d.batch_size, cfg.seed, d.max_windows_per_series
    )
    return done, data


def check_protocol(done: Any, data: Any, sizes: tuple[int, int, int], lookback: int, horizon: int) -> None:
    """Every channel cut as the protocol cuts it; every stride-1 test window, lookback reaching into val."""
    a, b, c = sizes
    assert done.contract.ids == sorted(CHANNELS), done.contract.ids
    for s in done.contract.series:
        parts = s.split.parts()
        assert parts == {"train": (0, a), "val": (a, a + b), "test": (a + b, a + b + c)}, (s.id, parts)
    test, groups = data.datasets["test"], data.groups["test"]
    assert np.bincount(groups).tolist() == [c - horizon + 1] * len(CHANNELS), np.bincount(groups)
    for i, (first, split) in enumerate(done.contract.segments):
        starts = test.starts.numpy()[groups == i] - first
        assert starts.min() == split.test[0] - lookback and split.test[0] - lookback >= split.val[0]
        assert starts.max() + lookback + horizon == split.test[1]


def scaled_scores(forecasts: list[Any], pre: Any, lookback: int) -> dict[str, dict[str, float]]:
    """Scaled MSE/MAE of the model and the baselines, pooled over every window, step and channel."""
    from splineforecast.evaluation import aligned

    sq: dict[str, float] = {}
    ab: dict[str, float] = {}
    n = 0
    for i, tf in enumerate(forecasts):
        y, preds, points = aligned(tf.forecast, tf.series, tf.observed, tf.starts, lookback, SEASON, tf.actual)
        scale = float(pre.scalers_[i].scale_[0])  # the channel's train-part std: its scaled space
        for name, p in preds.items():
            err = (p[points] - y[points]) / scale
            sq[name] = sq.get(name, 0.0) + float((err**2).sum())
            ab[name] = ab.get(name, 0.0) + float(np.abs(err).sum())
        n += int(points.sum())
    return {name: {"mse_scaled": sq[name] / n, "mae_scaled": ab[name] / n} for name in sq}


def score(cfg: Any, done: Any, data: Any, net: Any) -> dict[str, dict[str, Any]]:
    """Per forecaster (model and baselines): the scaled scores and the mean over channels in their units."""
    from splineforecast.panel_eval import forecast_panel, panel_scores, score_series

    pre = done.preprocessor
    forecasts = forecast_panel(net, pre, done.processed, data.datasets["test"], data.groups["test"])
    scores, _ = panel_scores(score_series(forecasts, done.contract, cfg.data.lookback, SEASON))
    original = {"model": scores.metrics, **scores.baselines}
    out = {}
    for name, scaled in scaled_scores(forecasts, pre, cfg.data.lookback).items():
        out[name] = {**scaled, **{k: original[name][k] for k in ("mae", "rmse", "mase")}}
    return out


def run_horizon(
    args: argparse.Namespace, horizon: int | None, fit: Callable[[Any, Any, Any], tuple[int, float]], trainer_cfg: Any
) -> list[dict[str, Any]]:
    """Every model and seed of setting M at one horizon, and the baselines beside them."""
    rows: list[dict[str, Any]] = []
    first = getattr(args, "first_seed", 0)
    for model in args.models:  # None: the experiment's model
        for seed in range(first, first + args.seeds):
            cfg = compose(args, horizon, model, seed)
            done, data = panel_data(cfg)
            d, name = cfg.data, cfg.model.name
            check_protocol(done, data, args.split, d.lookback, d.horizon)
            module = common.seeded_module(dataclasses.asdict(cfg.model), data.spec, seed)
            epochs_cfg = cfg.trainer.max_epochs  # patience never stops the run early
            trainer = dataclasses.replace(trainer_cfg, max_epochs=epochs_cfg, patience=max(epochs_cfg, 8))
            epochs, seconds = fit(module, data, trainer)
            scored = score(cfg, done, data, module.net)
            n = len(data.datasets["test"])
            base = {"setting": "M", "horizon": d.horizon, "n_windows": n, "n_series": len(CHANNELS)}
            if not rows:
                rows += [{**base, "model": b, "seed": None, **scored[b]} for b in ("naive", "seasonal_naive")]
            windows = {k: len(v) for k, v in data.datasets.items()}
            epoch_windows = len(data.train_dataloader().sampler)
            facts = {"epochs": epochs, "train_seconds": seconds, "windows": windows, "epoch_windows": epoch_windows}
            rows.append({**base, "model": name, "seed": seed, **scored["model"], **facts})
            print(
                f"  M h={d.horizon} {name} seed={seed}: mse_scaled={scored['model']['mse_scaled']:.4f} "
                f"mae_scaled={scored['model']['mae_scaled']:.4f} ({seconds:.0f} s, {epochs} epochs of "
                f"{epoch_windows} windows)",
                flush=True,
            )
    return rows


def comparison(summary: list[dict[str, Any]], lookback: int) -> list[dict[str, Any]]:
    """Our M rows at horizon 96 (when the lookback is 96 too) beside the published ones, scaled MSE/MAE."""
    ours = [
        {"model": s["model"], "mse_scaled": s["mse_scaled"], "mae_scaled": s["mae_scaled"], "source": "measured"}
        for s in summary
        if s["setting"] == "M" and s["horizon"] == 96 and lookback == 96
    ]
    published = [{**r, "source": "published"} for r in published_rows()]
    return ours + published
