"""What a run shows while it trains: one line per epoch on stdout when stdout is not a terminal (a log
file, a job runner's pipe), Lightning's progress bar in a terminal."""

from __future__ import annotations

import dataclasses
import io
import os
import pty
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import Cli

from splineforecast.config import ModelConfig, TrainerConfig
from splineforecast.data.splits import Split
from splineforecast.models.module import ForecastModule
from splineforecast.models.spec import DataSpec
from splineforecast.progress import duration, shows_bar
from splineforecast.training import GracefulStop, TrainResult, fit
from splineforecast.windows import WindowDataModule

NUMBER = r"\d+\.\d+(?:e[-+]\d+)?"  # four significant digits, trailing zeros kept
DURATION = r"\d+\.\ds|\d+s|\d+m\d\ds|\d+h\d\dm"
LINE = re.compile(
    rf"^epoch (?P<epoch>\d+)/(?P<of>\d+)  train/loss (?P<train>{NUMBER})  val/loss (?P<val>{NUMBER})  "
    rf"best (?P<best>{NUMBER}) \(epoch (?P<best_epoch>\d+)\)  elapsed (?:{DURATION})  "
    rf"left (?:~(?:{DURATION})|0\.0s(?: \(early stop\))?)$"
)


def _epoch_lines(text: str) -> list[re.Match[str]]:
    """The epoch lines of ``text``; fails on a line that starts like one but does not match."""
    started = [line for line in text.splitlines() if line.startswith("epoch ")]
    matches = [LINE.match(line) for line in started]
    assert all(matches), started
    return [m for m in matches if m is not None]


@pytest.fixture
def pty_stream() -> Iterator[tuple[io.TextIOWrapper, list[bytes]]]:
    """A text stream on a pseudo-terminal, and what reached the terminal's other end (read by a thread)."""
    leader, follower = pty.openpty()
    stream = io.TextIOWrapper(io.FileIO(follower, "w", closefd=True), write_through=True)
    seen: list[bytes] = []

    def drain() -> None:  # the terminal's buffer is small: a writer blocks unless someone reads
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the follower side closed
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    yield stream, seen
    stream.close()
    reader.join(timeout=5)
    os.close(leader)


def test_the_bar_only_on_a_terminal_with_the_bar_enabled(
    pty_stream: tuple[io.TextIOWrapper, list[bytes]], tmp_path: Path
) -> None:
    terminal, _ = pty_stream
    assert shows_bar(True, terminal)
    assert not shows_bar(False, terminal)  # trainer.enable_progress_bar=false, as the API's jobs pass
    with (tmp_path / "run.log").open("w") as log:
        assert not shows_bar(True, log)
    closed = io.StringIO()
    closed.close()
    assert not shows_bar(True, closed)


def test_durations() -> None:
    seconds = (0.04, 9.94, 12.4, 156, 3600 + 5 * 60 + 29)
    assert [duration(s) for s in seconds] == ["0.0s", "9.9s", "12s", "2m36s", "1h05m"]


def _data() -> tuple[ForecastModule, WindowDataModule]:
    t = np.arange(120, dtype=np.float64)
    values = (np.sin(2 * np.pi * t / 12) + 0.01 * t)[:, None]  # (rows, n_features)
    spec = DataSpec(n_features=1, lookback=12, horizon=3, target_indices=(0,))
    data = WindowDataModule(values, ~np.isnan(values), Split((0, 80), (80, 100), (100, 120)), spec, 1, 16)
    model = ModelConfig(name="gru", hidden_size=4, num_layers=1, lr=0.05).settle(False, 12, 12)
    return ForecastModule(dataclasses.asdict(model), dataclasses.asdict(spec)), data


def _fit(tmp_path: Path, epochs: int, resume: bool = False) -> TrainResult:
    module, data = _data()
    cfg = TrainerConfig(max_epochs=epochs, patience=100, limit_train_batches=2, limit_val_batches=2)
    stop = GracefulStop(tmp_path / "last.ckpt")
    return fit(module, data, cfg, tmp_path / "best.ckpt", [], stop, resume=resume)


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_a_line_per_epoch_off_a_terminal_and_the_count_goes_on_after_a_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fit(tmp_path, 3)  # enable_progress_bar is on (the default): stdout, captured here, is no terminal
    first = capsys.readouterr().out
    resumed = _fit(tmp_path, 5, resume=True)
    again = capsys.readouterr().out
    assert "\r" not in first + again and "\x1b" not in first + again
    lines = _epoch_lines(first) + _epoch_lines(again)
    assert all(len(m[k].lstrip("0.").split("e")[0].replace(".", "")) == 4 for m in lines for k in ("train", "val"))
    assert [(m["epoch"], m["of"]) for m in lines] == [("1", "3"), ("2", "3"), ("3", "3"), ("4", "5"), ("5", "5")]
    assert len(first.splitlines()) == 3 and len(again.splitlines()) == 2  # nothing else on stdout
    vals = [float(m["val"]) for m in lines]
    for k, m in enumerate(lines):  # the best so far, across the resume
        seen = vals[: k + 1]
        assert float(m["best"]) == min(seen) and int(m["best_epoch"]) == seen.index(min(seen)) + 1
    assert f"{resumed.best_val_loss:#.4g}" == lines[-1]["best"]  # what best.ckpt holds


def test_a_terminal_gets_the_bar_and_no_lines(
    pty_stream: tuple[io.TextIOWrapper, list[bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal, seen = pty_stream
    monkeypatch.setattr("sys.stdout", terminal)  # where Lightning draws the bar, and the lines would go
    _fit(tmp_path, 2)
    terminal.flush()
    time.sleep(0.2)  # the reader thread catches up
    shown = b"".join(seen).decode(errors="replace")
    assert re.search(r"Epoch \d", shown) and "\r" in shown  # Lightning's bar (rich's or tqdm's), drawn in place
    assert not re.search(r"^epoch \d+/", shown.replace("\r", "\n"), flags=re.M)


@pytest.mark.slow
def test_a_run_with_stdout_to_a_file_writes_each_epoch_line_as_it_trains(seeded: Cli) -> None:
    cli, epochs = seeded, 6
    log = cli.root / "run.log"
    args = ["data=tiny", "trainer=smoke", f"trainer.max_epochs={epochs}", "trainer.patience=100", "run_id=lines"]
    env = {k: v for k, v in cli.env.items() if k != "PYTHONUNBUFFERED"}  # a file's stdout is block-buffered
    with log.open("w") as out, (cli.root / "run.err").open("w") as err:  # as `nohup ... > run.log &`
        proc = subprocess.Popen(
            cli.command(*args), cwd=cli.root, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        try:
            deadline = time.monotonic() + 60
            while not log.read_text().startswith("epoch 1/") and time.monotonic() < deadline:
                time.sleep(0.02)
            early, running = log.read_text(), proc.poll() is None
        finally:
            proc.wait(timeout=120)
    assert proc.returncode == 0, (cli.root / "run.err").read_text()[-3000:]
    assert early.startswith(f"epoch 1/{epochs}  ") and running  # written while the run went on
    assert "run_id:" not in early
    text = log.read_text()
    assert "\r" not in text and "\x1b" not in text
    lines = _epoch_lines(text)
    assert [int(m["epoch"]) for m in lines] == list(range(1, epochs + 1))
    assert {m["of"] for m in lines} == {str(epochs)}
    assert re.search(r"^run_id:\s+lines$", text, flags=re.M)  # the summary follows the epoch lines
