"""benchmarks/m4.py: the M4 scores on hand-computable cases, Naive2, and the script end to end on a small panel."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import Cli

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _m4  # noqa: E402
import _m4_intervals as intervals  # noqa: E402
import m4  # noqa: E402

HORIZON, SEASON, LOOKBACK = 8, 24, 48
# a daily profile with mean 1: multiplicative seasonality
PROFILE = 1 + 0.5 * np.sin(2 * np.pi * np.arange(SEASON) / SEASON)


def panel_files(root: Path) -> tuple[Path, Path, list[np.ndarray], np.ndarray]:
    """Six hourly-like series of 120-200 points, one of 30 (padded) and one of 5 (no train part), as M4 files."""
    rng = np.random.default_rng(0)
    lengths = [120, 140, 160, 180, 200, 150, 30, 5]
    series = []
    for i, n in enumerate(lengths):
        t = np.arange(n + HORIZON)
        level = 50 + 10 * i + 0.05 * t
        series.append(level * PROFILE[t % SEASON] + rng.normal(0, 1, n + HORIZON))
    width = max(lengths)
    train = pd.DataFrame([np.pad(s[:-HORIZON], (0, width - len(s) + HORIZON), constant_values=np.nan) for s in series])
    test = pd.DataFrame([s[-HORIZON:] for s in series])
    paths = []
    for name, frame in (("train", train), ("test", test)):
        frame.columns = [f"V{j + 2}" for j in range(frame.shape[1])]
        frame.insert(0, "V1", [f"H{i + 1}" for i in range(len(series))])
        paths.append(root / f"panel-{name}.csv")
        frame.to_csv(paths[-1], index=False)
    return paths[0], paths[1], [s[:-HORIZON] for s in series], test.iloc[:, 1:].to_numpy()


def run_m4(cli: Cli, *args: str) -> tuple[str, dict, Path]:
    train, test, _, _ = panel_files(cli.root)
    out = cli.root / "out"
    argv = [sys.executable, str(BENCH / "m4.py"), "--train", str(train), "--test", str(test), "--freq", "hourly"]
    proc = cli.run([*argv, "--horizon", str(HORIZON), "--lookback", str(LOOKBACK), "--out", str(out), *args])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads((out / "m4.json").read_text()), out


def test_smape_mase_owa_by_hand() -> None:
    y, f = np.array([[1.0, 3.0], [2.0, 4.0]]), np.array([[3.0, 1.0], [2.0, 4.0]])
    assert _m4.smape(y, f) == pytest.approx([100.0, 0.0])  # 200 * 2 / 4 at both steps; exact
    history = [np.array([1.0, 2.0, 4.0, 7.0])] * 2
    y2, f2 = np.array([[8.0, 9.0]] * 2), np.array([[7.0, 7.0]] * 2)
    # MAE 1.5; lag-1 in-sample MAE (1 + 2 + 3) / 3 = 2, lag-2 (3 + 5) / 2 = 4
    assert _m4.mase(history, y2, f2, 1) == pytest.approx([0.75, 0.75])
    assert _m4.mase(history, y2, f2, 2) == pytest.approx([0.375, 0.375])
    assert _m4.scores(history, y2, f2, 2) == pytest.approx({"smape": 200 * (1 / 15 + 2 / 16) / 2, "mase": 0.375})
    # a history of m points or fewer has no lag-m pair: lag 1 (M4 has no such series)
    assert _m4.mase([np.array([1.0, 2.0, 4.0])], y2[:1], f2[:1], 24) == pytest.approx([1.5 / 1.5])
    assert _m4.owa({"smape": 10.0, "mase": 1.5}, {"smape": 20.0, "mase": 2.0}) == pytest.approx(0.625)


def test_naive2_is_naive_without_seasonality() -> None:
    x = 100 + np.random.default_rng(1).normal(0, 1, 200)  # white noise: no autocorrelation at lag 24
    assert not _m4.is_seasonal(x, SEASON)
    assert np.array_equal(_m4.naive2(x, HORIZON, SEASON), np.full(HORIZON, x[-1]))
    short = 10 * PROFILE[np.arange(60) % SEASON]  # seasonal, but shorter than 3 seasons: M4 calls it not seasonal
    assert not _m4.is_seasonal(short, SEASON)


def test_naive2_reseasonalises_a_seasonal_series() -> None:
    n = 24 * 10 + 5  # ends mid-season: the forecast's indices must follow the position in the cycle
    x = 40 * PROFILE[np.arange(n) % SEASON]
    assert _m4.is_seasonal(x, SEASON)
    assert np.allclose(_m4.seasonal_indices(x, SEASON), PROFILE)
    expected = 40 * PROFILE[np.arange(n, n + 30) % SEASON]  # past one season, so the indices wrap
    assert np.allclose(_m4.naive2(x, 30, SEASON), expected)
    assert np.allclose(_m4.seasonal_naive(x, 30, SEASON), expected)
    assert not np.allclose(expected, x[-1])  # so naive would fail this


def test_long_table_puts_train_then_test_on_one_grid(tmp_path: Path) -> None:
    train, test, history, y = panel_files(tmp_path)
    ids = _m4.read_wide(test).ids
    table = m4.long_table(ids, history, y, "h")
    h7 = table[table["unique_id"] == "H7"]  # 30 train points, then the 8 test points
    assert h7["y"].tolist() == [*history[6], *y[6]] and h7["is_test"].tolist() == [False] * 30 + [True] * HORIZON
    assert h7["ds"].iloc[0] == "2000-01-01T00:00:00" and h7["ds"].iloc[-1] == "2000-01-02T13:00:00"  # 38 hours
    assert len(table) == sum(len(h) for h in history) + len(ids) * HORIZON


def test_script_baselines_only(cli: Cli) -> None:
    stdout, payload, out = run_m4(cli, "--model", "none")
    assert "naive2" in stdout and "Smyl" in stdout  # the printed table, measured and published
    forecasts = pd.read_csv(out / "forecasts.csv")
    assert list(forecasts.columns) == ["id", *[f"F{j + 1}" for j in range(HORIZON)]]
    assert forecasts["id"].tolist() == [f"H{i + 1}" for i in range(8)]
    assert forecasts.equals(pd.read_csv(out / "forecasts_naive2.csv"))
    assert {"series", "rows", "seeds", "published", "config", "machine"} <= payload.keys()
    rows = {r["method"]: r for r in payload["rows"]}
    assert set(rows) == {"naive2", "seasonal_naive", "naive"} and rows["naive2"]["owa"] == 1.0
    # the JSON's scores are those of the written file against the test file
    _, _, history, y = panel_files(cli.root)
    f = pd.read_csv(out / "forecasts_seasonal_naive.csv").iloc[:, 1:].to_numpy()
    assert rows["seasonal_naive"]["smape"] == pytest.approx(np.mean(_m4.smape(y, f)))
    assert rows["seasonal_naive"]["mase"] == pytest.approx(np.mean(_m4.mase(history, y, f, SEASON)))
    assert rows["seasonal_naive"]["owa"] < 1.0  # the panel is seasonal: the seasonal baseline beats Naive2


@pytest.mark.slow
def test_script_trains_the_product_panel(cli: Cli) -> None:
    runs = cli.root / "runs"
    stdout, payload, out = run_m4(cli, "--quick", "--model", "gru", "--runs", str(runs), "--intervals")
    assert "gru seed=0" in stdout and "2 left out, forecast by seasonal_naive" in stdout
    series = payload["series"]
    # H7 (30 points: 22 train rows < lookback + horizon) and H8 (5 points: no train rows) are left out
    assert series["n_model"] == 6 and series["n_fallback_seasonal_naive"] == 2
    assert sorted(series["left_out"]) == ["H7", "H8"]
    forecasts = pd.read_csv(out / "forecasts.csv")
    fallback = pd.read_csv(out / "forecasts_seasonal_naive.csv")
    assert forecasts.shape == (8, HORIZON + 1) and np.isfinite(forecasts.iloc[:, 1:].to_numpy()).all()
    assert forecasts.iloc[6:].equals(fallback.iloc[6:])  # the left-out series take the named baseline
    assert not np.allclose(forecasts.iloc[:6, 1:], fallback.iloc[:6, 1:])  # the others are the model's
    (seed,) = payload["seeds"]
    assert seed["windows"]["val"] == 6 and seed["windows"]["test"] == 6 and seed["epochs"] == 1
    # the written forecasts are those the product scored: per_series.csv's MAE from them and the test file
    _, _, history, y = panel_files(cli.root)
    run = runs / "artifacts"
    scored = pd.read_csv(run / "metrics" / seed["run_id"] / "per_series.csv").set_index("unique_id")
    mae = np.mean(np.abs(y[:6] - forecasts.iloc[:6, 1:].to_numpy()), axis=1)
    assert mae == pytest.approx(scored.loc[[f"H{i + 1}" for i in range(6)], "mae"].to_numpy(), rel=1e-6)
    # the product's test part is each series' 8 M4 test points; scaling saw only the train part before val
    contract = json.loads((run / "processed" / seed["run_id"] / "split_contract.json").read_text())
    pre = json.loads((run / "preprocessor" / seed["run_id"] / "preprocessor.json").read_text())
    for k, entry in enumerate(contract["series"]):
        x = history[int(entry["id"][1:]) - 1]
        assert (entry["test"]["start"], entry["test"]["stop"]) == (len(x), len(x) + HORIZON)
        assert pre["series_ids"][k] == entry["id"]
        assert pre["scalers"]["mean"][k][0] == pytest.approx(np.mean(x[:-HORIZON]))
    row = payload["rows"][0]
    assert row["method"] == "gru (mean of 1 seeds)" and row["owa"] == pytest.approx(seed["owa"])
    check_intervals(stdout, payload, out, history, y)


def check_intervals(stdout: str, payload: dict, out: Path, history: list[np.ndarray], y: np.ndarray) -> None:
    """--intervals: lower.csv and upper.csv around the point forecast (the fallback's point for the
    left-out series), scored by M4's MSIS and coverage."""
    assert "95% intervals" in stdout
    lower, upper = (pd.read_csv(out / f"{b}.csv") for b in ("lower", "upper"))
    point = pd.read_csv(out / "forecasts.csv")
    assert lower.shape == upper.shape == point.shape and lower["id"].tolist() == point["id"].tolist()
    lo, hi, f = (t.iloc[:, 1:].to_numpy() for t in (lower, upper, point))
    assert np.all(lo[:6] <= f[:6]) and np.all(f[:6] <= hi[:6]) and np.all(hi[:6] > lo[:6])
    assert np.array_equal(lo[6:], f[6:]) and np.array_equal(hi[6:], f[6:])
    (row,) = payload["intervals"]["rows"]
    assert row["msis"] == pytest.approx(np.mean(intervals.msis(history, y, lo, hi, SEASON)))
    assert row["coverage"] == pytest.approx(np.mean((lo <= y) & (y <= hi)))
    assert 0 <= row["coverage_80"] <= row["coverage"] and "coverage_80" in stdout


def test_msis_by_hand() -> None:
    """M4's MSIS: width plus 2/a times each miss, over the horizon, over the seasonal-naive MAE scale."""
    history = [np.array([1.0, 3.0, 2.0, 5.0])]  # m = 1: |3-1|, |2-3|, |5-2| -> scale 2
    y = np.array([[10.0, 10.0, 10.0, 10.0]])
    lower, upper = np.array([[9.0, 11.0, 9.0, 5.0]]), np.array([[11.0, 12.0, 9.5, 10.0]])
    # widths 2, 1, 0.5, 5; misses: step 2 below by 1 (+40), step 3 above by 0.5 (+20)
    expected = np.mean([2.0, 1.0 + 40.0, 0.5 + 20.0, 5.0]) / 2.0
    assert intervals.msis(history, y, lower, upper, 1) == pytest.approx([expected])
    inner_lo, inner_hi = np.array([[9.5, 10.5, 9.0, 9.0]]), np.array([[10.5, 11.0, 9.5, 9.5]])  # covers step 0 only
    row = intervals.scored("x", history, y, np.stack([lower, upper, inner_lo, inner_hi], axis=-1), 1)
    assert row["coverage"] == pytest.approx(0.5) and row["acd"] == pytest.approx(0.45)
    assert row["coverage_80"] == pytest.approx(0.25)


def test_segment_and_decoder_reach_the_model_config(tmp_path: Path) -> None:
    base = ["--train", "t.csv", "--test", "s.csv", "--freq", "hourly", "--out", str(tmp_path)]
    configs = [
        m4.compose(m4.product_overrides(m4.parse_args(base + extra), tmp_path, tmp_path / "m4-long.csv", 0)).model
        for extra in ([], ["--segment", "12", "--decoder", "parallel"])
    ]
    assert [(c.segment, c.decoder) for c in configs] == [(1, "direct"), (12, "parallel")]
