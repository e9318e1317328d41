"""Calls to the tracking store: retried while sqlite is locked, and a server that does not answer named as such.

:class:`RetryingClient` wraps an ``MlflowClient``: each call is retried with jittered exponential backoff
while sqlite reports "database is locked" (:func:`retry`), and one that finds no server (refused, reset,
timed out) raises :class:`StoreUnreachable`: RUNNER_EXEC_ERROR naming the URI and what to do.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests

from splineforecast.errors import ContractError, ErrorCode, causes

RETRIES = 10  # attempts of one store call while sqlite is locked (backoff 0.1 s doubling to 5 s: ~25 s)
_T = TypeVar("_T")


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) is sqlite's "database is locked"."""
    return any("database is locked" in str(e) or "database table is locked" in str(e) for e in causes(exc, 8))


def is_concurrent_dataset(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) is two runs logging the same new dataset at once: MLflow's
    ``log_inputs`` looks the dataset up, then inserts it, so the slower of two writers finds the row taken."""
    return any("UNIQUE constraint failed: datasets." in str(e) for e in causes(exc, 8))


def retry(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``call(*args, **kwargs)``, retried with jittered exponential backoff while sqlite is locked, or while a
    concurrent run's insert of the same dataset makes ours fail (the repeat finds that dataset and links it).

    A failed sqlite write is rolled back, so repeating the call neither loses nor doubles a row.
    """
    delay = 0.1
    for attempt in range(RETRIES):
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if attempt == RETRIES - 1 or not (is_locked(exc) or is_concurrent_dataset(exc)):
                raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")  # pragma: no cover


class StoreUnreachable(ContractError):
    """The tracking server at ``uri`` did not answer: RUNNER_EXEC_ERROR, saying so and what to do."""

    def __init__(self, uri: str, reason: str) -> None:
        message = (
            f"tracking store unreachable at {uri} ({reason}); the run's local files are kept. Start the "
            "tracking server (or point tracking.uri / MLFLOW_TRACKING_URI at one that answers) and run the "
            "same command again: it continues the same MLflow run"
        )
        super().__init__(ErrorCode.RUNNER_EXEC_ERROR, message, "ConnectionError")


def unreachable_reason(exc: BaseException) -> str | None:
    """Why the server did not answer (refused, timed out, ...), if that is what ``exc`` comes from."""
    failed = [e for e in causes(exc) if isinstance(e, OSError)]  # requests' errors are OSErrors too
    no_answer = requests.ConnectionError | requests.Timeout | requests.exceptions.RetryError
    if not any(isinstance(e, no_answer | ConnectionError | TimeoutError) for e in failed):
        return None  # an answer that refuses (HTTPError 4xx) is not this
    if any(isinstance(e, ConnectionRefusedError) or "Connection refused" in str(e) for e in failed):
        return "connection refused"
    if any(isinstance(e, requests.Timeout | TimeoutError) for e in failed):
        return "no answer in time"
    return "connection failed"


class RetryingClient:
    """An ``MlflowClient`` whose every method goes through :func:`retry`; no answer is StoreUnreachable."""

    def __init__(self, client: Any, uri: str = "") -> None:  # an MlflowClient (mlflow: tracking.py's import)
        self._client, self._uri = client, uri

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_client", "_uri"):  # copying or unpickling (DDP spawn) a bare one
            raise AttributeError(name)
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        return functools.partial(self._call, attr)

    def _call(self, attr: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        try:
            return retry(attr, *args, **kwargs)
        except Exception as exc:
            reason = unreachable_reason(exc)
            if reason is None:
                raise
            raise StoreUnreachable(self._uri, reason) from exc
