"""The processes and logs of training jobs: each in its own session (process group), its output in a file.

A job's stdout and stderr go straight to ``<state_dir>/jobs/<job_id>.log`` (appended to by each attempt),
so a job outlives nothing of the server's: no pipe breaks when the server dies. A job a previous server
left running is recognised by its process' command line (``splineforecast`` and ``run_id=<run_id>``)
before anything signals it, so a recycled pid is never hit.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

LOG_TAIL_LINES = 50
LOG_TAIL_BYTES = 16_384  # read from the end of a log for its tail
LOG_LINE_CHARS = 500
STOP_GRACE_S = 30.0  # after SIGTERM, this long to save last.ckpt before SIGKILL
_CREDENTIALS = re.compile(r"(://)[^/\s:@]+:[^/\s@]+@")  # user:password@ in a URI


def exit_status(returncode: int) -> int:
    """A process' exit status as a shell reports it: death by signal N is 128 + N (SIGTERM: 143)."""
    return 128 - returncode if returncode < 0 else returncode


def spawn(overrides: Sequence[str], env: dict[str, str], log: Path, header: str) -> subprocess.Popen[str]:
    """``python -m splineforecast <overrides>`` in a new session, its output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8", errors="replace") as out:
        out.write(header.rstrip("\n") + "\n")
        out.flush()
        return subprocess.Popen(
            [sys.executable, "-m", "splineforecast", *overrides],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            start_new_session=True,  # its own process group: signals reach it and its workers, not the server
        )


def signal_group(pid: int, signum: int) -> bool:
    """Send ``signum`` to the process group led by ``pid``; False when it is gone."""
    if pid <= 0:
        return False
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def _proc_text(pid: int, name: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes().decode(errors="replace")
    except OSError:
        return None


def is_job_process(pid: int | None, run_id: str) -> bool:
    """Whether ``pid`` is a live (not zombie) ``python -m splineforecast ... run_id=<run_id>`` process.

    Read from ``/proc``; where that is missing the answer is False (nothing is signalled).
    """
    if pid is None or pid <= 0:
        return False
    stat, cmdline = _proc_text(pid, "stat"), _proc_text(pid, "cmdline")
    if stat is None or cmdline is None:
        return False
    state = stat.rsplit(")", 1)[-1].split()[:1]
    if state in (["Z"], ["X"]):
        return False
    argv = cmdline.split("\0")
    return "splineforecast" in argv and f"run_id={run_id}" in argv


def stop_orphan(pid: int, run_id: str, grace: float = STOP_GRACE_S) -> bool:
    """Stop a job process a previous server left behind: SIGTERM (last.ckpt saved, run KILLED), then
    SIGKILL after ``grace`` seconds. Returns whether such a process was found."""
    if not is_job_process(pid, run_id):
        return False
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while is_job_process(pid, run_id):
        if time.monotonic() > deadline:
            signal_group(pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    return True


def read_tail(log: Path, limit: int) -> str:
    """The last ``limit`` bytes of ``log`` as text, from its first whole line; "" when there is no log."""
    try:
        with log.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - limit))
            data = fh.read(limit)
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return text.split("\n", 1)[-1] if size > limit else text  # a line cut at the start is left out


def log_tail(log: Path, lines: int = LOG_TAIL_LINES, limit: int = LOG_TAIL_BYTES) -> list[str]:
    """The last ``lines`` lines of ``log`` (from its last ``limit`` bytes, each cut at LOG_LINE_CHARS),
    user:password@ in URIs masked; [] when there is no log yet."""
    text = read_tail(log, limit).splitlines()
    return [_CREDENTIALS.sub(r"\1***@", line[:LOG_LINE_CHARS]) for line in text[-lines:]]
