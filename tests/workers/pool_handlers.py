"""Real handlers that the worker processes of tests/jobs/test_pool.py import.

Handlers that misbehave once ("_once") take a "marker" path in the request:
the first attempt creates the file and misbehaves; a retry finds it and
behaves. Handlers that report when they started write their pid to the
"started" path (tests wait for it, to act while the invocation runs).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

_PAGE = 4096
_MB = 1 << 20
FOREVER_S = 3600.0


def _first_time(request: dict[str, Any]) -> bool:
    """True for the first attempt (it creates the marker), False after."""
    try:
        fd = os.open(request["marker"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _report_start(request: dict[str, Any]) -> None:
    path = request.get("started")
    if path:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(str(os.getpid()))
        os.replace(tmp, path)


def echo(request: dict[str, Any]) -> dict[str, Any]:
    return {"echo": request, "pid": os.getpid()}


def sleep_then_echo(request: dict[str, Any]) -> dict[str, Any]:
    _report_start(request)
    began = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes
    time.sleep(request["sleep_s"])
    return {"echo": request, "pid": os.getpid(), "began": began, "ended": time.monotonic()}


def slow_once(request: dict[str, Any]) -> dict[str, Any]:
    """First attempt: says it started, then takes (nearly) forever."""
    if _first_time(request):
        _report_start(request)
        time.sleep(FOREVER_S)
    return echo(request)


def crash(request: dict[str, Any]) -> dict[str, Any]:
    os._exit(3)


def crash_once(request: dict[str, Any]) -> dict[str, Any]:
    if _first_time(request):
        os._exit(3)
    return echo(request)


def hang_once(request: dict[str, Any]) -> dict[str, Any]:
    if _first_time(request):
        time.sleep(FOREVER_S)
    return echo(request)


def hog_memory_once(request: dict[str, Any]) -> dict[str, Any]:
    """First attempt: allocates hog_mb and touches every page, then holds it."""
    if _first_time(request):
        hog = bytearray(request["hog_mb"] * _MB)
        for i in range(0, len(hog), _PAGE):
            hog[i] = 1
        time.sleep(FOREVER_S)
    return echo(request)


def raise_error(request: dict[str, Any]) -> dict[str, Any]:
    raise ValueError(f"bad minibatch {request.get('id')}")


def raise_error_once(request: dict[str, Any]) -> dict[str, Any]:
    if _first_time(request):
        raise RuntimeError("transient")
    return echo(request)


def print_to_stdout_then_echo(request: dict[str, Any]) -> dict[str, Any]:
    print("noise from print")
    print('{"type": "reply", "seq": 999, "ok": true, "reply": {}, "run_s": 0}')  # looks like a reply
    sys.stdout.write("no newline at the end")
    sys.stdout.flush()
    os.write(1, b"raw bytes on fd 1\n")  # as a C library would
    return echo(request)


def not_a_dict(request: dict[str, Any]) -> Any:
    return [1, 2, 3]


def read_stdin_then_echo(request: dict[str, Any]) -> dict[str, Any]:
    """A handler that reads stdin must not steal the next request."""
    return {"stdin": sys.stdin.read(), **echo(request)}
