"""One worker process, seen from the pool: launch it, wait until it is ready,
send it one request at a time, close or kill it. No timeouts and no policy
here: the pool applies its time limits as scopes around these calls and
decides what a failure means.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence

from spirtd.errors import ProtocolError, WorkerStartFailed
from spirtd.workers import protocol
from spirtd.processes import describe_exit
from spirtd.workers.failures import FailureKind


class Worker:
    """A running `python -m spirtd.workers.worker_main HANDLER`. Its stderr is
    the pool's stderr (the handler's prints and tracebacks go there)."""

    def __init__(self, proc: asyncio.subprocess.Process, max_message_bytes: int) -> None:
        self._proc = proc
        self._max_message_bytes = max_message_bytes
        self.pid: int = proc.pid
        self.verdict: tuple[FailureKind, str] | None = None
        """Set by the pool when it decides to kill the worker, with the reason
        in words, so that whoever then sees its pipe break reports why."""
        self.ended = False  # the pool has counted this worker as stopped or lost
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
    def usable(self) -> bool:
        """Alive as far as we know, and not condemned."""
        return self.verdict is None and self._proc.returncode is None

    async def wait_ready(self) -> protocol.Ready:
        """Waits for the ready line. Raises WorkerStartFailed when the handler
        could not be loaded or the process died first, ProtocolError when it
        wrote something else."""
        message = await self._read()
        if message is None:
            code = await self._proc.wait()
            why = f" ({self.verdict[1]})" if self.verdict else ""
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
