"""Stateless worker invocations: SPIRT's serverless functions as processes.

    async with WorkerPool(PoolConfig(), "mypkg.grad:handle", clock=SystemClock()) as pool:
        result = await pool.invoke({"id": 7, "params_key": "...", "index": 7})
        result.reply, result.attempts, result.pids, result.timings

Each invocation runs `function(request) -> reply` in a worker process
(spirtd.workers.worker_main; the protocol is in spirtd.workers.protocol). In warm
mode `concurrency` workers are started up front and reused; in cold mode each
attempt gets a fresh process, stopped after its reply. Handlers are
stateless (see worker_main), so any attempt may run anywhere.

Failures and retries. An attempt fails when its worker
- crashes: its pipe ends (it exited or was killed by someone else);
- hangs: no reply within invocation_timeout_s: it is killed;
- goes over memory_limit_mb: the watchdog, which reads every worker's VmRSS
  each memory_poll_s, kills it (or the handler hits the RLIMIT_DATA
  backstop and raises MemoryError: the worker is killed too);
- breaks the protocol: it is killed;
- or when its handler raises (the worker stays) or no worker can be started.
A lost worker is replaced in the background (warm mode). The invocation is
retried, on another worker when one is free, up to max_attempts in all
(handler errors only with retry_handler_errors); then invoke raises
InvocationFailed naming the request's "id" and every attempt's reason. Each
lost worker is logged as a warning with its reason and what happens next.

Bounds. At most `concurrency` invocations run at once (the rest wait for a
slot, first come first served). Every wait is bounded: a start by
start_timeout_s, a call by invocation_timeout_s, a stop by stop_grace_s; one
attempt holds its slot at most 2 x start_timeout_s (a replacement that fails,
then one more start) + invocation_timeout_s, and an invocation makes at most
max_attempts attempts.
Cancelling an invoke() kills the worker it was using (its state is unknown)
and replaces it. Closing the pool cancels every invocation in flight (their
invoke() raises PoolClosed), drains idle workers (stdin closed, stop_grace_s
to exit), kills what is left and reaps every process before it returns.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from spirtd.clock import Clock, clock_timeout
from spirtd.errors import ConfigError, InvocationFailed, PoolClosed, ProtocolError, SpirtError, WorkerStartFailed
from spirtd.workers import protocol
from spirtd.processes import describe_exit
from spirtd.tasks import TaskSet
from spirtd.workers.failures import AttemptFailure, FailureKind
from spirtd.workers.fleet import WorkerFleet
from spirtd.workers.config import PoolConfig, PoolMode
from spirtd.workers.process import EndKind, Worker, WorkerEnd
from spirtd.workers.worker_main import check_handler_spec

WORKER_MODULE = "spirtd.workers.worker_main"


class PoolPhase(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


@dataclass(frozen=True)
class InvocationTimings:
    queue_wait_s: float  # waiting for a free slot, all attempts together
    start_s: float  # successful attempt: waiting for its worker (cold: process start + handler import)
    run_s: float  # successful attempt: request sent to reply read (pipe round trip + handler)
    handler_s: float  # successful attempt: the handler's own time, measured in the worker
    total_s: float  # invoke() called to invoke() returned, retries included


@dataclass(frozen=True)
class InvocationResult:
    reply: dict[str, Any]
    attempts: int  # 1 when the first attempt succeeded
    pid: int  # the worker that answered
    pids: tuple[int | None, ...]  # the worker of each attempt, pid last (None: none could be started)
    failures: tuple[AttemptFailure, ...]  # the attempts before the successful one, in order
    timings: InvocationTimings


@dataclass(frozen=True)
class PoolStats:
    invocations: int  # invoke() calls that returned a reply
    failures: int  # invoke() calls that raised InvocationFailed
    attempts: int  # attempts made, all invocations together
    retries: int  # attempts after the first
    workers_started: int  # processes launched (ready or not)
    workers_stopped: int  # processes that exited when asked (stdin closed)
    workers_lost: Mapping[str, int]  # processes that ended otherwise, by EndKind value
    live_workers: int  # processes not yet reaped


@dataclass
class _Slot:
    """One unit of concurrency. In warm mode it holds a worker (or is getting
    a new one in the background); in cold mode it never does."""

    index: int
    worker: Worker | None = None
    replacing: asyncio.Task[None] | None = None


@dataclass
class _Success:
    reply: dict[str, Any]
    pid: int
    start_s: float
    run_s: float
    handler_s: float


@dataclass
class _Counts:
    invocations: int = 0
    failures: int = 0
    attempts: int = 0
    retries: int = 0


class WorkerPool:
    def __init__(
        self,
        config: PoolConfig,
        handler: str,
        *,
        clock: Clock,
        env: Mapping[str, str] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        """`handler` is "package.module:function", importable by the workers
        (they run in this process's working directory; put its location on
        PYTHONPATH in `env` otherwise). `env` is added to the workers'
        environment (on top of this process's, unless config.inherit_env is
        False)."""
        if not isinstance(config, PoolConfig):
            raise ConfigError(f"config must be a PoolConfig, not {type(config).__name__}")
        check_handler_spec(handler)
        self._config = config
        self._handler = handler
        self._clock = clock
        self._log = logger if logger is not None else logging.getLogger("spirtd.workers.pool")
        argv = [config.python or sys.executable, "-m", WORKER_MODULE, handler, "--parent-pid", str(os.getpid())]
        if config.data_limit_mb is not None:
            argv += ["--data-limit-mb", str(config.data_limit_mb)]
        worker_env = dict(os.environ) if config.inherit_env else {}
        worker_env.update(env or {})
        # Spawns run nothing once the pool is closing: aclose then stops and reaps
        # every process itself.
        self._tasks = TaskSet()
        self._fleet = WorkerFleet(
            config, argv, worker_env, handler=handler, clock=clock, log=self._log, spawn=self._tasks.spawn
        )  # fmt: skip
        self._phase = PoolPhase.NEW
        self._group: asyncio.TaskGroup | None = None
        self._slots: asyncio.Queue[_Slot] = asyncio.Queue()
        self._all_slots = [_Slot(i) for i in range(config.concurrency)]
        self._seq = itertools.count(1)
        self._counts = _Counts()

    # -- lifecycle -----------------------------------------------------------
    @property
    def phase(self) -> PoolPhase:
        return self._phase

    async def __aenter__(self) -> WorkerPool:
        """Warm mode: starts every worker and waits until all are ready;
        raises WorkerStartFailed (and leaves no process) if one is not."""
        if self._phase is not PoolPhase.NEW:
            raise PoolClosed(f"a worker pool runs once; this one is {self._phase.value}")
        group = asyncio.TaskGroup()
        await group.__aenter__()
        self._group, self._phase = group, PoolPhase.RUNNING
        self._tasks.open(group)
        try:
            if self._config.mode is PoolMode.WARM:
                await self._fill_all()
            if self._config.memory_limit_mb is not None:
                self._tasks.spawn(self._fleet.watch_memory(self._config.memory_limit_mb))
        except BaseException:
            await self.aclose()
            raise
        for slot in self._all_slots:
            self._slots.put_nowait(slot)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancels the invocations in flight (they raise PoolClosed), drains
        idle workers, kills the rest and reaps every process. Idempotent."""
        if self._phase is PoolPhase.CLOSED:
            return
        self._phase = PoolPhase.CLOSED
        group, self._group = self._group, None
        try:
            self._tasks.close()  # an invocation cancelled mid-call kills its worker
            if group is not None:
                await group.__aexit__(None, None, None)
        finally:
            await self._fleet.close()

    # -- the user's API ------------------------------------------------------
    async def invoke(self, request: dict[str, Any]) -> InvocationResult:
        """Runs `request` on a worker, retrying as configured. Raises
        InvocationFailed when every attempt failed, PoolClosed when the pool
        is not running or closes meanwhile, ConfigError when the request is
        not a JSON object."""
        if self._phase is not PoolPhase.RUNNING or self._group is None:
            raise PoolClosed(f"the worker pool is {self._phase.value}; use it inside `async with`")
        seq = next(self._seq)
        what = describe_request(request, seq)
        if not isinstance(request, dict):
            raise ConfigError(f"a request is a dict, not {type(request).__name__}")
        try:
            line = protocol.encode(protocol.Invoke(seq=seq, request=request))
        except ProtocolError as exc:
            raise ConfigError(f"{what} cannot be sent to a worker: {exc}") from None
        task = self._tasks.spawn(self._invoke(seq, line, what, request.get("id")))
        if task is None:
            raise PoolClosed(f"the worker pool is {self._phase.value}")
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task.cancelled():
            raise PoolClosed(f"the worker pool closed while {what} waited or ran")
        outcome = task.result()
        if isinstance(outcome, SpirtError):
            raise outcome
        return outcome

    def stats(self) -> PoolStats:
        c, fleet = self._counts, self._fleet
        return PoolStats(
            invocations=c.invocations, failures=c.failures, attempts=c.attempts, retries=c.retries,
            workers_started=fleet.started, workers_stopped=fleet.stopped, workers_lost=dict(fleet.lost),
            live_workers=len(fleet),
        )  # fmt: skip

    def worker_pids(self) -> list[int]:
        """Pids of the workers ready to serve (warm mode), by slot."""
        return [s.worker.pid for s in self._all_slots if s.worker is not None and s.worker.usable]

    # -- invocations ---------------------------------------------------------
    async def _invoke(self, seq: int, line: bytes, what: str, request_id: Any) -> InvocationResult | SpirtError:
        cfg, begin = self._config, self._clock.monotonic()
        failures: list[AttemptFailure] = []
        queue_wait = 0.0
        for attempt in range(1, cfg.max_attempts + 1):
            mark = self._clock.monotonic()
            slot = await self._slots.get()
            queue_wait += self._clock.monotonic() - mark
            self._counts.attempts += 1
            self._counts.retries += attempt > 1
            try:
                outcome = await self._attempt(slot, attempt, seq, line)
            finally:
                self._slots.put_nowait(slot)
            if isinstance(outcome, _Success):
                self._counts.invocations += 1
                timings = InvocationTimings(
                    queue_wait_s=queue_wait, start_s=outcome.start_s, run_s=outcome.run_s,
                    handler_s=outcome.handler_s, total_s=self._clock.monotonic() - begin,
                )  # fmt: skip
                pids = tuple(f.pid for f in failures) + (outcome.pid,)
                return InvocationResult(outcome.reply, attempt, outcome.pid, pids, tuple(failures), timings)
            failures.append(outcome)
            retry = attempt < cfg.max_attempts and (
                outcome.kind is not FailureKind.HANDLER_ERROR or cfg.retry_handler_errors
            )
            if retry:
                self._log.warning(
                    "%s; retrying %s (attempt %d of %d)", outcome.reason, what, attempt + 1, cfg.max_attempts
                )
            else:
                self._log.warning("%s; %s failed after %d attempt(s)", outcome.reason, what, attempt)
                break
        self._counts.failures += 1
        return InvocationFailed(request_id, failures, what)

    async def _attempt(self, slot: _Slot, attempt: int, seq: int, line: bytes) -> _Success | AttemptFailure:
        begin = self._clock.monotonic()

        def failed(kind: FailureKind, pid: int | None, reason: str) -> AttemptFailure:
            return AttemptFailure(attempt, kind, pid, reason, self._clock.monotonic() - begin)

        try:
            worker, start_s = await self._worker_for(slot)
        except WorkerStartFailed as exc:
            return failed(FailureKind.START_FAILED, None, f"no worker could be started: {exc}")
        sent = self._clock.monotonic()
        timeout_s = self._config.invocation_timeout_s
        try:
            async with clock_timeout(self._clock, timeout_s) as scope:
                reply = await worker.call(seq, line)
                if reply is None:  # its pipe ended: it died; its exit status comes at once
                    code = await worker.wait()
        except TimeoutError:
            if not scope.expired():
                raise
            end = WorkerEnd(EndKind.TIMED_OUT, f"worker {worker.pid} timed out after {timeout_s:g} s: killed")
            self._lose(slot, worker, end)
            return failed(end.failure_kind, worker.pid, end.reason)
        except ProtocolError as exc:
            end = WorkerEnd(EndKind.PROTOCOL_ERROR, f"worker {worker.pid} broke the protocol ({exc}): killed")
            self._lose(slot, worker, end)
            return failed(end.failure_kind, worker.pid, end.reason)
        except BaseException:  # cancelled mid-call: what the worker does next is unknown
            reason = f"worker {worker.pid}: its invocation was cancelled: killed"
            self._lose(slot, worker, WorkerEnd(EndKind.CANCELLED, reason))
            raise
        run_s = self._clock.monotonic() - sent
        if reply is None:
            end = worker.end or WorkerEnd(EndKind.CRASHED, f"worker {worker.pid} crashed: it {describe_exit(code)}")
            self._lose(slot, worker, end)
            return failed(end.failure_kind, worker.pid, end.reason)
        if not reply.ok or reply.reply is None:
            if reply.error_type == "MemoryError":
                end = WorkerEnd(EndKind.OVER_MEMORY, (
                    f"worker {worker.pid} ran out of memory (the handler raised MemoryError at the "
                    f"RLIMIT_DATA backstop of {self._config.data_limit_mb} MB): killed"
                ))  # fmt: skip
                self._lose(slot, worker, end)
                return failed(end.failure_kind, worker.pid, end.reason)
            self._log.debug("worker %d: handler traceback:\n%s", worker.pid, reply.traceback)
            self._done_with(worker)
            reason = f"worker {worker.pid}: the handler raised {reply.error_type}: {reply.error}"
            return failed(FailureKind.HANDLER_ERROR, worker.pid, reason)
        self._done_with(worker)
        return _Success(reply.reply, worker.pid, start_s, run_s, reply.run_s)

    async def _worker_for(self, slot: _Slot) -> tuple[Worker, float]:
        """A ready worker for one attempt on this slot, and how long getting
        it took. Raises WorkerStartFailed."""
        if self._config.mode is PoolMode.COLD:
            return await self._fleet.start()
        mark = self._clock.monotonic()
        idle = slot.worker
        if idle is not None and not idle.usable:  # died, or was condemned, while idle
            code = idle.returncode
            died = f"worker {idle.pid} died while idle: it {describe_exit(code)}" if code is not None else ""
            end = idle.end or WorkerEnd(EndKind.CRASHED, died)
            self._log.warning("%s; starting another", end.reason)
            self._lose(slot, idle, end)
        if slot.replacing is not None and not slot.replacing.done():
            await asyncio.wait([slot.replacing])  # bounded by start_timeout_s; not cancelled with us
        if slot.worker is not None and slot.worker.usable:
            return slot.worker, self._clock.monotonic() - mark
        # No replacement came (it failed to start): one more try, here.
        worker, _ = await self._fleet.start()
        slot.worker = worker
        return worker, self._clock.monotonic() - mark

    def _done_with(self, worker: Worker) -> None:
        """After an attempt that left the worker healthy: warm workers stay,
        cold ones are stopped in the background."""
        if self._config.mode is PoolMode.COLD:
            self._tasks.spawn(self._fleet.stop(worker))

    # -- warm workers --------------------------------------------------------
    async def _fill_all(self) -> None:
        async def fill(slot: _Slot) -> None:
            slot.worker, _ = await self._fleet.start()

        try:
            async with asyncio.TaskGroup() as starting:
                for slot in self._all_slots:
                    starting.create_task(fill(slot))
        except BaseExceptionGroup as group:
            failed = group.subgroup(WorkerStartFailed)
            if failed is None or failed.exceptions != group.exceptions:
                raise
            first = failed.exceptions[0]
            raise WorkerStartFailed(f"the worker pool could not start: {first}") from None

    async def _replace(self, slot: _Slot) -> None:
        try:
            slot.worker, _ = await self._fleet.start()
        except WorkerStartFailed as exc:
            self._log.warning("could not replace a worker (the next invocation on it will try again): %s", exc)

    def _lose(self, slot: _Slot, worker: Worker, end: WorkerEnd) -> None:
        """Kills a worker that failed (if it still runs) and, in warm mode,
        starts its replacement in the background."""
        self._fleet.kill(worker, end)
        if self._config.mode is PoolMode.WARM:
            slot.worker = None
            slot.replacing = self._tasks.spawn(self._replace(slot))


def describe_request(request: Any, seq: int) -> str:
    """How logs and errors name a request: by its "id" when it has one."""
    if isinstance(request, dict) and request.get("id") is not None:
        return f"request {request['id']}"
    return f"invocation #{seq}"
