"""Shared fixtures: a synthetic series with gaps, composed configs, and an isolated tracking store."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import OmegaConf

from splineforecast.config import Config, config_dir, register_configs
from splineforecast.data import io

if TYPE_CHECKING:  # the pipeline imports torch and Lightning: only where a run is made
    from splineforecast.pipeline import RunResult

Compose = Callable[[list[str]], Config]


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per process, here and in every command a test starts, unless OMP_NUM_THREADS is set.

    Set before any test module imports torch (nothing this file imports does). The tests train on batches
    of 2 to 32 windows, where a second intra-op thread costs more than it gives, and run several processes
    at once (a test and its command, sweep workers, DDP ranks) on as few as 2 cores.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def compose_config(overrides: list[str] | None = None) -> Config:
    """Compose ``configs/config.yaml`` with ``overrides`` into the ``Config`` dataclass."""
    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides or []))
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, Config)
    return config


@pytest.fixture(scope="session")
def compose() -> Compose:
    """``compose(overrides) -> Config``, as the command line would build it."""
    return compose_config


@pytest.fixture
def tiny_frame() -> pd.DataFrame:
    """120 weekly rows of a seeded trend + season + noise series with short and long gaps.

    Gaps: rows 10-12 (3), 40 (1), 70-99 (30: longer than the default max_gap 26).
    """
    rng = np.random.default_rng(7)
    n = 120
    t = np.arange(n, dtype=np.float64)
    y = 300.0 + 0.05 * t + 3.0 * np.sin(2 * np.pi * t / 52) + rng.normal(0.0, 0.2, n)
    y[10:13] = np.nan
    y[40] = np.nan
    y[70:100] = np.nan
    index = pd.date_range("2000-01-01", periods=n, freq="W-SAT", name="date")
    return pd.DataFrame({"y": y}, index=index)


@pytest.fixture
def bundled_head() -> pd.DataFrame:
    """The first 60 rows of the bundled tiny CO2 table, as ``io.read_csv`` reads them (text cells)."""
    path = Path(str(resources.files("splineforecast") / "datasets" / "co2_tiny.csv"))
    return io.read_csv(path).head(60)


def _isolate(mp: pytest.MonkeyPatch, root: Path) -> list[str]:
    mp.chdir(root)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    return [f"tracking.uri=sqlite:///{root}/mlruns/mlflow.db", f"paths.artifacts={root}/artifacts"]


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Overrides that send tracking and artifacts into ``tmp_path`` (also the cwd)."""
    return _isolate(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def isolated_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """Like ``isolated``, shared by one test module: ``(root, overrides)``."""
    root = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        yield root, _isolate(mp, root)


class Cli:
    """``python -m splineforecast`` in its own folder, as a new user runs it.

    The command runs in ``root`` (its cwd) with a clean MLflow environment (no ``MLFLOW_TRACKING_URI``
    or ``MLFLOW_RUN_ID`` from the caller), the tracking store ``sqlite:///<root>/mlruns/mlflow.db`` and
    the artifact root ``<root>/artifacts``, unless ``store=False``. Call it to run to the end, or
    :meth:`start` it to send signals; :meth:`run` runs any other command (a script, ``mlflow run``) the
    same way, and a test may add to :attr:`env` what that command needs.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tracking_uri = f"sqlite:///{root}/mlruns/mlflow.db"
        self.artifacts = root / "artifacts"
        self.env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}

    @property
    def store(self) -> list[str]:
        """The overrides that keep tracking and artifacts inside ``root``."""
        return [f"tracking.uri={self.tracking_uri}", f"paths.artifacts={self.artifacts}"]

    def command(self, *overrides: str, store: bool = True) -> list[str]:
        """The argv of ``python -m splineforecast`` with ``overrides`` and, unless ``store=False``, the store.

        A store key the caller sets itself (``paths.artifacts=...``) is the caller's: only the other one
        is added, so an explicit override is never silently replaced.
        """
        given = {o.split("=", 1)[0] for o in overrides}
        added = [o for o in self.store if o.split("=", 1)[0] not in given] if store else []
        return [sys.executable, "-m", "splineforecast", *overrides, *added]

    def run(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run any command (a script, ``mlflow run``) in ``root`` with :attr:`env`, ``env`` on top."""
        return subprocess.run(
            list(argv),
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def seed_store(self, template: Path) -> None:
        """Give ``root`` an empty tracking store whose schema exists: a copy of ``template``.

        The first command in a new folder spends seconds on MLflow's schema migrations; a test whose
        subject is not that first run seeds the store and skips them (see ``migrated_store``).
        """
        db = self.root / "mlruns" / "mlflow.db"
        db.parent.mkdir(parents=True)
        shutil.copyfile(template, db)

    def __call__(self, *overrides: str, store: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run the command to the end (see :meth:`command`)."""
        return self.run(self.command(*overrides, store=store), timeout=timeout)

    def start(self, *overrides: str, store: bool = True) -> subprocess.Popen[str]:
        """Start the command and return at once, to send it signals."""
        return subprocess.Popen(
            self.command(*overrides, store=store),
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def run_here(cli: Cli, mp: pytest.MonkeyPatch, *overrides: str) -> RunResult:
    """``pipeline.run`` of ``overrides`` in this process, in ``cli``'s folder and store.

    What ``cli(*overrides)`` would run, without a new interpreter importing torch, Lightning and MLflow:
    for runs a test only needs as a reference or a starting point. Returns the ``RunResult``; a refusal
    raises its ``ContractError``.
    """
    from splineforecast import pipeline

    _isolate(mp, cli.root)
    mp.delenv("MLFLOW_RUN_ID", raising=False)
    args = [*overrides, *cli.store]
    return pipeline.run(compose_config(args), overrides=args)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A :class:`Cli` rooted in ``tmp_path``."""
    return Cli(tmp_path)


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sqlite store with its schema and no run, made once per session, to copy (``Cli.seed_store``).

    Its Default experiment keeps this folder as artifact location: not for ``mlflow run``, which logs there.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    root = tmp_path_factory.mktemp("migrated")
    store = SqlAlchemyStore(f"sqlite:///{root}/mlflow.db", str(root / "artifacts"))
    store.engine.dispose()  # closed before it is copied
    return root / "mlflow.db"


@pytest.fixture
def seeded(cli: Cli, migrated_store: Path) -> Cli:
    """``cli`` with a migrated, empty tracking store: for tests whose subject is not a first run."""
    cli.seed_store(migrated_store)
    return cli


def find_free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    """A free TCP port on 127.0.0.1 (see :func:`find_free_port`)."""
    return find_free_port()
