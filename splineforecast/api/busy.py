"""A bound on the heavy requests the API serves at once (SPLINE_MAX_BUSY): the rest wait a while, then get 429.

:class:`BusyLimiter` counts the requests in flight; :func:`busy_dependency` makes it a route dependency that
waits for a slot on the event loop (no worker thread is held while it waits) for at most ``wait_s`` seconds,
then refuses with 429, ``Retry-After`` and the error body of every refusal.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from splineforecast.api.security import error_body

BUSY_CODE = "SERVER_BUSY"


class ServerBusy(Exception):
    """No slot became free within the wait; answered 429 with ``Retry-After``."""

    def __init__(self, slots: int, wait_s: float) -> None:
        super().__init__(
            f"the server is busy: {slots} heavy requests are in flight and none ended within {wait_s:g} s; "
            "retry after the Retry-After seconds (or raise SPLINE_MAX_BUSY)"
        )
        self.retry_after = max(1, math.ceil(wait_s))

    def body(self) -> dict[str, Any]:
        return error_body(BUSY_CODE, str(self))


class BusyLimiter:
    """At most ``slots`` holders at once; :meth:`acquire` waits up to ``wait_s`` seconds for one to leave.

    Safe across threads and event loops: a release wakes the longest waiter through its own loop.
    """

    def __init__(self, slots: int, wait_s: float) -> None:
        if slots < 1 or wait_s < 0:
            raise ValueError(f"slots must be at least 1 and wait_s not negative (got {slots}, {wait_s})")
        self.slots, self.wait_s = slots, wait_s
        self._lock = threading.Lock()
        self._busy = 0
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a slot if one is free, at once; True when taken (then :meth:`release` it)."""
        with self._lock:
            if self._busy < self.slots:
                self._busy += 1
                return True
            return False

    async def acquire(self) -> bool:
        """Take a slot, waiting up to ``wait_s`` seconds; False when none became free in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while True:
            with self._lock:
                if self._busy < self.slots:
                    self._busy += 1
                    return True
                woken: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, woken))
            try:
                await asyncio.wait_for(woken, max(0.0, deadline - loop.time()))
            except TimeoutError:
                with self._lock:
                    if (loop, woken) in self._waiters:
                        self._waiters.remove((loop, woken))
                return self.try_acquire()  # a slot freed as the wait ran out is still taken

    def release(self) -> None:
        """Give a slot back and wake the longest waiter."""
        with self._lock:
            if self._busy < 1:
                raise RuntimeError("release() without a slot held")
            self._busy -= 1
            waiter = self._waiters.popleft() if self._waiters else None
        if waiter is not None:
            loop, woken = waiter
            loop.call_soon_threadsafe(_wake, woken)


def _wake(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)


def busy_dependency(limiter: BusyLimiter) -> Callable[[], AsyncIterator[None]]:
    """A route dependency holding one slot of ``limiter`` while the route runs; ServerBusy when none is had."""

    async def hold_slot() -> AsyncIterator[None]:
        if not await limiter.acquire():
            raise ServerBusy(limiter.slots, limiter.wait_s)
        try:
            yield
        finally:
            limiter.release()

    return hold_slot
