"""The benchmark scripts run end to end (``--quick``) on a small ETTh-format file made here."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bench_helpers import BENCH, benchmark_env, reimport, write_small_etth
from conftest import Cli

SPLIT = "1100,300,300"
COMMON_KEYS = {"benchmark", "config", "machine", "rows"}


@pytest.fixture(scope="module")
def etth_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1800 hourly rows with ETTh1's eight columns: daily cycles, a drift and noise."""
    return write_small_etth(tmp_path_factory.mktemp("etth") / "ETTh_small.csv", 1800, 0)


def run_bench(cli: Cli, name: str, *args: str) -> tuple[str, dict]:
    """Run ``benchmarks/<name>.py`` in ``cli``'s folder and clean MLflow environment; its stdout and JSON."""
    out = Path(args[args.index("--out") + 1])
    proc = cli.run([sys.executable, str(BENCH / f"{name}.py"), *args], timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert COMMON_KEYS <= payload.keys()
    return proc.stdout, payload


@pytest.fixture
def run_main(cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``benchmarks/<name>.py``'s main in this process (no new interpreter to import torch again), in
    ``cli``'s folder without the caller's MLflow run; its stdout and JSON."""
    benchmark_env(monkeypatch, cli.root)

    def run(name: str, *args: str) -> tuple[str, dict]:
        assert reimport(name, "_multivariate", "_common").main(list(args)) == 0
        payload = json.loads(Path(args[args.index("--out") + 1]).read_text())
        assert COMMON_KEYS <= payload.keys()
        return capsys.readouterr().out, payload

    return run


@pytest.mark.slow
def test_accuracy_quick(etth_csv: Path, cli: Cli, run_main: Any) -> None:
    out = cli.root / "accuracy.json"
    stdout, payload = run_main(
        "accuracy", "--data", str(etth_csv), "--out", str(out), "--split", SPLIT, "--quick", "--models", "lstm",
        "--horizons", "24", "--norm", "none", "--no-skip",
    )  # fmt: skip
    assert "mse_scaled" in stdout and "seasonal_naive" in stdout  # the printed table
    assert payload["config"]["norm"] == "none" and payload["config"]["skip"] is False
    rows = payload["rows"]
    keys = {"setting", "horizon", "model", "seed", "mse_scaled", "mae_scaled", "mae", "rmse", "mase"}
    assert all(keys <= r.keys() for r in rows)
    assert {(r["setting"], r["model"]) for r in rows} == {
        (s, m) for s in ("S", "MS") for m in ("lstm", "naive", "seasonal_naive")
    }
    assert all(np.isfinite(r[k]) for r in rows for k in keys - {"setting", "horizon", "model", "seed"})
    # test windows: every stride-1 start whose horizon lies in the 300 test rows
    assert {r["n_windows"] for r in rows} == {300 - 24 + 1}


@pytest.mark.slow
def test_overhead_quick(etth_csv: Path, cli: Cli, run_main: Any) -> None:
    out = cli.root / "overhead.json"
    stdout, payload = run_main("overhead", "--data", str(etth_csv), "--out", str(out), "--split", SPLIT, "--quick")
    assert "ratio ours/raw" in stdout
    rows = payload["rows"]
    assert {r["side"] for r in rows} == {"ours", "raw"} and all(r["seconds"] > 0 for r in rows)
    # the ratio is what the rows say: the median over rounds of ours / raw
    seconds = {(r["round"], r["side"]): r["seconds"] for r in rows}
    rounds = sorted({r["round"] for r in rows})
    ratios = [seconds[(i, "ours")] / seconds[(i, "raw")] for i in rounds]
    assert payload["ratio"] == pytest.approx(statistics.median(ratios))
    assert abs(payload["val_loss_gap"]) < 1e-3  # both sides trained the same network the same way


@pytest.mark.slow
def test_startup_quick(etth_csv: Path, cli: Cli) -> None:
    out = cli.root / "startup.json"
    stdout, payload = run_bench(cli, "startup", "--data", str(etth_csv), "--out", str(out), "--split", SPLIT, "--quick")
    assert "first training step" in stdout
    what = {r["what"]: r for r in payload["rows"]}
    assert {"import pytorch_lightning", "contract error (data.lookback=0)", "first training step"} <= what.keys()
    assert what["contract error (data.lookback=0)"]["exit"] == 25 and what["first training step"]["exit"] == 0
    assert all(r["runs"] >= 1 and 0 < r["min_s"] <= r["median_s"] <= r["max_s"] for r in payload["rows"])


@pytest.mark.slow
def test_scale_small(etth_csv: Path, cli: Cli, run_main: Any) -> None:
    out = cli.root / "scale.json"
    stdout, payload = run_main("scale", "--rows", "5000", "--out", str(out), "--data", str(etth_csv))
    assert "preprocess: spline fill + scale" in stdout
    assert payload["missing_points"] > 0 and payload["unfilled_points"] == 0
    assert payload["epoch_windows"] == payload["windows"]["train"]
    assert all(r["seconds"] >= 0 and r["peak_rss_mb"] > 0 for r in payload["rows"])
