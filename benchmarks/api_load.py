"""Load on the real API server: many clients reading runs and asking forecasts, then a burst of job submissions.

    python benchmarks/api_load.py [--clients 50] [--duration 60] [--jobs 50] [--settle 10] [--out PATH]

It trains ``--seed-runs`` tiny runs with the CLI (``data=tiny trainer=smoke``), starts
``python -m splineforecast.api`` on loopback (dev mode) over their store and artifacts (timing its start to
its first healthy answer: the server opens the store and imports the forecasting modules before it listens),
and then:

0. a warm-up: one request of each kind, one at a time (the first forecast loads its run's model);
1. ``--clients`` clients for ``--duration`` seconds, each one request at a time (bounded concurrency),
   in turn: the run list, a run's detail, a forecast from a run's model (40 rows of history);
2. ``--jobs`` job submissions at the same moment (``POST /api/v1/jobs``, a 1-epoch tiny run each), then
   ``--settle`` seconds more while the accepted jobs train.

A separate process asks ``GET /api/v1/health`` every ``--probe-interval`` seconds throughout. The table
gives requests, requests per second, p50/p99/max latency and the answers by status per request kind; below
it the server's peak RSS (VmHWM of its process, not of the jobs it starts). Expected answers: 2xx, 429 (a
full job queue) or the documented refusals (400, 401, 404, 413, 422); anything else makes the exit code 1.
Per phase it also gives how many threads of the server (and of its event loop, the probe and the load
generator) waited for a CPU on average (run-queue seconds per second, /proc schedstat), and the load average:
on a shared machine, a slow health answer there is the machine's queue for its cores, not the server's work.
The last lines say whether the health p99 stayed under 100 ms in every phase and over the whole measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import _common as common
import httpx

DOCUMENTED = {400, 401, 404, 413, 422, 429}  # refusals the API documents; 2xx is success
HEALTH_P99_MS = 100.0
COLUMNS = ("phase", "kind", "requests", "rps", "p50_ms", "p99_ms", "max_ms", "statuses")
JOB_BODY = {"dataset": "tiny", "model": "lstm", "hidden_size": 8, "num_layers": 1, "epochs": 1}
Sample = tuple[str, float, float, str]  # kind, start (monotonic s), latency (s), status or exception name


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=50, help="concurrent read clients (default 50)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of read load (default 60)")
    p.add_argument("--jobs", type=int, default=50, help="simultaneous job submissions (default 50)")
    p.add_argument("--settle", type=float, default=10.0, help="seconds measured after the burst (default 10)")
    p.add_argument("--seed-runs", type=int, default=2, help="tiny runs trained before the load (default 2)")
    p.add_argument("--probe-interval", type=float, default=0.05, help="seconds between health probes")
    p.add_argument("--out", default=str(common.RESULTS / "api_load.json"), help="the JSON written (%(default)s)")
    p.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temp folder)")
    return p.parse_args(argv)


def clean_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPLINE_", "MLFLOW_"))}
    env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.update(
        SPLINE_DEV_MODE="1",
        SPLINE_ARTIFACT_ROOT=str(root / "artifacts"),
        SPLINE_TRACKING_URI=f"sqlite:///{root}/mlruns/mlflow.db",
        SPLINE_API_STATE_DIR=str(root / "state"),
    )
    return env


def seed_runs(root: Path, n: int) -> list[str]:
    """Train ``n`` tiny runs into ``root``'s store and artifacts; their run_ids."""
    env = clean_env(root)
    store = [f"tracking.uri={env['SPLINE_TRACKING_URI']}", f"paths.artifacts={env['SPLINE_ARTIFACT_ROOT']}"]
    run_ids = [f"load-{i}" for i in range(1, n + 1)]
    for run_id in run_ids:
        argv = [sys.executable, "-m", "splineforecast", "data=tiny", "trainer=smoke", f"run_id={run_id}", *store]
        done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            sys.exit(f"seeding run {run_id} failed ({done.returncode}): {done.stderr[-2000:]}")
    return run_ids


class Server:
    """``python -m splineforecast.api`` on a free loopback port, in its own session."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "splineforecast.api", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--log-level", "warning"]
        with (root / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=root, env=clean_env(root), stdout=log, stderr=log, start_new_session=True
            )
        started = time.monotonic()
        with httpx.Client(timeout=2) as client:  # one client: each httpx.get() builds a TLS context (~70 ms CPU)
            while not self._healthy(client):
                if self.proc.poll() is not None or time.monotonic() > started + 180:
                    sys.exit(f"the API server did not start: {(root / 'server.log').read_text()[-2000:]}")
                time.sleep(0.05)
        self.start_s = time.monotonic() - started  # process start to the first healthy answer

    def _healthy(self, client: httpx.Client) -> bool:
        try:
            return client.get(f"{self.base}/api/v1/health").status_code == 200
        except httpx.HTTPError:
            return False

    def peak_rss_mib(self) -> float:
        """VmHWM of the server's process: its resident set at its largest so far."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")

    def stop(self) -> None:
        """SIGTERM (the server stops its jobs), then SIGKILL its session if it lingers; then leftover jobs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        for pid in job_pids(self.root):  # jobs run in sessions of their own; ours name this folder
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def job_pids(root: Path) -> list[int]:
    """Training processes still running that the server started for this folder (their command names it)."""
    mark = f"paths.artifacts={root / 'artifacts'}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                leader = os.getpgid(int(entry.name)) == int(entry.name)  # a job leads its own process group
            except OSError:  # gone meanwhile
                continue
            if b"splineforecast" in cmdline and mark in cmdline and leader:
                pids.append(int(entry.name))
    return pids


def probe(base: str, interval: float, stop: Any, ready: Any, out: Any) -> None:
    """In its own process: GET health every ``interval`` s until ``stop`` is set (``ready`` once the first one is
    answered); put the samples on ``out``."""
    samples: list[Sample] = []
    with httpx.Client(base_url=base, timeout=10) as client:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                status = str(client.get("/api/v1/health").status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            samples.append(("health", t0, time.monotonic() - t0, status))
            ready.set()
            time.sleep(max(0.0, interval - (time.monotonic() - t0)))
    out.put(samples)


def forecast_body() -> dict[str, Any]:
    """The last 40 rows of the bundled tiny table, as text cells (what the GUI sends)."""
    import csv

    path = Path(str(resources.files("splineforecast") / "datasets" / "co2_tiny.csv"))
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return {"columns": rows[0], "data": rows[-40:]}


async def _timed(client: httpx.AsyncClient, kind: str, call: Callable[[], Any]) -> Sample:
    t0 = time.monotonic()
    try:
        status = str((await call()).status_code)
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return kind, t0, time.monotonic() - t0, status


async def read_load(
    base: str, clients: int, duration: float, run_ids: list[str], turns: int | None = None
) -> list[Sample]:
    """``clients`` loops of one request at a time for ``duration`` s (or ``turns`` requests each): the run list,
    a run's detail and a forecast in turn."""
    body = forecast_body()
    # idle connections dropped after 2 s: before the server's 5 s keep-alive closes them under a request
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        kinds: dict[str, Callable[[str], Any]] = {
            "run list": lambda _: client.get("/api/v1/runs"),
            "run detail": lambda r: client.get(f"/api/v1/runs/{r}"),
            "forecast": lambda r: client.post(f"/api/v1/runs/{r}/forecast", json=body),
        }
        deadline = time.monotonic() + duration

        async def one(i: int) -> list[Sample]:
            got = []
            order = itertools.cycle(list(kinds.items())[i % 3 :] + list(kinds.items())[: i % 3])
            for n in itertools.count():
                if (n >= turns) if turns is not None else time.monotonic() >= deadline:
                    return got
                kind, call = next(order)
                run_id = run_ids[n % len(run_ids)]
                got.append(await _timed(client, kind, lambda c=call, r=run_id: c(r)))  # type: ignore[misc]
            return got

        parts = await asyncio.gather(*(one(i) for i in range(clients)))
    return [s for part in parts for s in part]


async def job_burst(base: str, jobs: int) -> tuple[list[Sample], list[str]]:
    """``jobs`` POST /jobs released at the same moment, each on its own connection; samples and accepted ids."""
    limits = httpx.Limits(max_connections=jobs + 1)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        go = asyncio.Event()
        accepted: list[str] = []

        async def submit() -> Sample:
            await go.wait()
            t0 = time.monotonic()
            try:
                response = await client.post("/api/v1/jobs", json=JOB_BODY)
                status = str(response.status_code)
                if response.status_code == 202:
                    accepted.append(str(response.json().get("job_id")))
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            return "job submit", t0, time.monotonic() - t0, status

        tasks = [asyncio.create_task(submit()) for _ in range(jobs)]
        await asyncio.sleep(0.2)  # every task waits at the gate
        go.set()
        samples = list(await asyncio.gather(*tasks))
    return samples, accepted


def summarize(phase: str, kind: str, samples: list[Sample], seconds: float) -> dict[str, Any]:
    ms = sorted(s[2] * 1000 for s in samples)
    pick = (lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]) if ms else (lambda q: float("nan"))
    statuses = Counter(s[3] for s in samples)
    unexpected = {k: n for k, n in statuses.items() if not (k.isdigit() and (k[0] == "2" or int(k) in DOCUMENTED))}
    return {
        "phase": phase,
        "kind": kind,
        "requests": len(ms),
        "rps": len(ms) / seconds if seconds > 0 else float("nan"),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "max_ms": ms[-1] if ms else float("nan"),
        "statuses": " ".join(f"{k}:{n}" for k, n in sorted(statuses.items())),
        "status_counts": dict(statuses),
        "unexpected": unexpected,
    }


def rows_of(phases: list[tuple[str, float, float, list[Sample]]], health: list[Sample]) -> list[dict[str, Any]]:
    """Per phase (name, start, end, samples): one row per request kind and one of the health probes in it."""
    rows = []
    for name, start, end, samples in phases:
        for kind in dict.fromkeys(s[0] for s in samples):
            rows.append(summarize(name, kind, [s for s in samples if s[0] == kind], end - start))
        rows.append(summarize(name, "health", [h for h in health if start <= h[1] < end], end - start))
    start, end = phases[0][1], phases[-1][2]
    during = [h for h in health if start <= h[1] < end]
    rows.append(summarize("all", "health", during, end - start))
    return rows


def cpu_waits(pids: dict[str, int]) -> dict[str, float]:
    """Seconds the live threads of each process (by name) have waited on a run queue for a CPU so far
    (/proc schedstat), and of the server's event loop (its main thread) alone; the 1-minute load average."""
    waits = {"load average": float(Path("/proc/loadavg").read_text().split()[0])}
    for name, pid in pids.items():
        tasks = [t for t in Path(f"/proc/{pid}/task").iterdir() if name != "server event loop" or t.name == str(pid)]
        waits[name] = sum(int((t / "schedstat").read_text().split()[1]) for t in tasks if (t / "schedstat").exists())
        waits[name] /= 1e9
    return waits


def wait_shares(names: list[str], marks: list[dict[str, float]], bounds: list[float]) -> dict[str, Any]:
    """Per phase: the threads of each process waiting for a CPU on average (run-queue seconds per second), and
    the load average at its end."""
    out: dict[str, Any] = {}
    for i, phase in enumerate(names):
        seconds = bounds[i + 1] - bounds[i]
        out[phase] = {k: round((marks[i + 1][k] - marks[i][k]) / seconds, 3) for k in marks[i] if k != "load average"}
        out[phase]["load average"] = marks[i + 1]["load average"]
    return out


def job_outcomes(base: str, accepted: list[str]) -> dict[str, int]:
    """The statuses of the accepted jobs when the measurement ends."""
    counts: Counter[str] = Counter()
    with httpx.Client(base_url=base, timeout=30) as client:
        for job_id in accepted:
            answer = client.get(f"/api/v1/jobs/{job_id}")
            counts[str(answer.json().get("status")) if answer.status_code == 200 else str(answer.status_code)] += 1
    return dict(counts)


def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    run_ids = seed_runs(root, args.seed_runs)
    server = Server(root)
    ctx = multiprocessing.get_context("spawn")
    stop, ready, out = ctx.Event(), ctx.Event(), ctx.Queue()
    prober = ctx.Process(target=probe, args=(server.base, args.probe_interval, stop, ready, out))
    try:
        prober.start()
        if not ready.wait(timeout=120):
            sys.exit("the health probe did not start")
        pids = {"server": server.proc.pid, "server event loop": server.proc.pid, "probe": prober.pid or 0}
        pids["load generator"] = os.getpid()
        marks, tw = [cpu_waits(pids)], time.monotonic()
        warm = asyncio.run(read_load(server.base, 1, 0.0, run_ids, turns=3))  # a first request of each kind
        marks, t0 = [*marks, cpu_waits(pids)], time.monotonic()
        reads = asyncio.run(read_load(server.base, args.clients, args.duration, run_ids))
        marks, t1 = [*marks, cpu_waits(pids)], time.monotonic()
        burst, accepted = asyncio.run(job_burst(server.base, args.jobs))
        time.sleep(args.settle)
        marks, t2 = [*marks, cpu_waits(pids)], time.monotonic()
        stop.set()
        health = out.get(timeout=60)
        prober.join(timeout=30)
        outcomes = job_outcomes(server.base, accepted)
        rss = server.peak_rss_mib()
    finally:
        stop.set()
        server.stop()
    phases = [("warm-up", tw, t0, warm), ("reads", t0, t1, reads), ("job burst", t1, t2, burst)]
    first = {kind: round(seconds * 1000, 1) for kind, _, seconds, _ in warm}
    return {
        "rows": rows_of(phases, health),
        "start_to_healthy_s": round(server.start_s, 2),
        "first_request_ms": first,
        "cpu_wait": wait_shares([p[0] for p in phases], marks, [tw, t0, t1, t2]),
        "peak_rss_mib": rss,
        "jobs_accepted": len(accepted),
        "jobs": outcomes,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="api-load-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        result = measure(args, root)
    rows = result["rows"]
    print(common.table(rows, COLUMNS))
    print(f"\nserver start to its first healthy answer: {result['start_to_healthy_s']:.1f} s")
    print(f"first request of each kind (warm-up), ms: {result['first_request_ms']}")
    print(f"server peak RSS (VmHWM): {result['peak_rss_mib']:.0f} MiB")
    print(f"threads waiting for a CPU on average (run-queue s per s), by phase: {result['cpu_wait']}")
    print(f"jobs accepted: {result['jobs_accepted']} of {args.jobs}; at the end: {result['jobs']}")
    unexpected = {f"{r['phase']}/{r['kind']}": r["unexpected"] for r in rows if r["unexpected"]}
    health_p99 = {r["phase"]: r["p99_ms"] for r in rows if r["kind"] == "health"}
    held = all(p99 < HEALTH_P99_MS for p99 in health_p99.values())  # NaN (a phase without a probe) fails
    print(f"unexpected answers: {unexpected or 'none'}")
    for phase, p99 in health_p99.items():
        print(f"health p99 {phase}: {p99:.1f} ms, {'under' if p99 < HEALTH_P99_MS else 'OVER'} the bar")
    print(f"health p99 under {HEALTH_P99_MS:.0f} ms in every phase: {'yes' if held else 'NO'}")
    config = {k: v for k, v in vars(args).items() if k not in ("out", "keep")}
    common.save_result(
        args.out, "api_load", config, **result, unexpected=unexpected, health_p99_ms=health_p99, health_bar_held=held
    )
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
