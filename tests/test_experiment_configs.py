"""configs/experiment/m4_hourly.yaml: the M4 Hourly settings compose into a valid segment-wise panel run, and
``benchmarks/m4.py --experiment m4_hourly`` runs exactly the settings the README's flags measured."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from splineforecast.config import Config
from splineforecast.contracts import check_config
from splineforecast.errors import ContractError, ErrorCode

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import m4  # noqa: E402

Compose = Callable[[list[str]], Config]
LONG = "data.path=/data/m4-hourly-long.csv"
# the flags of the README's measured segment-wise M4 Hourly row, before the experiment held them
MEASURED = "--lookback 336 --layers 1 --windows-per-series 50 --epochs 4 --segment 24 --decoder parallel".split()
M4_FILES = ["--train", "t.csv", "--test", "s.csv", "--freq", "hourly"]


def test_m4_hourly_settles_into_a_valid_segment_wise_panel(compose: Compose) -> None:
    cfg = compose(["experiment=m4_hourly", LONG])
    check_config(cfg)
    d, m = cfg.data, cfg.model
    assert (d.series_column, d.time_column, d.target, d.freq) == ("unique_id", "ds", "y", "h")
    assert (d.lookback, d.horizon, d.season_length, d.max_windows_per_series) == (336, 48, 24, 50)
    assert (m.name, m.num_layers, m.segment, m.decoder, cfg.trainer.max_epochs) == ("lstm", 1, 24, "parallel", 4)
    assert d.lookback % m.segment == 0 and d.horizon % m.segment == 0  # 14 encoder steps, 2 decoder segments
    assert (m.loss, m.skip_init) == ("mae", "seasonal")  # a panel's auto, settled at composition
    assert (d.split.val, d.split.test) == (48, 48)


def test_m4_hourly_needs_the_data_path(compose: Compose) -> None:
    """Not bundled: without data.path the run names the key to set (CONFIG_ERROR), not the co2 default's file."""
    from splineforecast.data import io

    cfg = compose(["experiment=m4_hourly"])
    with pytest.raises(ContractError) as err:
        io.resolve_path(cfg.data.path, cfg.data.bundled)
    assert err.value.code is ErrorCode.CONFIG_ERROR and "data.path" in str(err.value)


def _benchmark_config(tmp_path: Path, flags: list[str]) -> Config:
    args = m4.parse_args([*M4_FILES, "--out", str(tmp_path), *flags])
    cfg = m4.compose(m4.product_overrides(args, tmp_path, tmp_path / "m4-long.csv", 0))
    assert isinstance(cfg, Config)
    return cfg


def _without_name(cfg: Config) -> dict:
    """The config less the data set's name (the experiment's m4_hourly, the bare flags' m4) and bundled file
    (null in the experiment; co2's under the bare flags, unread: data.path wins)."""
    out = dataclasses.asdict(cfg)
    assert out["data"]["path"]
    out["data"].pop("name"), out["data"].pop("bundled")
    return out


def test_the_benchmark_with_the_experiment_runs_the_measured_flags(tmp_path: Path) -> None:
    flags = _benchmark_config(tmp_path, MEASURED)
    experiment = _benchmark_config(tmp_path, ["--experiment", "m4_hourly"])
    assert _without_name(experiment) == _without_name(flags)
    assert experiment.data.name == "m4_hourly" and experiment.model.segment == 24


def test_the_experiment_alone_carries_the_benchmark_settings(compose: Compose, tmp_path: Path) -> None:
    """The product's command line with the experiment trains what the benchmark trains: only the run's
    bookkeeping (folders, tracking, seed, run id) differs."""
    bench = _benchmark_config(tmp_path, ["--experiment", "m4_hourly"])
    plain = compose(["experiment=m4_hourly", f"data.path={tmp_path / 'm4-long.csv'}"])
    for group in ("data", "spline", "covariate", "model"):
        assert getattr(plain, group) == getattr(bench, group), group
    assert dataclasses.replace(plain.trainer, enable_progress_bar=False) == bench.trainer


def test_flags_given_override_the_experiment(tmp_path: Path) -> None:
    cfg = _benchmark_config(tmp_path, ["--experiment", "m4_hourly", "--segment", "12", "--epochs", "2"])
    assert (cfg.model.segment, cfg.trainer.max_epochs, cfg.data.lookback) == (12, 2, 336)
    bare = _benchmark_config(tmp_path, [])  # no experiment: the product's defaults and m4.py's lookback
    assert (bare.model.segment, bare.model.decoder, bare.data.lookback) == (1, "direct", 168)


def test_an_unknown_experiment_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        m4.parse_args([*M4_FILES, "--out", str(tmp_path), "--experiment", "m4_hourli"])
    assert exit_.value.code == 2 and "configs/experiment/m4_hourli.yaml" in capsys.readouterr().err


def test_write_long_writes_the_table_the_runs_read(tmp_path: Path) -> None:
    import pandas as pd
    from test_m4_benchmark import HORIZON, panel_files

    train, test, history, y = panel_files(tmp_path)
    long = tmp_path / "long.csv"
    argv = ["--train", str(train), "--test", str(test), "--freq", "hourly", "--horizon", str(HORIZON)]
    assert m4.main([*argv, "--write-long", str(long)]) == 0
    written = pd.read_csv(long, dtype={"unique_id": str})
    assert list(written.columns) == ["ds", "unique_id", "y"]
    expected = m4.long_table(m4._m4.read_wide(test).ids, history, y, "h")
    assert written["y"].to_numpy() == pytest.approx(expected["y"].to_numpy())
    assert written["unique_id"].tolist() == expected["unique_id"].tolist() and len(written) == len(expected)
    assert not (tmp_path / "m4.json").exists()  # the table alone: no runs, no scores
