"""benchmarks/_peers.py: statsforecast's SeasonalNaive reproduces ours on an M4 panel; a missing peer is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _m4  # noqa: E402
import _peers  # noqa: E402

HORIZON, SEASON = 8, 24


def panel_files(root: Path) -> tuple[Path, Path]:
    """Five hourly-like series of 100-180 points (daily profile, trend, noise) as M4 wide files, ids not sorted."""
    rng = np.random.default_rng(3)
    lengths, ids = [180, 100, 140, 120, 160], ["H10", "H2", "H1", "H33", "H4"]  # string order differs from file order
    series = []
    for i, n in enumerate(lengths):
        t = np.arange(n + HORIZON)
        series.append((40 + 5 * i + 0.1 * t) * (1 + 0.4 * np.sin(2 * np.pi * t / SEASON)) + rng.normal(0, 1, t.size))
    width = max(lengths)
    train = pd.DataFrame([np.pad(s[:-HORIZON], (0, width - len(s) + HORIZON), constant_values=np.nan) for s in series])
    test = pd.DataFrame([s[-HORIZON:] for s in series])
    paths = []
    for name, frame in (("train", train), ("test", test)):
        frame.columns = [f"V{j + 2}" for j in range(frame.shape[1])]
        frame.insert(0, "V1", ids)
        paths.append(root / f"{name}.csv")
        frame.to_csv(paths[-1], index=False)
    return paths[0], paths[1]


def test_statsforecast_seasonal_naive_is_ours(tmp_path: Path) -> None:
    pytest.importorskip("statsforecast")
    train, test_path = panel_files(tmp_path)
    test = _m4.read_wide(test_path)
    history, y = _m4.align(_m4.read_wide(train), test, HORIZON)
    (run,) = _peers.statsforecast_peers(
        test.ids, history, HORIZON, SEASON, "hourly", only=["statsforecast SeasonalNaive"]
    )
    ours = _m4.baselines(history, HORIZON, SEASON)["seasonal_naive"]
    assert run.name == "statsforecast SeasonalNaive" and run.forecast.shape == (5, HORIZON)
    assert np.allclose(run.forecast, ours, rtol=0, atol=1e-9)  # same series, same test-file order, same steps
    assert not np.allclose(run.forecast, _m4.baselines(history, HORIZON, SEASON)["naive"])  # so naive would fail
    assert run.seconds > 0 and run.settings["args"]["season_length"] == SEASON
    ref = _m4.scores(history, y, _m4.baselines(history, HORIZON, SEASON)["naive2"], SEASON)
    entry = _peers.scored(run, history, y, SEASON, ref)
    assert entry["smape"] == pytest.approx(np.mean(_m4.smape(y, ours)))
    assert entry["mase"] == pytest.approx(np.mean(_m4.mase(history, y, ours, SEASON)))


def test_wide_refuses_steps_that_do_not_follow_the_history() -> None:
    history = [np.arange(3.0), np.arange(4.0)]
    frame = pd.DataFrame({"unique_id": ["b", "b", "a", "a"], "ds": [5, 6, 4, 5], "f": [1.0, 2.0, 3.0, 4.0]})
    assert _peers.wide(frame, "f", ["a", "b"], history, 2).tolist() == [[3.0, 4.0], [1.0, 2.0]]
    with pytest.raises(ValueError, match="'a' has no forecast for steps 4..5"):
        _peers.wide(frame.assign(ds=[5, 6, 5, 6]), "f", ["a", "b"], history, 2)


def test_a_missing_peer_package_names_the_bench_extra(tmp_path: Path) -> None:
    train, test = panel_files(tmp_path)
    # the package made unimportable in this process, whichever virtualenv runs the test
    code = (
        "import sys; sys.modules['neuralforecast'] = None; sys.path.insert(0, sys.argv[1]); import m4; "
        "raise SystemExit(m4.main(sys.argv[2:]))"
    )
    argv = ["--train", str(train), "--test", str(test), "--freq", "hourly", "--out", str(tmp_path / "out")]
    proc = subprocess.run(
        [sys.executable, "-c", code, str(BENCH), *argv, "--model", "none", "--peers", "neuralforecast"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--peers neuralforecast: not installed" in proc.stderr and "`bench` extra" in proc.stderr
    assert not (tmp_path / "out" / "m4.json").exists()  # refused before any work
