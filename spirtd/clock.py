"""The one place that reads time. Everything else takes a Clock.

SystemClock is the real one; FakeClock is driven by tests, which advance it
explicitly so that timing logic runs deterministically and instantly.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from types import TracebackType
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""

    def wall(self) -> float:
        """Seconds since the epoch (for logs and certificates only)."""

    async def sleep(self, seconds: float) -> None:
        """Waits this long on this clock."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to. Sleepers wake when advance()
    passes their deadline, in deadline order."""

    def __init__(self, start: float = 0.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    def advance(self, seconds: float) -> None:
        """Moves time forward, waking every sleeper whose deadline passed."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)


# ---- asyncio.timeout on an injected Clock ----
# asyncio.timeout counts on the event loop's own clock, which a FakeClock
# does not move; clock_timeout(clock, delay_s) is the same scope counted on
# the given clock, so that code under test times out in virtual time. It is
# asyncio's own Timeout underneath (expired by a watcher that sleeps on the
# clock), so nesting, cancellation and the TimeoutError it raises behave
# exactly like asyncio.timeout's.


class clock_timeout:  # noqa: N801 - used like asyncio.timeout
    """`async with clock_timeout(clock, 0.5): ...` raises TimeoutError when
    0.5 s pass on `clock` before the body ends. None means no limit."""

    def __init__(self, clock: Clock, delay_s: float | None) -> None:
        self._clock = clock
        self._delay_s = delay_s
        self._scope = asyncio.timeout(None)
        self._watcher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> clock_timeout:
        await self._scope.__aenter__()
        if self._delay_s is not None:
            # Lives exactly as long as this scope; cancelled on exit.
            self._watcher = asyncio.get_running_loop().create_task(self._expire(self._delay_s))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        await self._scope.__aexit__(exc_type, exc, tb)

    def expired(self) -> bool:
        return self._scope.expired()

    async def _expire(self, delay_s: float) -> None:
        await self._clock.sleep(delay_s)
        self._scope.reschedule(asyncio.get_running_loop().time())
