"""Processes a test started and must not leave behind, found by a path on
their command line (a local cluster's folder names its peers and their
stores) or by their session (a peer's workers run in the peer's)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path


def _live_processes() -> Iterator[tuple[int, bytes, int]]:
    """(pid, command line, session id) of every live process but this one."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            # after the command's name in parentheses: state ppid pgrp session ...
            state, _, _, session = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:4]
        except OSError:
            continue
        if state != "Z":
            yield int(entry), cmdline, int(session)


def _readable(cmdline: bytes) -> str:
    return cmdline.replace(b"\0", b" ").decode(errors="replace")


def processes_naming(path: Path) -> dict[int, str]:
    """Live processes whose command line contains path: pid -> command line."""
    needle = str(path).encode()
    return {pid: _readable(cmdline) for pid, cmdline, _ in _live_processes() if needle in cmdline}


def processes_in_sessions(sessions: Iterable[int]) -> dict[int, str]:
    """Live processes in any of these sessions: pid -> command line."""
    wanted = set(sessions)
    return {pid: _readable(cmdline) for pid, cmdline, session in _live_processes() if session in wanted}


def kill(found: dict[int, str]) -> dict[int, str]:
    """SIGKILL to each of found (gone already: fine); returns found."""
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return found


def kill_leftovers(path: Path) -> dict[int, str]:
    return kill(processes_naming(path))
