"""Work for the mappers of ``test_engine``, in a module that workers import cheaply (no test fixtures)."""

from __future__ import annotations

import os

from splineforecast.errors import ContractError, ErrorCode


def pid_and_square(i: int) -> tuple[int, int]:
    """The worker's process id and ``i * i``."""
    return os.getpid(), i * i


def refuse_700(i: int) -> int:
    """``i``, or a ContractError for 700."""
    if i == 700:
        raise ContractError(ErrorCode.DATA_SCHEMA_ERROR, f"series {i} is bad", "KeyError")
    return i
