"""Tracking calls that found no server: :class:`StoreUnreachable` and how to tell one from another failure."""

from __future__ import annotations

import requests

from splineforecast.errors import ContractError, ErrorCode


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
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 16:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    failed = [e for e in chain if isinstance(e, requests.ConnectionError | requests.Timeout | OSError)]
    if not any(isinstance(e, requests.RequestException | ConnectionError | TimeoutError) for e in failed):
        return None
    if any(isinstance(e, ConnectionRefusedError) or "Connection refused" in str(e) for e in failed):
        return "connection refused"
    if any(isinstance(e, requests.Timeout | TimeoutError) for e in failed):
        return "no answer in time"
    return "connection failed"
