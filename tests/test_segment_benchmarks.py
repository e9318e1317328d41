"""The segment settings of the benchmark scripts: lookback.py end to end (``--quick``) on small generated files,
accuracy.py and overhead.py with ``--segment`` and ``--decoder``; each script imported as it imports its helpers."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from bench_helpers import BENCH, reimport, write_small_etth

pytestmark = pytest.mark.slow

SPLIT = "1100,300,300"


def _script(monkeypatch: pytest.MonkeyPatch, name: str) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    return reimport(name, "accuracy", "_multivariate", "_common")


def _half_hourly(path: Path) -> Path:
    """Four weeks of a half-hourly series with a daily and a weekly season."""
    t = np.arange(4 * 336)
    y = 100 + 10 * np.sin(2 * np.pi * t / 48) + 5 * np.sin(2 * np.pi * t / 336)
    y += np.random.default_rng(1).normal(0, 1, len(t))
    dates = pd.date_range("2000-06-05", periods=len(t), freq="30min").strftime("%Y-%m-%d %H:%M:%S")
    pd.DataFrame({"date": dates, "demand": y}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def etth_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_etth(tmp_path_factory.mktemp("etth") / "ETTh_small.csv", 1800, 0)


def test_lookback_times_both_segments_at_every_lookback_on_both_series(
    etth_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookback = _script(monkeypatch, "lookback")
    out = tmp_path / "lookback.json"
    argv = [
        "--data", str(etth_csv), "--split", SPLIT, "--series", str(_half_hourly(tmp_path / "demand.csv")),
        "--lookbacks", "48,100", "--horizon", "24", "--segment", "7", "--hidden", "8", "--layers", "1",
        "--quick", "--out", str(out),
    ]  # fmt: skip
    assert lookback.main(argv) == 0
    rows = json.loads(out.read_text())["rows"]
    trained = [r for r in rows if r["model"] == "lstm"]
    assert {(r["dataset"], r["lookback"], r["segment"], r["decoder"]) for r in trained} == {
        (d, lb, s, dec) for d in ("ETTh1", "demand") for lb in (48, 100) for s, dec in ((1, "direct"), (7, "parallel"))
    }
    for r in trained:
        assert r["epoch_s"] > 0 and np.isfinite([r["mse_scaled"], r["mae_scaled"]]).all()
        assert r["n_windows"] == {"ETTh1": 300, "demand": int(0.2 * 4 * 336)}[r["dataset"]] - 24 + 1
        if r["segment"] == 7:
            point = next(p for p in trained if p["segment"] == 1 and p["lookback"] == r["lookback"]
                         and p["dataset"] == r["dataset"])  # fmt: skip
            assert r["epoch_ratio"] == pytest.approx(r["epoch_s"] / point["epoch_s"])
    baselines = {(r["dataset"], r["model"]) for r in rows if r["model"] != "lstm"}
    assert baselines == {(d, b) for d in ("ETTh1", "demand") for b in ("naive", "seasonal_naive")}


def test_accuracy_and_overhead_train_the_segmented_network(
    etth_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    accuracy = _script(monkeypatch, "accuracy")
    out = tmp_path / "accuracy.json"
    argv = ["--data", str(etth_csv), "--split", SPLIT, "--settings", "S", "--horizons", "24", "--models", "gru",
            "--segment", "24", "--decoder", "parallel", "--quick", "--out", str(out)]  # fmt: skip
    assert accuracy.main(argv) == 0
    payload = json.loads(out.read_text())
    assert (payload["config"]["segment"], payload["config"]["decoder"]) == (24, "parallel")
    (gru,) = (r for r in payload["rows"] if r["model"] == "gru")
    assert np.isfinite(gru["mse_scaled"]) and gru["n_windows"] == 300 - 24 + 1

    overhead = _script(monkeypatch, "overhead")
    out = tmp_path / "overhead.json"
    argv = ["--data", str(etth_csv), "--split", SPLIT, "--segment", "24", "--decoder", "parallel", "--quick",
            "--out", str(out)]  # fmt: skip
    assert overhead.main(argv) == 0
    payload = json.loads(out.read_text())
    assert (payload["config"]["segment"], payload["config"]["decoder"]) == (24, "parallel")
    assert abs(payload["val_loss_gap"]) < 1e-3  # both sides trained the same segmented network the same way
