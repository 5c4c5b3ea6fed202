"""Worker pools kept warm between jobs, and what all of them did.

A job's pool of warm workers (each one a process with torch loaded) is not
closed when the job ends: the next job with the same pool settings (mode,
concurrency, limits) takes it as it is, with no process to start. A job
with other settings closes it and starts its own; so does one that ended by
an error or a cancellation (its workers' state is unknown); idle() closes
it when the peer has no job to run. Workers are stateless (see
worker_main), so a pool serves any job.

totals() sums up every pool these WarmPools opened, closed ones included:
invocations, retries and process starts, cold ones apart.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from spirtd.clock import Clock
from spirtd.workers.config import PoolConfig, PoolMode
from spirtd.workers.pool import PoolPhase, PoolStats, WorkerPool

# A request's reply and the attempts it took.
Invoke = Callable[[dict[str, Any]], Awaitable[tuple[dict[str, Any], int]]]


@dataclass(frozen=True)
class WorkerTotals:
    """What every pool did, since the WarmPools were made."""

    invocations: int = 0  # invocations that returned a reply
    failures: int = 0  # invocations whose every attempt failed
    retries: int = 0  # attempts after an invocation's first
    cold_starts: int = 0  # processes started for cold-mode invocations (one per attempt)
    warm_starts: int = 0  # processes started to keep warm pools filled

    def plus(self, stats: PoolStats, mode: PoolMode) -> "WorkerTotals":
        cold = mode is PoolMode.COLD
        return WorkerTotals(
            self.invocations + stats.invocations, self.failures + stats.failures, self.retries + stats.retries,
            self.cold_starts + (stats.workers_started if cold else 0),
            self.warm_starts + (0 if cold else stats.workers_started),
        )  # fmt: skip


class WarmPools:
    def __init__(self, handler: str, env: Mapping[str, str], clock: Clock) -> None:
        self._handler = handler
        self._env = dict(env)
        self._clock = clock
        self._kept: tuple[PoolConfig, WorkerPool] | None = None
        self._open: dict[int, tuple[PoolConfig, WorkerPool]] = {}  # by id(pool): not yet closed
        self._closed = WorkerTotals()

    def totals(self) -> WorkerTotals:
        totals = self._closed
        for config, pool in self._open.values():
            totals = totals.plus(pool.stats(), config.mode)
        return totals

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
            await self._close(pool)
            raise
        if pool.phase is PoolPhase.RUNNING:
            self._kept = (config, pool)
        else:
            await self._close(pool)

    async def _take(self, config: PoolConfig) -> WorkerPool:
        kept, self._kept = self._kept, None
        if kept is not None:
            if kept[0] == config and kept[1].phase is PoolPhase.RUNNING:
                return kept[1]
            await self._close(kept[1])
        pool = WorkerPool(config, self._handler, clock=self._clock, env=self._env)
        self._open[id(pool)] = (config, pool)
        try:
            await pool.__aenter__()
        except BaseException:
            self._retire(pool)  # __aenter__ closed it
            raise
        return pool

    async def _close(self, pool: WorkerPool) -> None:
        try:
            await pool.aclose()
        finally:
            self._retire(pool)

    def _retire(self, pool: WorkerPool) -> None:
        """Folds a closed pool's counts into the totals."""
        entry = self._open.pop(id(pool), None)
        if entry is not None:
            self._closed = self._closed.plus(pool.stats(), entry[0].mode)

    async def idle(self) -> None:
        """Closes the kept pool (the peer has no job to run)."""
        kept, self._kept = self._kept, None
        if kept is not None:
            await self._close(kept[1])

    aclose = idle
