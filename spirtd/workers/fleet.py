"""Every worker process of one pool, from launch until reaped: starting one
(bounded by start_timeout_s), killing one with its end (WorkerEnd) counted once,
stopping one (drain, then kill), the memory watchdog, and stopping them all
at close. The pool decides when; this module does it and keeps count.

Background work (reaping a killed worker, stopping a cold one) runs through
the pool's `spawn`, in the pool's TaskGroup; once the pool is closing,
spawn runs nothing and close() stops and reaps whatever is left.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from spirtd.clock import Clock, clock_timeout
from spirtd.errors import ProtocolError, WorkerStartFailed
from spirtd.workers.memwatch import rss_mb
from spirtd.workers.config import PoolConfig
from spirtd.workers.process import EndKind, Worker, WorkerEnd, exit_end

Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any] | None"]


class WorkerFleet:
    def __init__(
        self,
        config: PoolConfig,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        handler: str,
        clock: Clock,
        log: logging.Logger,
        spawn: Spawn,
    ) -> None:
        self._config = config
        self._argv = list(argv)
        self._env = dict(env)
        self._handler = handler
        self._clock = clock
        self._log = log
        self._spawn = spawn
        self._workers: set[Worker] = set()  # launched and not yet reaped
        self.started = 0  # processes launched
        self.stopped = 0  # processes that exited when asked
        self.lost: Counter[str] = Counter()  # processes that ended otherwise, by EndKind value

    def __len__(self) -> int:
        return len(self._workers)

    async def start(self) -> tuple[Worker, float]:
        """Launches a worker and waits until it is ready (start_timeout_s);
        returns it and the time that took. Raises WorkerStartFailed, having
        killed the process."""
        mark = self._clock.monotonic()
        worker = await Worker.launch(self._argv, self._env, self._config.max_message_bytes)
        self._workers.add(worker)
        self.started += 1
        limit_s = self._config.start_timeout_s
        try:
            async with clock_timeout(self._clock, limit_s) as scope:
                await worker.wait_ready()
        except TimeoutError:
            if not scope.expired():
                raise
            reason = (
                f"worker {worker.pid} was not ready within start_timeout_s ({limit_s:g} s) "
                f"while importing {self._handler}"
            )
            self.kill(worker, WorkerEnd(EndKind.START_FAILED, reason))
            raise WorkerStartFailed(reason) from None
        except (WorkerStartFailed, ProtocolError) as exc:
            self.kill(worker, WorkerEnd(EndKind.START_FAILED, str(exc)))
            raise WorkerStartFailed(str(exc)) from None
        except BaseException:
            self.kill(worker, WorkerEnd(EndKind.CANCELLED, f"worker {worker.pid}: its start was cancelled"))
            raise
        return worker, self._clock.monotonic() - mark

    def kill(self, worker: Worker, end: WorkerEnd) -> None:
        """SIGKILL (if it still runs), recording `end` (the first end
        recorded wins, and is counted once); reaped in the background."""
        self._record(worker, end)
        worker.kill()
        self._spawn(self._reap(worker))

    async def stop(self, worker: Worker) -> None:
        """Drain, then kill: closes its stdin and gives it stop_grace_s to exit."""
        worker.close_input()
        try:
            async with clock_timeout(self._clock, self._config.stop_grace_s):
                code = await worker.wait()
        except TimeoutError:
            reason = f"worker {worker.pid} did not exit within stop_grace_s of its stdin closing: killed"
            self._log.warning("%s", reason)
            self.kill(worker, WorkerEnd(EndKind.STOP_GRACE_EXPIRED, reason))
            return
        self._record(worker, exit_end(worker.pid, code))
        self._workers.discard(worker)

    async def close(self) -> None:
        """Stops every worker (drain, then kill) and reaps it. Bounded by
        2 x stop_grace_s; whatever is still running when this is cancelled
        is killed."""
        workers = list(self._workers)
        try:
            for worker in workers:
                worker.close_input()
            try:
                async with clock_timeout(self._clock, self._config.stop_grace_s):
                    for worker in workers:
                        await worker.wait()
            except TimeoutError:
                pass
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    reason = f"worker {worker.pid} did not exit within stop_grace_s of the pool closing: killed"
                    self._record(worker, WorkerEnd(EndKind.STOP_GRACE_EXPIRED, reason))
                else:
                    self._record(worker, exit_end(worker.pid, worker.returncode))
        try:
            async with clock_timeout(self._clock, self._config.stop_grace_s):
                for worker in workers:  # SIGKILLed: their exit comes at once
                    await worker.wait()
                    self._workers.discard(worker)
        except TimeoutError:
            left = sorted(w.pid for w in workers if w.returncode is None)
            self._log.error("workers %s did not exit even after SIGKILL (stuck in the kernel?)", left)

    async def watch_memory(self, limit_mb: int) -> None:
        """Forever: every memory_poll_s, kills each worker whose VmRSS is over
        limit_mb. The attempt running on it (if any) sees its pipe end and
        reports its end; an idle one is replaced when next used."""
        while True:
            await self._clock.sleep(self._config.memory_poll_s)
            for worker in list(self._workers):
                if not worker.usable:
                    continue
                used = rss_mb(worker.pid)
                if used is not None and used > limit_mb:
                    reason = f"worker {worker.pid} used {used:.0f} MB, over the limit of {limit_mb} MB: killed"
                    self.kill(worker, WorkerEnd(EndKind.OVER_MEMORY, reason))

    def _record(self, worker: Worker, end: WorkerEnd) -> None:
        """Counts a worker's end, once: the first end recorded is the one."""
        if not worker.record_end(end):
            return
        if end.kind is EndKind.STOPPED:
            self.stopped += 1
        else:
            self.lost[end.kind.value] += 1

    async def _reap(self, worker: Worker) -> None:
        await worker.wait()
        self._workers.discard(worker)
