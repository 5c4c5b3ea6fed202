"""Runs and supervises the node's colocated redis-server.

    async with EmbeddedStore(cfg) as store:
        client = store.client()        # a new redis.asyncio client; close it
        ...

One state, with its transitions checked in one place (_set_state):

    NEW ─► STARTING ─► RUNNING ◄─► RESTARTING
     │        │           │             │
     └────────┴───────────┴─────────────┴─► CLOSING ─► CLOSED

RUNNING: the server answers PING. RESTARTING: it exited on its own (a crash,
SIGKILL, the OOM killer); the supervisor waits a backoff on the injected
clock and starts it again on the same data dir, so that its data comes back
from the RDB snapshot or the AOF. wait_ready() blocks while it restarts.

Timers: the restart backoff is policy and runs on the injected Clock (tests
drive it with FakeClock). One run of the process (its start and stop
deadlines, SHUTDOWN, kill, what redis.log says of a failure) is
spirtd.store.server_process's.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import signal
from pathlib import Path
from typing import Any, Callable

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from spirtd.clock import Clock, SystemClock
from spirtd.errors import StoreUnavailable
from spirtd.processes import describe_exit
from spirtd.store.server import PreparedServer, StoreServerConfig, prepare, remove_temporary_files
from spirtd.store.server_process import ServerProcess

_logger = logging.getLogger(__name__)


class StoreState(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    CLOSING = "closing"
    CLOSED = "closed"


_TRANSITIONS: dict[StoreState, frozenset[StoreState]] = {
    StoreState.NEW: frozenset({StoreState.STARTING, StoreState.CLOSING}),
    StoreState.STARTING: frozenset({StoreState.RUNNING, StoreState.CLOSING}),
    StoreState.RUNNING: frozenset({StoreState.RESTARTING, StoreState.CLOSING}),
    StoreState.RESTARTING: frozenset({StoreState.RUNNING, StoreState.CLOSING}),
    StoreState.CLOSING: frozenset({StoreState.CLOSED}),
    StoreState.CLOSED: frozenset(),
}
_SETTLED = frozenset({StoreState.NEW, StoreState.RUNNING, StoreState.CLOSING, StoreState.CLOSED})


class EmbeddedStore:
    """The node's redis-server, started, watched and restarted; see the module doc.

    restarts counts the successful restarts after the server exited on its own.
    """

    def __init__(
        self,
        cfg: StoreServerConfig,
        *,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._cfg = cfg
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._log = logger if logger is not None else _logger
        self._state = StoreState.NEW
        self._waiters: list[asyncio.Future[None]] = []
        self._prepared: PreparedServer | None = None
        self._proc: ServerProcess | None = None
        self._restarts = 0
        self._tasks: asyncio.TaskGroup | None = None
        self._supervisor: asyncio.Task[None] | None = None

    # -- what callers see -------------------------------------------------

    @property
    def config(self) -> StoreServerConfig:
        return self._cfg

    @property
    def state(self) -> StoreState:
        return self._state

    @property
    def socket_path(self) -> Path:
        return self._cfg.socket_path

    @property
    def password(self) -> str:
        if self._prepared is None:
            raise StoreUnavailable("the store has not been started")
        return self._prepared.password

    @property
    def pid(self) -> int | None:
        """The pid of the current redis-server; None while none runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def restarts(self) -> int:
        return self._restarts

    def client(self, **kwargs: Any) -> aioredis.Redis:
        """A new client of the store; the caller closes it (aclose)."""
        kwargs.setdefault("unix_socket_path", str(self.socket_path))
        kwargs.setdefault("password", self.password)
        return aioredis.Redis(**kwargs)

    async def wait_ready(self) -> None:
        """Returns once the server answers (at once, unless it is restarting);
        StoreUnavailable if the store is not started or is closing."""
        await self._wait_until(lambda state: state in _SETTLED)
        if self._state is not StoreState.RUNNING:
            raise StoreUnavailable(f"the store is {self._state.value}")

    # -- lifecycle ----------------------------------------------------------

    async def __aenter__(self) -> EmbeddedStore:
        self._set_state(StoreState.STARTING)
        try:
            self._prepared = await asyncio.to_thread(prepare, self._cfg)
            await self._refuse_another_server()
            for path in remove_temporary_files(self._cfg):
                self._log.warning("removed %s, left by a save or rewrite that was cut short", path)
            await self._start()
            self._tasks = asyncio.TaskGroup()
            await self._tasks.__aenter__()
            self._supervisor = self._tasks.create_task(self._supervise(), name="store-supervisor")
            self._set_state(StoreState.RUNNING)
        except BaseException:
            await self.aclose()
            raise
        self._log.debug("store ready on %s (redis-server pid %s)", self.socket_path, self.pid)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stops supervising, then shuts the server down (flushing its AOF,
        or saving a snapshot with rdb), killing it after cfg.stop_timeout_s.
        Idempotent."""
        if self._state is StoreState.CLOSED:
            return
        if self._state is StoreState.CLOSING:
            await self._wait_until(lambda state: state is StoreState.CLOSED)
            return
        self._set_state(StoreState.CLOSING)
        try:
            await self._stop_supervising()
        finally:
            try:
                await self._stop_process()
            finally:
                self._set_state(StoreState.CLOSED)

    # -- state ----------------------------------------------------------------

    def _set_state(self, new: StoreState) -> None:
        if new not in _TRANSITIONS[self._state]:
            raise RuntimeError(f"EmbeddedStore cannot go from {self._state.value} to {new.value}")
        self._state = new
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def _wait_until(self, done: Callable[[StoreState], bool]) -> None:
        while not done(self._state):
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            await fut

    # -- the process ----------------------------------------------------------

    def _probe(self) -> aioredis.Redis:
        """A client for our own PING and SHUTDOWN: no retries and no socket
        timeout, since the deadlines are the caller's asyncio.timeout scopes."""
        return self.client(retry=Retry(NoBackoff(), 0), socket_timeout=None)

    async def _refuse_another_server(self) -> None:
        """StoreUnavailable if a server already answers on our socket (one
        left behind by a spirtd that was SIGKILLed): two on one data dir
        would overwrite each other's files. A socket file nobody listens on
        (left by a crash) is fine: redis-server replaces it."""
        if not self.socket_path.exists():
            return
        probe = self._probe()
        try:
            async with asyncio.timeout(self._cfg.start_timeout_s):
                info = await probe.info("server")
            who = f"redis-server pid {info.get('process_id')}"
        except (redis.AuthenticationError, redis.BusyLoadingError, redis.ResponseError) as exc:
            who = f"a server that answers {exc}"
        except TimeoutError:
            who = "a server that accepts connections but does not answer"
        except (redis.ConnectionError, OSError):
            return
        finally:
            await probe.aclose()
        raise StoreUnavailable(
            f"{self.socket_path} is already served ({who}); stop that server "
            "or choose another data dir"
        )

    async def _start(self) -> None:
        """Starts redis-server and returns once it answers PING; else raises
        StoreUnavailable quoting its log (the process is gone then). While it
        starts, self._proc holds it, so that aclose stops it."""
        prepared = self._prepared
        if prepared is None:
            raise RuntimeError("EmbeddedStore._start before prepare")
        self._proc = proc = await ServerProcess.spawn(prepared, self._probe, self._log)
        try:
            await proc.until_answering(self._cfg.start_timeout_s, self._cfg.start_poll_s)
        except StoreUnavailable:
            self._proc = None
            raise

    async def _supervise(self) -> None:
        cfg = self._cfg
        backoff = cfg.restart_backoff_s
        while True:
            proc = self._proc
            if proc is None:
                raise RuntimeError("EmbeddedStore supervising no process")
            returncode = await proc.wait()
            self._proc = None
            if self._state is not StoreState.RUNNING:
                return
            self._set_state(StoreState.RESTARTING)
            hint = (
                " (an unexpected SIGKILL is often the kernel's OOM killer: see dmesg)"
                if returncode == -signal.SIGKILL
                else ""
            )
            self._log.warning(
                "the store's redis-server (pid %d) %s%s; restarting it in %.2fs from %s; %s",
                proc.pid, describe_exit(returncode), hint, backoff, cfg.data_dir, proc.log_tail(),
            )
            while True:
                await self._clock.sleep(backoff)
                backoff = min(backoff * 2, cfg.restart_backoff_max_s)
                try:
                    await self._start()
                    break
                except StoreUnavailable as exc:
                    self._log.warning("restarting the store failed; next try in %.2fs: %s", backoff, exc)
            backoff = cfg.restart_backoff_s
            self._restarts += 1
            self._set_state(StoreState.RUNNING)
            self._log.info("the store's redis-server is back (pid %s, restart %d)", self.pid, self._restarts)

    async def _stop_supervising(self) -> None:
        tasks, self._tasks = self._tasks, None
        if tasks is None:
            return
        if self._supervisor is not None:
            self._supervisor.cancel()
        await tasks.__aexit__(None, None, None)

    async def _stop_process(self) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            await proc.stop(self._cfg.stop_timeout_s, self._cfg.persistence)
        finally:
            self._proc = None
