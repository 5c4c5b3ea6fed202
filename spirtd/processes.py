"""Helpers for the child processes spirtd runs (redis-server, workers)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def describe_exit(returncode: int) -> str:
    """'exited with code 3', 'was killed by signal SIGKILL (9)', from a returncode."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    number = -returncode
    try:
        return f"was killed by signal {signal.Signals(number).name} ({number})"
    except ValueError:
        return f"was killed by signal {number}"


def die_with_parent(signum: signal.Signals, parent_pid: int) -> Callable[[], bool] | None:
    """A function asking Linux to send this process signum when parent_pid
    dies (PR_SET_PDEATHSIG); it returns False if the parent is gone already
    (it died before the request took effect). None where Linux's prctl is
    missing. Everything is looked up here, so that the function can run
    between fork and exec (a preexec_fn) without imports or allocations."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    number = int(signum)

    def arm() -> bool:
        prctl(_PR_SET_PDEATHSIG, number, 0, 0, 0)
        return os.getppid() == parent_pid

    return arm
