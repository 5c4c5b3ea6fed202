"""Polling for a condition, with a failure message that says what was
awaited and how it last looked."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

# Default pause between two checks.
WAIT_INTERVAL_S = 0.05

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """wait_for's condition did not hold in time."""


def wait_for(
    predicate: Callable[[], T],
    timeout_s: float,
    interval_s: float = WAIT_INTERVAL_S,
    *,
    what: str | None = None,
) -> T:
    """Call predicate every interval_s until it returns something truthy,
    and return that; raise WaitTimeout after timeout_s. Exceptions from the
    predicate propagate: catch the expected ones inside it."""
    description = what or getattr(predicate, "__name__", repr(predicate))
    start = time.monotonic()
    attempts = 0
    while True:
        value = predicate()
        attempts += 1
        if value:
            return value
        elapsed = time.monotonic() - start
        if elapsed >= timeout_s:
            raise WaitTimeout(
                f"timed out after {elapsed:.2f} s ({attempts} tries, limit {timeout_s} s) "
                f"waiting for {description}; last result: {value!r}"
            )
        time.sleep(min(interval_s, max(0.0, timeout_s - elapsed)))
