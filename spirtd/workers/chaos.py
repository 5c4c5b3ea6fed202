"""Deliberate worker failures, for testing that training survives them
(chaos testing). Off unless SPIRTD_CHAOS is set in the worker's environment:

    SPIRTD_CHAOS="crash@round 2:minibatch 1,hang@round 3:minibatch 0,memory@round 4:minibatch 2"
    SPIRTD_CHAOS_DIR=/some/dir

Each entry is KIND@REQUEST_ID: the first invocation of that request dies by
os._exit (crash), sleeps forever (hang), or touches memory until the worker's
memory limit kills it (memory). A marker file in SPIRTD_CHAOS_DIR makes it
happen once, so the retry succeeds.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from spirtd.errors import ConfigError

CHAOS_ENV = "SPIRTD_CHAOS"
CHAOS_DIR_ENV = "SPIRTD_CHAOS_DIR"
KINDS = ("crash", "hang", "memory")
# memory: grow in steps a watchdog samples, far past any limit a test sets.
MEMORY_STEP_BYTES = 64 << 20
MEMORY_STEPS = 256
MEMORY_STEP_PAUSE_S = 0.01
HANG_STEP_S = 3600.0


def _planned() -> dict[str, str]:
    raw = os.environ.get(CHAOS_ENV, "")
    plan = {}
    for entry in filter(None, (e.strip() for e in raw.split(","))):
        kind, _, request_id = entry.partition("@")
        if kind not in KINDS or not request_id:
            raise ConfigError(f"{CHAOS_ENV} entry {entry!r} is not KIND@REQUEST_ID with KIND in {KINDS}")
        plan[request_id] = kind
    return plan


def apply(request: dict[str, Any]) -> None:
    """Fails this invocation if the plan says so (once per request id)."""
    if not os.environ.get(CHAOS_ENV):
        return
    kind = _planned().get(str(request.get("id", "")).split(":", 1)[-1])
    if kind is None:
        return
    marker = Path(os.environ[CHAOS_DIR_ENV]) / hashlib.sha256(str(request["id"]).encode()).hexdigest()
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return  # failed once already: this is the retry
    if kind == "crash":
        os._exit(99)
    if kind == "hang":
        while True:
            time.sleep(HANG_STEP_S)
    hoard = []
    for _ in range(MEMORY_STEPS):
        hoard.append(bytearray(MEMORY_STEP_BYTES))  # bytearray() zero-fills: the pages are touched
        time.sleep(MEMORY_STEP_PAUSE_S)
