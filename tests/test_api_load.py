"""benchmarks/api_load.py end to end at a small size: a tiny trained run, the real server, a few clients for a
few seconds and a burst of job submissions; its JSON holds every answer by status, the health probes and the
server's peak RSS. The 100 ms health bar is measured by the full benchmark (README), not at this size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
def test_api_load_smoke_answers_only_2xx_or_429_and_reports_latency_and_rss(tmp_path: Path) -> None:
    out = tmp_path / "api_load.json"
    argv = [sys.executable, str(BENCH / "api_load.py"), "--seed-runs", "1", "--clients", "4", "--duration", "3"]
    argv += ["--jobs", "6", "--settle", "1", "--out", str(out), "--keep", str(tmp_path / "work")]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "p99_ms" in done.stdout and "server peak RSS (VmHWM)" in done.stdout
    result = json.loads(out.read_text())
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
    assert 50 < result["peak_rss_mib"] < 8192
