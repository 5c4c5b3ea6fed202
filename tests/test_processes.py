"""Helpers for child processes: how an exit reads, and dying with the parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from spirtd.processes import describe_exit

# Bounds of the waits below.
WAIT_S = 10.0
POLL_S = 0.02


@pytest.mark.parametrize(
    "returncode, words",
    [
        (0, "exited with code 0"),
        (3, "exited with code 3"),
        (-signal.SIGKILL, "was killed by signal SIGKILL (9)"),
        (-200, "was killed by signal 200"),
    ],
)
def test_processes_describe_exit(returncode, words):
    assert describe_exit(returncode) == words


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT_S, check=True)
    return done.stdout.strip()


def test_processes_die_with_parent_says_whether_the_parent_lives():
    code = ("import os, signal\nfrom spirtd.processes import die_with_parent\n"
            "print(die_with_parent(signal.SIGTERM, os.getppid())(), die_with_parent(signal.SIGTERM, 1)())")  # fmt: skip
    assert run_python(code) == "True False"


def is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_processes_child_dies_with_its_parent():
    """A parent starts `sleep` armed with die_with_parent, then exits: the
    kernel kills the sleep."""
    code = (
        "import os, signal, subprocess\nfrom spirtd.processes import die_with_parent\n"
        "arm = die_with_parent(signal.SIGKILL, os.getpid())\n"
        "child = subprocess.Popen(['sleep', '60'], preexec_fn=lambda: arm() or os._exit(1))\n"
        "print(child.pid)\n"
    )
    pid = int(run_python(code))
    deadline = time.monotonic() + WAIT_S
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if is_running(pid):
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the child outlived its parent")
