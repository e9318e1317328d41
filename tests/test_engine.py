"""Where a panel's series are preprocessed: local processes and a Dask cluster give the serial arrays bit
for bit, in order; a scheduler that does not answer is refused within seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import compose_config, find_free_port
from engine_helpers import pid_and_square, refuse_700

from splineforecast.contracts import PanelRawInputs, check_raw
from splineforecast.data.engine import CONNECT_TIMEOUT_S, MAX_CHUNK, chunked, series_mapper
from splineforecast.data.panel_preprocess import serial_map
from splineforecast.data.processed import Processed
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.pipeline_panel import preprocess_panel

N_SERIES = 50


def write_panel(path: Path, n_series: int = N_SERIES, seed: int = 3) -> Path:
    """A long CSV of ``n_series`` daily series of 80-160 rows: a target and a dynamic covariate with short
    gaps, every fifth series with a 30-step target gap (longer than spline.max_gap, so it stays missing),
    and a static categorical region."""
    rng = np.random.default_rng(seed)
    parts = []
    for k in range(n_series):
        n = int(rng.integers(80, 161))
        t = np.arange(n, dtype=np.float64)
        y = 10 * k + np.sin(2 * np.pi * t / 7) + 0.3 * rng.standard_normal(n)
        x = np.cos(2 * np.pi * t / 30) + 0.1 * rng.standard_normal(n)
        for col in (y, x):
            starts = rng.integers(1, n - 6, 4)
            for s, length in zip(starts, rng.integers(1, 6, 4), strict=True):
                col[s : s + length] = np.nan
        if k % 5 == 0:
            y[20:50] = np.nan
        dates = pd.date_range("2021-03-01", periods=n, freq="D") + pd.Timedelta(days=int(rng.integers(0, 20)))
        region = ["north", "south", "east"][k % 3]
        parts.append(pd.DataFrame({"id": f"s{k:03d}", "date": dates.strftime("%Y-%m-%d"), "y": y, "x": x}))
        parts[-1]["region"] = region
    pd.concat(parts).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, PanelRawInputs]:
    """The checked panel of :func:`write_panel` and its config."""
    path = write_panel(tmp_path_factory.mktemp("engine") / "panel.csv")
    cfg = compose_config(
        [
            "data=tiny",
            "run_id=engine",
            f"data.path={path}",
            "data.series_column=id",
            "data.target=y",
            "data.freq=D",
            "data.lookback=8",
            "data.horizon=4",
            "covariate.dynamic=[x]",
            "covariate.static=[region]",
            "covariate.categorical=[region]",
        ]
    )
    raw = check_raw(cfg)
    assert isinstance(raw, PanelRawInputs) and len(raw.table.series) == N_SERIES
    return cfg, raw


def processed(panel: tuple[object, PanelRawInputs], mapper: Callable[..., Iterable[object]] | None) -> Processed:
    cfg, raw = panel
    return preprocess_panel(cfg, "engine", raw, mapper).processed  # type: ignore[arg-type]


def assert_identical(a: Processed, b: Processed) -> None:
    assert a.values.dtype == b.values.dtype == np.float32
    assert np.array_equal(a.values, b.values, equal_nan=True)
    assert np.array_equal(a.observed_mask, b.observed_mask)
    assert a.offsets is not None and b.offsets is not None and np.array_equal(a.offsets, b.offsets)
    assert a.series_ids == b.series_ids


def test_local_processes_give_the_serial_arrays_bit_for_bit(panel: tuple[object, PanelRawInputs]) -> None:
    serial = processed(panel, serial_map)
    assert np.isnan(serial.values[:, 0]).any() and (~serial.observed_mask).any()  # long gaps stay, short ones filled
    assert np.isfinite(serial.values[~serial.observed_mask[:, 0], 0]).any()
    assert_identical(processed(panel, series_mapper(2, None)), serial)


def test_processes_run_the_work_elsewhere_and_keep_the_order() -> None:
    out = list(series_mapper(2, None)(pid_and_square, list(range(3000))))
    assert [sq for _, sq in out] == [i * i for i in range(3000)]
    pids = {pid for pid, _ in out}
    assert pids and os.getpid() not in pids  # loky may replace a worker, so not exactly two


def test_a_workers_contract_error_comes_back_whole() -> None:
    with pytest.raises(ContractError) as info:
        list(series_mapper(2, None)(refuse_700, list(range(1000))))
    assert (info.value.code, info.value.message, info.value.type_name) == (
        ErrorCode.DATA_SCHEMA_ERROR,
        "series 700 is bad",
        "KeyError",
    )


@pytest.mark.parametrize(("n", "workers", "n_chunks"), [(10, 2, 8), (3, 4, 3), (100_000, 2, 196), (40, 1, 4)])
def test_series_are_cut_into_few_chunks_in_order(n: int, workers: int, n_chunks: int) -> None:
    chunks = chunked(list(range(n)), workers)
    assert len(chunks) == n_chunks
    assert [i for c in chunks for i in c] == list(range(n))
    assert max(len(c) for c in chunks) <= MAX_CHUNK and min(len(c) for c in chunks) >= 1


@pytest.mark.parametrize("n_jobs", [0, -2])
def test_a_count_of_processes_that_is_none_is_refused(n_jobs: int) -> None:
    with pytest.raises(ContractError) as info:
        series_mapper(n_jobs, None)
    assert info.value.code is ErrorCode.CONFIG_ERROR and f"`data.n_jobs` ({n_jobs})" in info.value.message


def test_a_scheduler_that_does_not_answer_is_refused_within_seconds() -> None:
    address = f"tcp://127.0.0.1:{find_free_port()}"
    start = time.monotonic()
    with pytest.raises(ContractError) as info:
        series_mapper(1, address)
    assert time.monotonic() - start < CONNECT_TIMEOUT_S + 10
    assert info.value.code is ErrorCode.RUNNER_EXEC_ERROR and info.value.exit_code == 24
    assert address in info.value.message and "data.cluster=null" in info.value.message


@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_serial_arrays_bit_for_bit(panel: tuple[object, PanelRawInputs]) -> None:
    from distributed import LocalCluster

    serial = processed(panel, serial_map)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        on_cluster = processed(panel, series_mapper(1, cluster.scheduler_address))
    assert_identical(on_cluster, serial)


@pytest.mark.slow
def test_a_scheduler_without_workers_is_refused_not_waited_on() -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=None) as cluster:
        start = time.monotonic()
        with pytest.raises(ContractError) as info:
            series_mapper(1, cluster.scheduler_address)
        assert time.monotonic() - start < CONNECT_TIMEOUT_S + 10
    assert info.value.code is ErrorCode.RUNNER_EXEC_ERROR and "no worker" in info.value.message


@pytest.mark.slow
def test_the_panel_scale_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "panel_scale.py"
    out = tmp_path / "panel_scale.json"
    argv = [sys.executable, str(script), "--quick", "--cluster", "--out", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rss_over_raw" in proc.stdout and "cluster_identical" in proc.stdout  # the printed table
    rows = json.loads(out.read_text())["rows"]
    assert [r["series"] for r in rows] == [20, 40]
    assert all(r["cluster_identical"] is True for r in rows)
    assert all(r["peak_rss_mb"] > r["base_rss_mb"] and r["windows_per_s"] > 0 for r in rows)
    assert all(r["raw_f32_mb"] == r["series"] * 300 * 4 / 2**20 and r["unfilled"] == 0 for r in rows)
