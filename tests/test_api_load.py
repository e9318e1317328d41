"""benchmarks/api_load.py end to end at a small size: a tiny trained run, the real server, a few clients for a
few seconds and a burst of job submissions; its JSON holds every answer by status, the health probes per phase,
the server's start time and peak RSS. The 100 ms health bar is measured by the full benchmark (README), not at
this size. Over the same trained run: after the server's warm-up, a first forecast imports no module."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """The benchmark at a small size: its work folder (kept), its stdout and its JSON."""
    tmp_path = tmp_path_factory.mktemp("api-load")
    out = tmp_path / "api_load.json"
    argv = [sys.executable, str(BENCH / "api_load.py"), "--seed-runs", "1", "--clients", "4", "--duration", "3"]
    argv += ["--jobs", "6", "--settle", "1", "--out", str(out), "--keep", str(tmp_path / "work")]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    yield tmp_path / "work", done.stdout, json.loads(out.read_text())


def test_api_load_smoke_answers_only_2xx_or_429_and_reports_latency_and_rss(
    smoke: tuple[Path, str, dict[str, Any]],
) -> None:
    _, stdout, result = smoke
    assert "p99_ms" in stdout and "server peak RSS (VmHWM)" in stdout
    assert "health p99 under 100 ms in every phase:" in stdout
    rows = {(r["phase"], r["kind"]): r for r in result["rows"]}
    assert result["unexpected"] == {}, result["unexpected"]
    for kind in ("run list", "run detail", "forecast"):
        row = rows[("reads", kind)]
        assert row["requests"] >= 1 and set(row["status_counts"]) == {"200"}, row
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
    submits = rows[("job burst", "job submit")]["status_counts"]
    assert sum(submits.values()) == 6 and set(submits) <= {"202", "429"} and submits.get("202", 0) >= 1, submits
    assert result["jobs_accepted"] == submits["202"]
    health = rows[("all", "health")]
    assert health["requests"] >= 20 and set(health["status_counts"]) == {"200"}, health
    assert set(result["health_p99_ms"]) == {"warm-up", "reads", "job burst", "all"}
    assert result["health_bar_held"] == all(p99 < 100 for p99 in result["health_p99_ms"].values())
    assert 50 < result["peak_rss_mib"] < 8192
    assert 0 < result["start_to_healthy_s"] < 180


FIRST_FORECAST = """
import csv, json, sys
from importlib import resources
import pandas as pd
from splineforecast.api.runs import RunStore
from splineforecast.api.settings import Settings

settings = Settings.from_env()
store = RunStore(settings.tracking_uri, settings.experiment, settings.artifact_root)
store.warm()  # what the server's lifespan does before it listens
with (resources.files("splineforecast") / "datasets" / "co2_tiny.csv").open(newline="") as f:
    rows = list(csv.reader(f))
history = pd.DataFrame(rows[-40:], columns=rows[0], dtype=object)  # the benchmark's forecast body
before = set(sys.modules)
forecast = store.forecaster("load-1").predict(history)
print(json.dumps({"rows": len(forecast), "imported": sorted(set(sys.modules) - before)}))
"""


def test_after_the_warm_up_a_first_forecast_imports_nothing(smoke: tuple[Path, str, dict[str, Any]]) -> None:
    work, _, _ = smoke
    sys.path.insert(0, str(BENCH))
    try:
        import api_load
    finally:
        sys.path.remove(str(BENCH))
    env = api_load.clean_env(work)  # the server's environment: its store and artifacts
    argv = [sys.executable, "-c", FIRST_FORECAST]
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["rows"] > 0 and found["imported"] == [], found
