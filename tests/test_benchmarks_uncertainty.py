"""benchmarks/uncertainty.py and benchmarks/backtest.py run end to end (``--quick``) on a small ETTh-format file;
what they print and write is what the product's runs recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from bench_helpers import benchmark_env, reimport, write_small_etth
from conftest import Cli

SPLIT = "700,250,250"
INTERVAL_KEYS = ("coverage_95", "width_95", "coverage_80", "width_80", "msis_95", "crps")


@pytest.fixture(scope="module")
def etth_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1300 hourly rows with ETTh1's eight columns: a daily cycle, a drift and noise in OT."""
    return write_small_etth(tmp_path_factory.mktemp("etth") / "ETTh_small.csv", 1300, 3)


@pytest.fixture
def run_bench(cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``benchmarks/<name>.py --quick``'s main in this process (no new interpreter to import torch and
    MLflow again) in ``cli``'s folder without the caller's MLflow run, its runs kept under ``cli.root/runs``;
    its stdout and JSON."""
    benchmark_env(monkeypatch, cli.root)

    def run(name: str, *args: str) -> tuple[str, dict]:
        out = cli.root / f"{name}.json"
        argv = [*args, "--out", str(out), "--runs", str(cli.root / "runs"), "--split", SPLIT, "--quick"]
        assert reimport(name, "_product", "_common").main(argv) == 0
        payload = json.loads(out.read_text())
        assert payload["benchmark"] == name and {"config", "machine", "rows"} <= payload.keys()
        return capsys.readouterr().out, payload

    return run


@pytest.mark.slow
def test_uncertainty_quick(etth_csv: Path, cli: Cli, run_bench: Any) -> None:
    stdout, payload = run_bench("uncertainty", "--data", str(etth_csv))
    assert "train_ratio" in stdout and "model (conformal)" in stdout and "seasonal_naive" in stdout
    rows = {r["variant"]: r for r in payload["rows"]}
    assert list(rows) == ["point", "conformal", "quantiles", "rolling"] and len(payload["rows"]) == 4
    for variant, row in rows.items():
        metrics = json.loads(Path(row["metrics_json"]).read_text())
        assert metrics["run_id"] == f"unc-{variant}-seed0"
        assert row["mae"] == metrics["metrics"]["mae"] and row["epochs"] == metrics["training"]["epochs"] == 1
        assert 0 < row["train_seconds"] < row["run_seconds"]
        if variant == "point":
            assert "uncertainty" not in metrics and "intervals" not in row
            continue
        unc = metrics["uncertainty"]
        assert unc["levels"] == [0.025, 0.1, 0.5, 0.9, 0.975] and row["calibration"] == unc["calibration"]
        for name, scores in row["intervals"].items():
            assert scores == {k: unc["scores"][name][k] for k in INTERVAL_KEYS}
            assert 0 <= scores["coverage_80"] <= scores["coverage_95"] <= 1
            assert 0 < scores["width_80"] < scores["width_95"] and scores["msis_95"] > 0 and scores["crps"] > 0
    assert rows["conformal"]["calibration"] == "conformal" and rows["quantiles"]["calibration"] == "none"
    calibration = cli.root / "runs/artifacts/model/unc-conformal-seed0/calibration.json"
    assert rows["conformal"]["method"] == json.loads(calibration.read_text())["method"]
    assert "method" not in rows["quantiles"]
    # calibration moves the intervals, never the median: both quantile runs trained alike score the same MAE
    assert rows["conformal"]["mae"] == rows["quantiles"]["mae"]
    assert rows["conformal"]["intervals"]["model"] != rows["quantiles"]["intervals"]["model"]
    rolled = json.loads((cli.root / "runs/artifacts/model/unc-rolling-seed0/calibration.json").read_text())
    assert rolled["window"] == 720 and rows["rolling"]["method"] == rolled["method"] == "cqr_relative"
    assert rows["rolling"]["mae"] == rows["conformal"]["mae"]
    assert rows["rolling"]["intervals"]["model"] != rows["conformal"]["intervals"]["model"]
    s = payload["summary"]
    for v in ("conformal", "quantiles", "rolling"):
        assert s["train_ratio"][v] == pytest.approx(rows[v]["train_seconds"] / rows["point"]["train_seconds"])
        assert s["train_ratio"][v] > 0 and s["run_ratio"][v] > 0
        assert s["median_mae_rel"][v] == pytest.approx(rows[v]["mae"] / rows["point"]["mae"] - 1)
    for v in ("conformal", "rolling"):
        cov = s["intervals"][v]["model"]["coverage_95"]
        assert s["targets_met"][v]["coverage_95"] is (abs(cov - 0.95) <= 0.02)
        assert s["targets_met"][v]["train_ratio"] is (s["train_ratio"][v] <= 1.1)


@pytest.mark.slow
def test_backtest_quick(etth_csv: Path, cli: Cli, run_bench: Any) -> None:
    stdout, payload = run_bench("backtest", "--data", str(etth_csv), "--folds", "3", "--step", "48", "--refit", "false")
    assert "across folds" in stdout and "seasonal_naive_mase" in stdout
    record = json.loads((cli.root / "runs/artifacts/metrics/bench-backtest/backtest.json").read_text())
    assert payload["backtest"] == record
    assert (record["folds"], record["step"], record["refit"]) == (3, 48, False)
    assert [r["offset"] for r in payload["rows"]] == [96, 48, 0]
    assert [f["model_from"] for f in record["per_fold"]] == ["bench-backtest-fold0"] * 3
    for row, fold in zip(payload["rows"], record["per_fold"], strict=True):
        assert {n: row[n] for n in ("model", "naive", "seasonal_naive")} == fold["scores"]
        metrics = json.loads((cli.root / f"runs/artifacts/metrics/{fold['run_id']}/metrics.json").read_text())
        assert row["model"]["mae"] == metrics["metrics"]["mae"] > 0
        assert row["seasonal_naive"]["mase"] == metrics["baselines"]["seasonal_naive"]["mase"] > 0
    for name in ("model", "naive", "seasonal_naive"):
        maes = [r[name]["mae"] for r in payload["rows"]]
        assert payload["aggregate"][name]["mae"]["mean"] == pytest.approx(np.mean(maes))
        assert payload["aggregate"][name]["mae"]["std"] == pytest.approx(np.std(maes))
        assert f"{np.mean(maes):.4f} ± {np.std(maes):.4f}" in stdout
    # the folds' test parts are 48 rows apart and end at the file's last row
    lasts = pd.to_datetime([r["test"]["last"] for r in payload["rows"]])
    assert list(np.diff(lasts) / pd.Timedelta(hours=1)) == [48, 48] and lasts[-1] == pd.Timestamp("2016-08-24 03:00")
