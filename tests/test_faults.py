"""Faults, as ``benchmarks/faults.py`` runs them: a full disk at processed.npz and at a checkpoint, parallel
sweep jobs on one fresh sqlite store; and the messages of a full disk and of a tracking server that is gone.

The full disk is a small tmpfs as ``paths.artifacts`` where this process may mount one (root), else ENOSPC
injected at the write of the file (the row's ``how`` says which). The tracking server killed mid-run, the
truncated last.ckpt and the SIGKILL while logging to MLflow run in the harness only (``--only``).
"""

from __future__ import annotations

import errno
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from splineforecast import files

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import faults  # noqa: E402 - benchmarks/faults.py and _faults.py, found through the line above
from _faults import failure  # noqa: E402


def _check_disk_full(row: dict, at: str, root: Path) -> None:
    assert row["exit"] == 24, row
    text = row["message"]
    assert text.startswith("disk full: could not write `"), text
    assert f"{root}/artifacts/" in text and f"/{at}`" in text, text  # the file itself, not its temp name
    assert "free on its file system" in text and "paths.artifacts" in text, text
    assert "Traceback" not in text
    assert row["temp_files"] == [], row  # no half file: the temp file of the write is gone
    assert row["target_written"] is False, row
    assert row["broken"] == [], row  # what was written before reads back
    assert row["status"] == "FAILED", row


@pytest.mark.slow
def test_a_full_disk_at_processed_npz_exits_24_naming_it_and_leaves_no_half_file(
    tmp_path: Path, migrated_store: Path
) -> None:
    row = faults.disk_full(tmp_path, migrated_store, at="processed.npz", rerun=False)
    _check_disk_full(row, "processed.npz", tmp_path)


@pytest.mark.slow
def test_a_full_disk_at_a_checkpoint_keeps_the_processed_files_and_the_rerun_finishes_the_same_run(
    tmp_path: Path, migrated_store: Path
) -> None:
    row = faults.disk_full(tmp_path, migrated_store, at="best.ckpt")
    _check_disk_full(row, "best.ckpt", tmp_path)
    assert row["rerun_exit"] == 0, row["rerun_message"]
    assert row["rerun"] == "exit 0, same MLflow run, FINISHED", row  # the failed run, finished; no second run
    assert row["rerun_ok"] is True


@pytest.mark.slow
def test_parallel_sweep_jobs_on_a_fresh_store_are_all_recorded_without_a_lock_error(tmp_path: Path) -> None:
    row = faults.sweep_parallel(tmp_path, jobs=3)
    assert row["exit"] == 0, row
    assert row["runs_recorded"] == 3 and row["runs_finished"] == 3, row
    assert row["lock_error"] is False, row


def test_disk_full_message_names_the_file_behind_a_temp_name_and_the_room_left(tmp_path: Path) -> None:
    target = tmp_path / "checkpoints" / "r1"
    target.mkdir(parents=True)
    temp = str(target / ".best.ckpt.4375.tmp")  # a copy names its source, then its target
    err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/tmp/tmpabc", None, temp)
    wrapped = RuntimeError("a library's own error")
    wrapped.__context__ = err
    assert files.disk_full(wrapped) is err
    assert files.disk_full(RuntimeError("other")) is None
    text = files.disk_full_message(err)
    assert f"`{target / 'best.ckpt'}`" in text, text
    assert re.search(r"\(\d+(\.\d)? (bytes|KiB|MiB|GiB) free on its file system; No space left", text), text


def test_a_write_that_fills_a_real_disk_names_its_file_and_leaves_nothing(tmp_path: Path) -> None:
    where = tmp_path / "small"
    with faults.tmpfs(where, "8k") as mounted:
        if not mounted:
            pytest.skip("mounting a tmpfs needs root")
        files.write_bytes(where / "first.bin", b"x" * 100)
        with pytest.raises(OSError) as raised:
            files.write_npz(where / "big.npz", values=np.zeros(8192))
        assert raised.value.errno == errno.ENOSPC
        assert raised.value.filename == str(where / "big.npz")
        assert sorted(p.name for p in where.iterdir()) == ["first.bin"]
        assert (where / "first.bin").read_bytes() == b"x" * 100


def test_a_tracking_server_that_is_not_there_is_exit_24_naming_its_uri(
    free_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from splineforecast.__main__ import _report
    from splineforecast.tracking import Tracker

    url = f"http://127.0.0.1:{free_port}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # refused at once, not after the CLI's 3 retries
    with pytest.raises(Exception) as raised:
        Tracker(url, "e", "r1")
    assert _report(raised.value) == 24
    payload = failure(capsys.readouterr().err)
    assert payload is not None and payload["error"]["code"] == "RUNNER_EXEC_ERROR", payload
    text = payload["error"]["message"]
    assert text.startswith(f"tracking store unreachable at {url} (connection refused)"), text
    assert "run the same command again" in text
