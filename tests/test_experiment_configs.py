"""configs/experiment/m4_hourly.yaml: the M4 Hourly settings compose into a valid segment-wise panel run, and
``benchmarks/m4.py --experiment m4_hourly`` runs exactly the settings the README's flags measured."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bench_helpers import import_accuracy

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


# configs/experiment/etth1_m.yaml: ETTh1 setting M with SegRNN's lookback-96 settings
ETTH_CHANNELS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
# the flags of the README's measured ETTh1 M row (GRU, segment 24 parallel, 0.367 / 0.397), before the experiment
M_FLAGS = (
    "--settings M --horizons 96 --models gru --segment 24 --decoder parallel --hidden 512 --layers 1 "
    "--dropout 0.5 --loss mse --no-skip --series-embedding 256 --batch-size 256 --max-windows-per-series 4000 "
    "--epochs 10 --lr 0.0003"
).split()


def etth_csv(path: Path, rows: int = 14400) -> Path:
    """``rows`` hourly rows of the seven ETTh columns from ETTh1's first timestamp (2016-07-01 00:00)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    t = np.arange(rows)
    frame = pd.DataFrame({"date": pd.date_range("2016-07-01", periods=rows, freq="h").astype(str)})
    for i, name in enumerate(ETTH_CHANNELS):
        frame[name] = (1 + i) * np.sin(2 * np.pi * (t + i) / 24) + rng.standard_normal(rows)
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def etth_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return etth_csv(tmp_path_factory.mktemp("etth") / "ETTh1.csv")


@pytest.fixture
def accuracy(monkeypatch: pytest.MonkeyPatch) -> Any:
    """benchmarks/accuracy.py, imported as its script imports its helpers."""
    return import_accuracy(monkeypatch)


def _m_config(accuracy: Any, flags: list[str], seed: int = 0) -> Config:
    args = accuracy.parse_args(flags)
    import _multivariate

    cfg = _multivariate.compose(args, args.horizons[0], args.models[0], seed)
    assert isinstance(cfg, Config)
    return cfg


def test_etth1_m_runs_the_measured_flags(accuracy: Any, etth_file: Path) -> None:
    """``--experiment etth1_m`` composes exactly the flags' config: every key, the cutoffs' dates included."""
    data = ["--data", str(etth_file)]
    flags = _m_config(accuracy, [*data, *M_FLAGS], seed=2)
    experiment = _m_config(accuracy, [*data, "--experiment", "etth1_m", "--first-seed", "2"], seed=2)
    assert dataclasses.asdict(experiment) == dataclasses.asdict(flags)
    d, m = experiment.data, experiment.model
    assert (d.split.val_start, d.split.test_start, d.split.test) == ("2017-06-26 00:00:00", "2017-10-24 00:00:00", 2880)
    assert (m.name, m.segment, m.decoder, m.hidden_size, m.lr, experiment.trainer.max_epochs) == (
        "gru", 24, "parallel", 512, 0.0003, 10
    )  # fmt: skip


def test_etth1_m_experiment_defaults_and_overrides(accuracy: Any) -> None:
    args = accuracy.parse_args(["--data", "x.csv", "--experiment", "etth1_m"])
    assert (args.settings, args.models, args.horizons) == (["M"], [None], [None])  # the experiment's
    cfg = _m_config(accuracy, ["--data", "x.csv", "--experiment", "etth1_m", "--segment", "12", "--lr", "0.001"])
    assert (cfg.model.segment, cfg.model.lr, cfg.model.hidden_size, cfg.data.horizon) == (12, 0.001, 512, 96)
    assert cfg.data.split.val_start == "2017-06-26 00:00:00"  # no --split given: the experiment's cutoffs, unread


def test_etth1_m_refuses_other_settings_and_unknown_names(accuracy: Any, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, said in ((["--settings", "S,M"], "setting M only"), (["--experiment", "etth1_n"], "etth1_n.yaml")):
        with pytest.raises(SystemExit) as exit_:
            accuracy.parse_args(["--data", "x.csv", "--experiment", "etth1_m", *argv])
        assert exit_.value.code == 2 and said in capsys.readouterr().err


def test_etth1_m_passes_the_startup_checks(compose: Compose, accuracy: Any, etth_file: Path) -> None:
    """The product's command line with the experiment passes the config and raw-data checks on a
    seven-column file, and trains what the benchmark trains (only the seed, the benchmark's K against the
    product's default, may differ: here both are the product's)."""
    from splineforecast.contracts import PanelRawInputs, check_raw

    plain = compose(["experiment=etth1_m", f"data.path={etth_file}"])
    check_config(plain)
    raw = check_raw(plain)
    assert isinstance(raw, PanelRawInputs) and plain.data.target == list(ETTH_CHANNELS)
    bench = _m_config(accuracy, ["--data", str(etth_file), "--experiment", "etth1_m"], seed=plain.seed)
    assert dataclasses.asdict(plain) == dataclasses.asdict(bench)
    assert _m_config(accuracy, ["--data", str(etth_file), "--experiment", "etth1_m"], seed=plain.seed + 1) != plain


@pytest.mark.slow
def test_etth1_m_cuts_the_benchmarks_protocol(compose: Compose, etth_file: Path) -> None:
    """Every channel cut at the protocol's 8640/2880/2880 rows, every stride-1 test window scored."""
    import _multivariate

    done, data = _multivariate.panel_data(compose(["experiment=etth1_m", f"data.path={etth_file}"]))
    _multivariate.check_protocol(done, data, (8640, 2880, 2880), 96, 96)
    assert len(done.contract.ids) == len(ETTH_CHANNELS)


@pytest.mark.slow
def test_the_product_runs_etth1_m(cli: Any, migrated_store: Path, tmp_path: Path) -> None:
    """``python -m splineforecast experiment=etth1_m`` trains and scores the seven-channel panel
    (a 600-row file, its own cutoffs, one epoch of 2 batches)."""
    data = etth_csv(tmp_path / "small.csv", rows=600)
    cli.seed_store(migrated_store)
    small = ["data.split.val_start='2016-07-15 00:00:00'", "data.split.test_start='2016-07-20 00:00:00'"]
    done = cli(
        "experiment=etth1_m", f"data.path={data}", *small, "data.split.test=120", "trainer=smoke",
        "model.hidden_size=16", "model.series_embedding=4", timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "7 series" in done.stdout and "mean MASE" in done.stdout, done.stdout[-2000:]  # the panel's scores
