"""One worker process, seen from the pool: launch it, wait until it is ready,
send it one request at a time, close or kill it. No timeouts and no policy
here: the pool applies its time limits as scopes around these calls and
decides what a failure means. How a worker ended is one value, WorkerEnd,
recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from spirtd.errors import ProtocolError, WorkerStartFailed
from spirtd.processes import describe_exit
from spirtd.workers import protocol
from spirtd.workers.failures import FailureKind


class EndKind(enum.Enum):
    """How a worker process ended, as the pool counts it (PoolStats: stopped,
    or lost by this value)."""

    STOPPED = "stopped"  # it exited with code 0 once its stdin closed
    CRASHED = "crashed"  # it died on its own, or exited non-zero when asked to stop
    TIMED_OUT = "timed_out"  # killed: no reply within invocation_timeout_s
    OVER_MEMORY = "over_memory"  # killed: over memory_limit_mb, or MemoryError at the RLIMIT_DATA backstop
    PROTOCOL_ERROR = "protocol_error"  # killed: it wrote something that is not a protocol message
    START_FAILED = "start_failed"  # killed: it was not ready within start_timeout_s, or could not be
    CANCELLED = "cancelled"  # killed: its invocation or its start was cancelled
    STOP_GRACE_EXPIRED = "stop_grace_expired"  # killed: it did not exit within stop_grace_s when asked


# What an attempt whose worker ended so reports. A worker killed for another
# reason (cancelled, too slow to stop) crashed, as far as an attempt can see.
_ATTEMPT_FAILURES = {
    EndKind.CRASHED: FailureKind.CRASHED,
    EndKind.TIMED_OUT: FailureKind.TIMED_OUT,
    EndKind.OVER_MEMORY: FailureKind.OVER_MEMORY,
    EndKind.PROTOCOL_ERROR: FailureKind.PROTOCOL_ERROR,
    EndKind.START_FAILED: FailureKind.START_FAILED,
}


@dataclass(frozen=True)
class WorkerEnd:
    kind: EndKind
    reason: str  # in words, starting with the worker ("worker 123 timed out after 2.0 s: killed")

    @property
    def failure_kind(self) -> FailureKind:
        return _ATTEMPT_FAILURES.get(self.kind, FailureKind.CRASHED)


def exit_end(pid: int, returncode: int) -> WorkerEnd:
    """The end of a worker that exited when asked to stop."""
    if returncode == 0:
        return WorkerEnd(EndKind.STOPPED, f"worker {pid} exited when asked")
    return WorkerEnd(EndKind.CRASHED, f"worker {pid} {describe_exit(returncode)} when asked to stop")


class Worker:
    """A running `python -m spirtd.workers.worker_main HANDLER`. Its stderr is
    the pool's stderr (the handler's prints and tracebacks go there)."""

    def __init__(self, proc: asyncio.subprocess.Process, max_message_bytes: int) -> None:
        self._proc = proc
        self._max_message_bytes = max_message_bytes
        self.pid: int = proc.pid
        self._end: WorkerEnd | None = None
        self.calls = 0

    @classmethod
    async def launch(cls, argv: Sequence[str], env: Mapping[str, str], max_message_bytes: int) -> Worker:
        """Starts the process (it is not ready yet: see wait_ready)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=dict(env),
                # readline needs room for the longest line and its newline
                limit=max_message_bytes + 1,
            )
        except OSError as exc:
            raise WorkerStartFailed(f"cannot start a worker with {argv[0]}: {exc}") from None
        return cls(proc, max_message_bytes)

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    @property
    def end(self) -> WorkerEnd | None:
        """How it ended, as the pool decided (killing it) or saw; None while
        it may serve. Whoever then sees its pipe break reports this reason."""
        return self._end

    def record_end(self, end: WorkerEnd) -> bool:
        """Records how it ended; the first end wins. True when this one did
        (the pool then counts it, once)."""
        if self._end is not None:
            return False
        self._end = end
        return True

    @property
    def usable(self) -> bool:
        """Alive as far as we know, and not ended."""
        return self._end is None and self._proc.returncode is None

    async def wait_ready(self) -> protocol.Ready:
        """Waits for the ready line. Raises WorkerStartFailed when the handler
        could not be loaded or the process died first, ProtocolError when it
        wrote something else."""
        message = await self._read()
        if message is None:
            code = await self._proc.wait()
            why = f" ({self._end.reason})" if self._end else ""
            raise WorkerStartFailed(f"worker {self.pid} {describe_exit(code)} before it was ready{why}")
        if isinstance(message, protocol.Fatal):
            raise WorkerStartFailed(f"worker {self.pid}: {message.error}")
        if not isinstance(message, protocol.Ready):
            raise ProtocolError(f"worker {self.pid} sent {type(message).__name__} before it was ready")
        return message

    async def call(self, seq: int, line: bytes) -> protocol.Reply | None:
        """Sends one encoded Invoke (with this seq) and returns the worker's
        reply, or None when its pipe ended first (it died: see wait()).
        Raises ProtocolError for a line that is not the reply to seq."""
        self.calls += 1
        stdin = self._proc.stdin
        if stdin is None or stdin.is_closing():
            return None
        try:
            stdin.write(line)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            return None
        message = await self._read()
        if message is None:
            return None
        if not isinstance(message, protocol.Reply):
            raise ProtocolError(f"worker {self.pid} sent {type(message).__name__} instead of a reply")
        if message.seq != seq:
            raise ProtocolError(f"worker {self.pid} answered request {message.seq}, not {seq}")
        return message

    def close_input(self) -> None:
        """Closes the worker's stdin: it exits once its current call is done."""
        stdin = self._proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()

    def kill(self) -> None:
        """SIGKILL, unless it has already exited (and been reaped)."""
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    async def wait(self) -> int:
        """Its exit status once it has exited (negative: killed by a signal)."""
        return await self._proc.wait()

    async def _read(self) -> protocol.Message | None:
        stdout = self._proc.stdout
        if stdout is None:
            return None
        try:
            line = await stdout.readline()
        except ValueError:  # asyncio's limit: the line is longer than max_message_bytes
            raise ProtocolError(f"worker {self.pid} wrote a line longer than {self._max_message_bytes} bytes") from None
        if not line.endswith(b"\n"):
            return None  # end of the pipe, or a line cut short by the worker's death
        return protocol.decode(line)
