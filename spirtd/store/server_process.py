"""One run of redis-server, seen from its supervisor (spirtd.store.embedded):
start it, wait until it answers, ask it to shut down, kill it, and explain
its failures from redis.log. No restarts and no state machine here: those
are the supervisor's.

The start and stop deadlines are asyncio.timeout scopes, and the PING
pacing inside them asyncio.sleep: they bound the real I/O of a real
process, so they run on the event loop's own time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import redis
import redis.asyncio as aioredis

from spirtd.errors import StoreUnavailable
from spirtd.processes import describe_exit, die_with_parent
from spirtd.store.server import PreparedServer

# How much of redis.log an error message or a warning quotes.
LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 64 * 1024
# A redis log line of level warning: "pid:role date time # message".
_WARNING_LINE = re.compile(r"^\d+:[A-Z] .*? # (.*)$")
# Exits of a server that was asked to stop, or killed for not stopping in time.
_EXPECTED_STOPS = (0, -signal.SIGKILL, -signal.SIGTERM)

Probe = Callable[[], aioredis.Redis]


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


class ServerProcess:
    """A redis-server process started from a PreparedServer. `probe` makes a
    client for our own PING and SHUTDOWN (the caller closes nothing: each
    use closes its client)."""

    def __init__(self, proc: asyncio.subprocess.Process, prepared: PreparedServer, probe: Probe,
                 log: logging.Logger, log_start: int) -> None:  # fmt: skip
        self._proc = proc
        self._prepared = prepared
        self._probe = probe
        self._log = log
        self._log_start = log_start  # where this run's lines of redis.log begin

    @classmethod
    async def spawn(cls, prepared: PreparedServer, probe: Probe, log: logging.Logger) -> ServerProcess:
        """Starts redis-server (it does not answer yet: see until_answering).
        Raises StoreUnavailable when it cannot be run."""
        # stdout/stderr go to redis.log too: redis reports errors in redis.conf
        # there before it opens its logfile. A session of its own keeps a
        # terminal's Ctrl-C away from it: stopping it is the supervisor's job.
        # If spirtd itself dies (SIGKILL), the kernel sends redis-server
        # SIGTERM (it saves, then exits), so no orphan keeps the data dir.
        log_start = _file_size(prepared.log_path)
        try:
            log_fd = os.open(prepared.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open the store's log {prepared.log_path}: {exc}") from exc
        try:
            proc = await asyncio.create_subprocess_exec(
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
        return cls(proc, prepared, probe, log, log_start)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def wait(self) -> int:
        """Its exit status once it has exited (negative: killed by a signal)."""
        return await self._proc.wait()

    async def until_answering(self, timeout_s: float, poll_s: float) -> None:
        """Returns once the server answers PING; else kills it and raises
        StoreUnavailable quoting its log."""
        proc, probe = self._proc, self._probe()
        last_error = "none"
        try:
            async with asyncio.timeout(timeout_s):
                while proc.returncode is None:
                    try:
                        await probe.ping()
                        return
                    except redis.RedisError as exc:
                        last_error = f"{type(exc).__name__}: {exc}"
                    await asyncio.sleep(poll_s)
            why = describe_exit(proc.returncode)
        except TimeoutError:
            why = f"did not answer PING within {timeout_s}s (last error: {last_error})"
        finally:
            await probe.aclose()
        await self.kill()
        lines = read_log(self._prepared.log_path, self._log_start)
        complaint = main_complaint(lines)
        raise StoreUnavailable(
            f"redis-server {why} at start"
            + (f": {complaint}" if complaint else "")
            + f"\n{format_tail(self._prepared.log_path, lines)}"
        )

    async def kill(self) -> None:
        """SIGKILL, unless it has exited; returns once it is reaped."""
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        await self._proc.wait()

    async def stop(self, timeout_s: float, persistence: str) -> None:
        """Shuts the server down (see _request_shutdown), killing it after
        timeout_s; warns of an exit that was not a clean stop."""
        proc = self._proc
        try:
            if proc.returncode is None:
                try:
                    async with asyncio.timeout(timeout_s):
                        await self._request_shutdown(persistence)
                        await proc.wait()
                except TimeoutError:
                    self._log.warning(
                        "the store's redis-server (pid %d) did not stop within %.1fs ([store] stop_timeout_s); "
                        "killing it: %s", proc.pid, timeout_s,
                        "its snapshot is not saved, writes since the last one are lost"
                        if persistence == "rdb" else "its AOF holds what it acknowledged",
                    )  # fmt: skip
        finally:
            await self.kill()
        if proc.returncode not in _EXPECTED_STOPS:
            self._log.warning(
                "the store's redis-server (pid %d) %s as it stopped; %s",
                proc.pid, describe_exit(proc.returncode), self.log_tail(),
            )  # fmt: skip

    def log_tail(self) -> str:
        """The end of redis.log, for a warning."""
        return format_tail(self._prepared.log_path, read_log(self._prepared.log_path))

    async def _request_shutdown(self, persistence: str) -> None:
        """SHUTDOWN SAVE with rdb; NOSAVE otherwise: with an AOF, Redis
        flushes and fsyncs the log at any shutdown, so a snapshot of a big
        store would only cost time. SIGTERM if the server does not answer
        yet (still starting, or loading its data)."""
        mode = "SAVE" if persistence == "rdb" else "NOSAVE"
        probe = self._probe()
        try:
            try:
                await probe.ping()
            except redis.RedisError as exc:
                self._log.debug("store not answering (%s); stopping it with SIGTERM", exc)
                with contextlib.suppress(ProcessLookupError):
                    self._proc.terminate()
                return
            try:
                await probe.execute_command("SHUTDOWN", mode)
            except redis.ConnectionError:
                return  # expected: the server closes the connection as it exits
            except redis.ResponseError as exc:
                self._log.warning(
                    "the store's redis-server refused SHUTDOWN %s (%s); killing it, so writes "
                    "since its last save are lost; %s", mode, exc, self.log_tail(),
                )  # fmt: skip
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
        finally:
            await probe.aclose()
