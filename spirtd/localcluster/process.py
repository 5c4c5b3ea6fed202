"""One `spirtd run` of a local cluster, as a child process.

It runs in a session of its own (a Ctrl-C at the terminal reaches the
cluster's controller only, which stops the peers in order), gets SIGTERM
if the process that started it dies (PR_SET_PDEATHSIG: no orphans even
when the controller is SIGKILLed), and logs JSON lines to its own file,
where its first "serving on" line gives the address it listens on (peers
listen on port 0, so they never collide).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from spirtd.clock import Clock
from spirtd.errors import LocalClusterError
from spirtd.processes import describe_exit, die_with_parent

# The spirtd command, whatever PATH holds: this interpreter's spirtd.
SPIRTD = (sys.executable, "-m", "spirtd.cli")
POLL_S = 0.05
LOG_TAIL_LINES = 20
_SERVING = "serving on"


def _preexec(parent_pid: int) -> Callable[[], None] | None:
    """SIGTERM when the starting process dies; exit at once if it has."""
    arm = die_with_parent(signal.SIGTERM, parent_pid)
    if arm is None:
        return None

    def preexec() -> None:
        if not arm():
            os._exit(1)

    return preexec


@dataclass
class PeerProcess:
    """A peer's id, files and command line; `start()` runs it."""

    id: str
    data_dir: Path
    log_path: Path
    argv: list[str]
    address: str = ""
    proc: subprocess.Popen | None = field(default=None, repr=False)
    _old_lines: int = field(default=0, repr=False)
    """Lines its log had before this start (a folder used again, a restart)."""

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._old_lines = self.log_length()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_preexec(os.getpid()),
            )  # fmt: skip

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def served_address(self) -> str | None:
        """The address of this start's "serving on" line, once logged."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[self._old_lines:]
        except FileNotFoundError:
            return None
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("address") and _SERVING in str(entry.get("msg", "")):
                return str(entry["address"])
        return None

    def log_length(self) -> int:
        try:
            return len(self.log_path.read_text(errors="replace").splitlines())
        except FileNotFoundError:
            return 0

    def wait_serving(self, clock: Clock, timeout_s: float) -> str:
        """Blocks until the peer logs its address; LocalClusterError if it
        exits first or takes longer than timeout_s."""
        deadline = clock.monotonic() + timeout_s
        pause = threading.Event()
        while True:
            address = self.served_address()
            if address is not None:
                self.address = address
                return address
            if not self.alive:
                code = self.proc.returncode if self.proc is not None else None
                how = describe_exit(code) if code is not None else "was never started"
                raise LocalClusterError(f"peer {self.id} {how} before serving; the end of {self.log_path}:\n"
                                        f"{self.log_tail()}")  # fmt: skip
            if clock.monotonic() > deadline:
                raise LocalClusterError(f"peer {self.id} did not start serving within {timeout_s} s; the end of "
                                        f"{self.log_path}:\n{self.log_tail()}")  # fmt: skip
            pause.wait(POLL_S)

    def signal(self, sig: int) -> None:
        if self.alive:
            os.kill(self.proc.pid, sig)  # type: ignore[union-attr]

    def finish(self, timeout_s: float) -> str | None:
        """Waits for the peer to exit (after a SIGTERM), SIGKILLs it after
        timeout_s, then kills whatever is left in its session; returns a
        problem to report, or None."""
        if self.proc is None:
            return None
        problem = None
        try:
            code = self.proc.wait(timeout_s)
            if code != 0:
                problem = f"peer {self.id} {describe_exit(code)} when asked to stop; see {self.log_path}"
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            problem = f"peer {self.id} did not stop within {timeout_s} s of SIGTERM: killed it"
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything it left in its session
        except (ProcessLookupError, PermissionError):
            pass
        return problem
