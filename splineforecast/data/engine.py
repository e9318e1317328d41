"""Where a panel's per-series preprocessing runs: in this process, in local processes, or on a Dask cluster.

:func:`series_mapper` turns ``data.n_jobs`` and ``data.cluster`` into the ``mapper(fn, items)`` that
``PanelPreprocessor.transform`` hands its per-series work to; it yields the results in order as their
chunks finish, so only the chunks in flight are held:

- ``n_jobs=1`` and no cluster: :func:`serial_map`, a plain loop.
- ``n_jobs != 1`` (``-1`` = every core): joblib's loky processes (joblib comes with scikit-learn).
- ``cluster`` set: a Dask distributed scheduler at that address (``tcp://host:port``).

Series are sent in chunks (at most :data:`MAX_CHUNK` series, about :data:`CHUNKS_PER_WORKER` chunks per
worker), so a panel of 100,000 small series costs a few hundred tasks, not 100,000. Every mapper returns
the results in the order of ``items``, each computed by the same function on the same pickled inputs, so
the arrays are bit-identical to the serial loop's.

Why Dask distributed for a cluster: it is pure Python and pandas-native (DataFrames and NumPy arrays
travel as they are), a local cluster (``distributed.LocalCluster``) starts in seconds on the loopback
interface, and the same ``tcp://`` address reaches a scheduler on other machines. Ray would do the job
but is a much heavier dependency (its own object store, a C++ runtime, a large wheel). ``distributed`` is
an optional extra (``pip install splineforecast[cluster]``) and is imported only when a cluster is given.
The cluster's workers must have the same splineforecast (and NumPy, pandas, SciPy) installed.
"""

from __future__ import annotations

import math
import pickle
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from splineforecast.data.panel_preprocess import Mapper, serial_map
from splineforecast.errors import ContractError, ErrorCode

CONNECT_TIMEOUT_S = 5.0  # connecting to a scheduler, and waiting for its first worker
CHUNKS_PER_WORKER = 4  # a few chunks per worker, so a slow chunk does not leave the others idle
MAX_CHUNK = 512  # series per task at most: bounds the size of one message to a worker
IN_FLIGHT_PER_WORKER = 2  # chunks sent ahead per worker on a cluster: bounds what the client holds

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class _Failure:
    """A ContractError raised in a worker, carried back as data (ContractError itself does not unpickle)."""

    code: str
    message: str
    type_name: str

    def raise_(self) -> None:
        raise ContractError(ErrorCode[self.code], self.message, self.type_name)


def _run_chunk(fn: Callable[[_T], _R], chunk: Sequence[_T]) -> list[_R] | _Failure:
    """``fn`` over one chunk, in a worker; a ContractError comes back as a :class:`_Failure`."""
    try:
        return [fn(x) for x in chunk]
    except ContractError as exc:
        return _Failure(exc.code.name, exc.message, exc.type_name)


def chunked(items: Sequence[_T], workers: int) -> list[Sequence[_T]]:
    """``items`` cut into consecutive chunks: about ``CHUNKS_PER_WORKER`` per worker, ``MAX_CHUNK`` at most each."""
    if not items:
        return []
    n_chunks = min(len(items), max(workers * CHUNKS_PER_WORKER, math.ceil(len(items) / MAX_CHUNK)))
    bounds = [round(i * len(items) / n_chunks) for i in range(n_chunks + 1)]
    return [items[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _joined(outcomes: Iterable[list[_R] | _Failure]) -> Iterator[_R]:
    """The chunks' results end to end, in order; the first worker's ContractError raised here."""
    for outcome in outcomes:
        if isinstance(outcome, _Failure):
            outcome.raise_()
        else:
            yield from outcome


class JoblibMapper:
    """Chunks of series in ``n_jobs`` loky processes (``-1`` = every core)."""

    def __init__(self, n_jobs: int) -> None:
        self.n_jobs = n_jobs

    def __call__(self, fn: Callable[[_T], _R], items: Sequence[_T]) -> Iterator[_R]:
        from joblib import Parallel, delayed, effective_n_jobs

        workers = effective_n_jobs(self.n_jobs)
        chunks = chunked(items, workers)
        outcomes = Parallel(n_jobs=min(workers, max(1, len(chunks))), backend="loky", return_as="generator")(
            delayed(_run_chunk)(fn, c) for c in chunks
        )
        return _joined(outcomes)


def _unreachable(address: str, why: object) -> ContractError:
    return ContractError(
        ErrorCode.RUNNER_EXEC_ERROR,
        f"cannot reach the Dask scheduler at `data.cluster` ({address}) within {CONNECT_TIMEOUT_S:g} s: {why}; "
        "start one there (`dask scheduler` and `dask worker ADDRESS`, or distributed.LocalCluster), "
        "fix the address, or set data.cluster=null to preprocess on this machine",
        "ConnectionError",
    )


def connect(address: str) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address`` with at least one worker.

    Raises:
        ContractError: RUNNER_EXEC_ERROR when ``distributed`` is not installed, nothing answers at
            ``address`` within ``CONNECT_TIMEOUT_S``, or the scheduler has no worker; CONFIG_ERROR for an
            address that is not one.
    """
    try:
        import distributed
    except ImportError as exc:
        raise ContractError(
            ErrorCode.RUNNER_EXEC_ERROR,
            f"`data.cluster` ({address}) needs the `distributed` package: pip install 'splineforecast[cluster]', "
            "or set data.cluster=null",
            "ImportError",
        ) from exc
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except ValueError as exc:
        raise ContractError(
            ErrorCode.CONFIG_ERROR,
            f"`data.cluster` ({address}) is not a scheduler address ({exc}); e.g. tcp://HOST:8786",
        ) from exc
    except (OSError, TimeoutError) as exc:
        raise _unreachable(address, exc) from exc
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        client.close()
        raise _unreachable(address, f"the scheduler has no worker ({exc})") from exc
    return client


class DaskMapper:
    """Chunks of series on the Dask scheduler at ``address``: scattered, computed, gathered in order."""

    def __init__(self, address: str) -> None:
        self.address = address

    def __call__(self, fn: Callable[[_T], _R], items: Sequence[_T]) -> Iterator[_R]:
        client = connect(self.address)
        try:
            workers = sum(client.nthreads().values())
            in_flight: deque[Any] = deque()
            for chunk in chunked(items, workers):
                # one pickled message per chunk: Dask's serialisation of many small objects costs more
                # than the work; at most IN_FLIGHT_PER_WORKER chunks per worker are held at once
                blob = client.scatter(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))
                in_flight.append(client.submit(_run_pickled, fn, blob, pure=False))
                if len(in_flight) >= IN_FLIGHT_PER_WORKER * workers:
                    yield from _joined([pickle.loads(in_flight.popleft().result())])
            while in_flight:
                yield from _joined([pickle.loads(in_flight.popleft().result())])
        finally:
            client.close()


def _run_pickled(fn: Callable[[_T], _R], blob: bytes) -> bytes:
    """:func:`_run_chunk` on a worker, the chunk and its outcome pickled (the cluster's own trust model:
    Dask pickles every task; nothing here is read from disk)."""
    return pickle.dumps(_run_chunk(fn, pickle.loads(blob)), protocol=pickle.HIGHEST_PROTOCOL)


def series_mapper(n_jobs: int, cluster: str | None) -> Mapper:
    """The mapper of ``data.n_jobs`` and ``data.cluster`` (see the module docstring).

    A cluster is reached here, before any series is touched, so that a wrong address fails at once.

    Raises:
        ContractError: CONFIG_ERROR for ``n_jobs`` 0 or below -1; RUNNER_EXEC_ERROR for a cluster that
            cannot be reached (see :func:`connect`).
    """
    if n_jobs == 0 or n_jobs < -1:
        raise ContractError(ErrorCode.CONFIG_ERROR, f"`data.n_jobs` ({n_jobs}) must be >= 1, or -1 for every core")
    if cluster is not None:
        connect(cluster).close()
        return DaskMapper(cluster)
    return serial_map if n_jobs == 1 else JoblibMapper(n_jobs)
