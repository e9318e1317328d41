"""Exit codes and the one-line JSON error payload of SPEC §3.

Every way out of ``python -m splineforecast`` is either exit 0 or one of the codes
below, with :func:`to_payload` printed as a single JSON line on stderr.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterator
from typing import Any


class ErrorCode(enum.Enum):
    """SPEC §3 error names with their exit codes."""

    FILE_NOT_FOUND = 21
    ARTIFACT_CONTRACT_ERROR = 22
    INPUT_SHAPE_ERROR = 23
    RUNNER_EXEC_ERROR = 24
    CONFIG_ERROR = 25
    INSUFFICIENT_DATA_ERROR = 26
    RUN_ID_MISMATCH = 27
    DATA_SCHEMA_ERROR = 28
    RUN_CONFLICT = 29
    INTERRUPTED = 130

    @property
    def exit_code(self) -> int:
        return self.value


class ContractError(Exception):
    """A refusal with a SPEC error code and a message that says what to fix.

    Args:
        code: the SPEC error code; its value is the process exit code.
        message: what is wrong, naming the key/column/row and both values, and the fix.
        type_name: the ``error.type`` of the payload; defaults to ``ValueError``.
    """

    def __init__(self, code: ErrorCode, message: str, type_name: str = "ValueError") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.type_name = type_name

    @property
    def exit_code(self) -> int:
        return self.code.exit_code


class Interrupted(BaseException):
    """Ctrl-C (SIGINT, exit 130) or SIGTERM (exit 143) asked the run to stop; it was saved first."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


# user:password@ in URIs and token-like query values never reach a payload.
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:[\w.-]*token|password|secret|[\w.-]*key)=)[^&\s]+")


def causes(exc: BaseException, limit: int = 16) -> Iterator[BaseException]:
    """``exc`` and what it was raised from (``__cause__``, else ``__context__``), at most ``limit`` of them."""
    seen: BaseException | None = exc
    for _ in range(limit):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


def redact(text: str) -> str:
    """Remove credentials embedded in URIs and secret-looking query values."""
    text = _CREDENTIALS.sub(r"\g<scheme>***@", text)
    return _SECRET_QUERY.sub(r"\1***", text)


def to_payload(code: ErrorCode, message: str, type_name: str, exit_code: int | None = None) -> str:
    """Build the one JSON line printed on stderr for a failure (``exit_code`` defaults to the code's)."""
    payload: dict[str, Any] = {
        "ok": False,
        "exit_code": code.exit_code if exit_code is None else exit_code,
        "error": {"code": code.name, "message": redact(message), "type": type_name},
    }
    return json.dumps(payload, ensure_ascii=False)
