"""asyncio.timeout on an injected Clock.

asyncio.timeout counts on the event loop's own clock, which a FakeClock
does not move; `clock_timeout(clock, delay_s)` is the same scope counted on
the given clock, so that code under test times out in virtual time. It is
asyncio's own Timeout underneath (expired by a watcher that sleeps on the
clock), so nesting, cancellation and the TimeoutError it raises behave
exactly like asyncio.timeout's.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from spirtd.clock import Clock


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
