"""Setting M of benchmarks/accuracy.py (all seven columns as one wide panel) on a small ETTh-format file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from bench_helpers import import_accuracy

CHANNELS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
TRAIN, VAL, TEST = 400, 150, 150
LOOKBACK, HORIZON = 24, 24


@pytest.fixture
def accuracy(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The benchmark module, imported as its script imports its helpers."""
    return import_accuracy(monkeypatch)


def wide_csv(path: Path) -> Path:
    """740 hourly rows (10 past the protocol's test part) of seven channels on very different scales."""
    rng = np.random.default_rng(3)
    n = TRAIN + VAL + TEST + 40
    t = np.arange(n)
    frame = pd.DataFrame({"date": pd.date_range("2016-07-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S")})
    for i, name in enumerate(CHANNELS):
        level, amp = 10.0 ** (i % 3), 1.0 + i
        frame[name] = level + amp * np.sin(2 * np.pi * (t + 3 * i) / 24) + 0.3 * amp * rng.standard_normal(n)
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_setting_m_runs_the_panel_on_the_protocol_split(
    accuracy: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = wide_csv(tmp_path / "etth_wide.csv"), tmp_path / "accuracy.json"
    argv = [
        "--data", str(data), "--out", str(out), "--split", f"{TRAIN},{VAL},{TEST}", "--settings", "M",
        "--horizons", str(HORIZON), "--lookback", str(LOOKBACK), "--models", "lstm", "--quick",
        "--hidden", "8", "--layers", "1", "--max-windows-per-series", "30",
    ]  # fmt: skip
    assert accuracy.main(argv) == 0
    payload = json.loads(out.read_text())
    rows = [r for r in payload["rows"] if r["setting"] == "M"]
    assert {r["model"] for r in rows} == {"lstm", "naive", "seasonal_naive"} and len(rows) == len(payload["rows"])
    per_channel = TEST - HORIZON + 1  # every stride-1 window with its targets in the test part
    assert all(r["n_windows"] == len(CHANNELS) * per_channel and r["n_series"] == len(CHANNELS) for r in rows)
    assert all(math.isfinite(r[k]) and r[k] > 0 for r in rows for k in ("mse_scaled", "mae_scaled", "mae", "mase"))
    (lstm,) = (r for r in rows if r["model"] == "lstm")
    assert lstm["windows"]["test"] == len(CHANNELS) * per_channel
    assert lstm["epoch_windows"] == len(CHANNELS) * 30  # data.max_windows_per_series caps each channel
    published = {r["model"]: r for r in payload["published"]}
    assert published["SegRNN"]["mse_scaled"] == 0.368 and published["PatchTST"]["mse_scaled"] == 0.414
    assert {"iTransformer", "DLinear"} <= published.keys()
    assert "SegRNN" in capsys.readouterr().out  # printed beside ours


def test_scaled_scores_are_each_channels_train_standardised_errors(accuracy: ModuleType, tmp_path: Path) -> None:
    """The scaled MSE of the model and of naive, recomputed by hand from the raw table and each channel's
    train-part mean and std, pooled over every test window, step and channel."""
    import argparse
    import dataclasses

    from _common import seeded_module
    from _multivariate import compose, panel_data, scaled_scores

    from splineforecast.evaluation import predict
    from splineforecast.panel_eval import forecast_panel

    data = wide_csv(tmp_path / "etth_wide.csv")
    args = argparse.Namespace(
        data=str(data), split=(TRAIN, VAL, TEST), lookback=LOOKBACK, batch_size=64, max_windows_per_series=None,
        hidden=8, layers=1, norm="last", skip=True,
    )  # fmt: skip
    cfg = compose(args, HORIZON, "lstm", 0)
    done, windows = panel_data(cfg)
    net = seeded_module(dataclasses.asdict(cfg.model), windows.spec, 0).net  # untrained: naive does not read it
    test, groups = windows.datasets["test"], windows.groups["test"]
    forecasts = forecast_panel(net, done.preprocessor, done.processed, test, groups)
    got = scaled_scores(forecasts, done.preprocessor, LOOKBACK)
    scaled_forecast = predict(net, test)[:, :, 0].astype(np.float64)  # the network's own (scaled) output
    raw = pd.read_csv(data)
    naive, model = [], []
    for i, name in enumerate(sorted(CHANNELS)):  # the panel's series order: ids sorted
        x = raw[name].to_numpy()
        z = (x - x[:TRAIN].mean()) / x[:TRAIN].std()  # StandardScaler: the population std
        origins = range(TRAIN + VAL, TRAIN + VAL + TEST - HORIZON + 1)
        truth = np.stack([z[o : o + HORIZON] for o in origins])
        naive.append(truth - np.stack([z[o - 1] for o in origins])[:, None])
        model.append(truth - scaled_forecast[groups == i])
    assert got["naive"]["mse_scaled"] == pytest.approx(float(np.mean(np.square(naive))), rel=1e-9)
    assert got["model"]["mse_scaled"] == pytest.approx(float(np.mean(np.square(model))), rel=1e-5)
    assert got["model"]["mae_scaled"] == pytest.approx(float(np.mean(np.abs(model))), rel=1e-5)
