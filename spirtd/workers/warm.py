"""Worker pools kept warm between jobs.

A job's pool of warm workers (each one a process with torch loaded) is not
closed when the job ends: the next job with the same pool settings (mode,
concurrency, limits) takes it as it is, with no process to start. A job
with other settings closes it and starts its own; so does one that ended by
an error or a cancellation (its workers' state is unknown); idle() closes
it when the peer has no job to run. Workers are stateless (see
worker_main), so a pool serves any job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, AsyncIterator, Awaitable, Callable

from spirtd.clock import Clock
from spirtd.workers.pool import PoolPhase, WorkerPool
from spirtd.workers.config import PoolConfig

# A request's reply and the attempts it took.
Invoke = Callable[[dict[str, Any]], Awaitable[tuple[dict[str, Any], int]]]


class WarmPools:
    def __init__(self, handler: str, env: Mapping[str, str], clock: Clock) -> None:
        self._handler = handler
        self._env = dict(env)
        self._clock = clock
        self._kept: tuple[PoolConfig, WorkerPool] | None = None

    @contextlib.asynccontextmanager
    async def invoker(self, config: PoolConfig) -> AsyncIterator[Invoke]:
        """A job's invoke(request) -> (reply, attempts), on a kept pool if
        one with these settings is there, else on a new one."""
        pool = await self._take(config)

        async def invoke(request: dict[str, Any]) -> tuple[dict[str, Any], int]:
            result = await pool.invoke(request)
            return result.reply, result.attempts

        try:
            yield invoke
        except BaseException:
            await pool.aclose()
            raise
        if pool.phase is PoolPhase.RUNNING:
            self._kept = (config, pool)
        else:
            await pool.aclose()

    async def _take(self, config: PoolConfig) -> WorkerPool:
        kept, self._kept = self._kept, None
        if kept is not None:
            if kept[0] == config and kept[1].phase is PoolPhase.RUNNING:
                return kept[1]
            await kept[1].aclose()
        pool = WorkerPool(config, self._handler, clock=self._clock, env=self._env)
        await pool.__aenter__()
        return pool

    async def idle(self) -> None:
        """Closes the kept pool (the peer has no job to run)."""
        kept, self._kept = self._kept, None
        if kept is not None:
            await kept[1].aclose()

    aclose = idle
