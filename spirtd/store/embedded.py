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
drive it with FakeClock). The start and stop deadlines are asyncio.timeout
scopes, and the PING pacing inside them asyncio.sleep: they bound the real
I/O of a real process, so they run on the event loop's own time.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import re
import signal
from pathlib import Path
from typing import Any, Callable

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from spirtd.clock import Clock, SystemClock
from spirtd.errors import StoreUnavailable
from spirtd.processes import describe_exit, die_with_parent
from spirtd.store.server import PreparedServer, StoreServerConfig, prepare, remove_temporary_files

# How much of redis.log an error message or a warning quotes.
LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 64 * 1024
# A redis log line of level warning: "pid:role date time # message".
_WARNING_LINE = re.compile(r"^\d+:[A-Z] .*? # (.*)$")

_logger = logging.getLogger(__name__)


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec function: the child gets SIGTERM when this process dies,
    and exits at once if it has died already."""
    arm = die_with_parent(signal.SIGTERM, os.getpid())
    if arm is None:
        return None

    def preexec() -> None:
        if not arm():
            os._exit(1)

    return preexec


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


def read_log(path: Path, start: int = 0) -> list[str]:
    """The lines of a log from byte `start` on, at most LOG_TAIL_BYTES of its end."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(start, size - LOG_TAIL_BYTES))
            data = f.read()
    except OSError:
        return []
    return [line for line in data.decode(errors="replace").splitlines() if line.strip()]


def format_tail(path: Path, lines: list[str]) -> str:
    if not lines:
        return f"{path} has nothing to show"
    shown = "\n".join("    " + line for line in lines[-LOG_TAIL_LINES:])
    return f"the last lines of {path}:\n{shown}"


def main_complaint(lines: list[str]) -> str | None:
    """The line a person wants first: the last warning redis logged, else the
    last line (errors in redis.conf go to stderr, unformatted)."""
    for line in reversed(lines):
        match = _WARNING_LINE.match(line)
        if match:
            return match[1]
    return lines[-1].strip() if lines else None


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


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
        self._proc: asyncio.subprocess.Process | None = None
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

    async def _spawn(self, prepared: PreparedServer) -> asyncio.subprocess.Process:
        # stdout/stderr go to redis.log too: redis reports errors in redis.conf
        # there before it opens its logfile. A session of its own keeps a
        # terminal's Ctrl-C away from it: stopping it is aclose's job. If
        # spirtd itself dies (SIGKILL), the kernel sends redis-server SIGTERM
        # (it saves, then exits), so no orphan keeps the data dir.
        try:
            log_fd = os.open(prepared.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open the store's log {prepared.log_path}: {exc}") from exc
        try:
            return await asyncio.create_subprocess_exec(
                *prepared.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        except OSError as exc:
            raise StoreUnavailable(f"cannot run {prepared.argv[0]}: {exc}") from exc
        finally:
            os.close(log_fd)

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
        """Starts redis-server and returns once it answers PING; else kills
        it and raises StoreUnavailable quoting its log."""
        prepared = self._prepared
        if prepared is None:
            raise RuntimeError("EmbeddedStore._start before prepare")
        log_start = _file_size(prepared.log_path)
        self._proc = proc = await self._spawn(prepared)
        probe = self._probe()
        last_error = "none"
        try:
            async with asyncio.timeout(self._cfg.start_timeout_s):
                while proc.returncode is None:
                    try:
                        await probe.ping()
                        return
                    except redis.RedisError as exc:
                        last_error = f"{type(exc).__name__}: {exc}"
                    await asyncio.sleep(self._cfg.start_poll_s)
            why = describe_exit(proc.returncode)
        except TimeoutError:
            why = (
                f"did not answer PING within {self._cfg.start_timeout_s}s "
                f"(last error: {last_error})"
            )
        finally:
            await probe.aclose()
        await self._kill(proc)
        lines = read_log(prepared.log_path, log_start)
        complaint = main_complaint(lines)
        raise StoreUnavailable(
            f"redis-server {why} at start"
            + (f": {complaint}" if complaint else "")
            + f"\n{format_tail(prepared.log_path, lines)}"
        )

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()
        if self._proc is proc:
            self._proc = None

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
                proc.pid, describe_exit(returncode), hint, backoff, cfg.data_dir,
                format_tail(cfg.log_path, read_log(cfg.log_path)),
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
            if proc.returncode is None:
                try:
                    async with asyncio.timeout(self._cfg.stop_timeout_s):
                        await self._request_shutdown(proc)
                        await proc.wait()
                except TimeoutError:
                    self._log.warning(
                        "the store's redis-server (pid %d) did not stop within %.1fs ([store] stop_timeout_s); "
                        "killing it: %s", proc.pid, self._cfg.stop_timeout_s,
                        "its snapshot is not saved, writes since the last one are lost"
                        if self._cfg.persistence == "rdb" else "its AOF holds what it acknowledged",
                    )
        finally:
            await self._kill(proc)
        if proc.returncode not in (0, -signal.SIGKILL, -signal.SIGTERM):
            self._log.warning(
                "the store's redis-server (pid %d) %s as it stopped; %s",
                proc.pid, describe_exit(proc.returncode),
                format_tail(self._cfg.log_path, read_log(self._cfg.log_path)),
            )

    async def _request_shutdown(self, proc: asyncio.subprocess.Process) -> None:
        """SHUTDOWN SAVE with rdb; NOSAVE otherwise: with an AOF, Redis
        flushes and fsyncs the log at any shutdown, so a snapshot of a big
        store would only cost time. SIGTERM if the server does not answer
        yet (still starting, or loading its data)."""
        mode = "SAVE" if self._cfg.persistence == "rdb" else "NOSAVE"
        probe = self._probe()
        try:
            try:
                await probe.ping()
            except redis.RedisError as exc:
                self._log.debug("store not answering (%s); stopping it with SIGTERM", exc)
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                return
            try:
                await probe.execute_command("SHUTDOWN", mode)
            except redis.ConnectionError:
                return  # expected: the server closes the connection as it exits
            except redis.ResponseError as exc:
                self._log.warning(
                    "the store's redis-server refused SHUTDOWN %s (%s); killing it, so writes "
                    "since its last save are lost; %s",
                    mode, exc, format_tail(self._cfg.log_path, read_log(self._cfg.log_path)),
                )
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        finally:
            await probe.aclose()
