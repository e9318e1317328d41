"""The fixtures the GUI's browser test modules share, each made once per module that asks for it (module scope):
``trained`` (a tiny trained run with planted markup), ``browser`` (headless Chromium) and ``dev`` (a dev-mode
server over the trained run). A module loads them with ``pytest_plugins = ["gui_fixtures"]``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from gui_helpers import chromium, dev_server, train_tiny_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path) -> tuple[Path, Cli, float]:
    """A tiny trained run plus the planted markup: ``(root, cli, the run's MAE)``."""
    return train_tiny_run(tmp_path_factory, migrated_store)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for the module's pages."""
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def dev(trained: tuple[Path, Cli, float]) -> Iterator[str]:
    """One dev-mode server over the trained run for the module's dev tests; yields its base URL."""
    with dev_server(trained) as base:
        yield base
