"""run_id names (SPEC §3): what is accepted stays inside the artifact root; what is refused
is refused before anything touches the disk."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from strategies import run_ids

from splineforecast.artifacts import RunPaths, check_run_id
from splineforecast.config import Config
from splineforecast.contracts import check
from splineforecast.errors import ContractError, ErrorCode

# SPEC §3, written out here rather than imported: a safe name matches it and holds no ".."
SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, compose: Callable[[list[str]], Config]) -> tuple[Config, Path]:
    root = tmp_path_factory.mktemp("ids")
    cfg = compose(["data=tiny", f"paths.artifacts={root}/artifacts", f"tracking.uri=sqlite:///{root}/m/m.db"])
    return cfg, root


@settings(max_examples=300, deadline=None)
@given(run_id=run_ids)
def test_accepted_run_ids_stay_inside_the_artifact_root(run_id: str, base: tuple[Config, Path]) -> None:
    cfg, root = base
    safe = SAFE.fullmatch(run_id) is not None and ".." not in run_id
    try:
        check_run_id(run_id)
    except ContractError as exc:
        assert not safe, run_id  # a safe name is never refused
        assert exc.code is ErrorCode.CONFIG_ERROR
        # refused before touching the disk: the full startup check refuses it too, writing nothing
        with pytest.raises(ContractError) as info:
            check(dataclasses.replace(cfg, run_id=run_id))
        assert info.value.code is ErrorCode.CONFIG_ERROR
        assert os.listdir(root) == []
        return
    assert safe, run_id  # nor an unsafe one accepted
    artifacts = (root / "artifacts").resolve()
    paths = RunPaths(root / "artifacts", run_id)
    for field in ("processed_npz", "meta_json", "preprocessor_json", "checkpoints_dir", "metrics_json", "report_dir"):
        resolved = getattr(paths, field).resolve()
        assert resolved.is_relative_to(artifacts), (run_id, field, resolved)
        assert run_id in resolved.parts  # the run_id is one whole path component, never split or collapsed
