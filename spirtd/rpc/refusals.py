"""Refusals (of TLS handshakes, of calls) counted always and logged at a
bounded rate, so that a flood of bad connections cannot flood the log.

In each interval the first `burst` refusals get a line of their own; the
rest are counted, and one summary line per interval says how many there
were, by reason. Thread-safe: the handshake watch reports from its thread.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Callable

from spirtd.clock import Clock
from spirtd.rpc.counters import Counters

Emit = Callable[[int, str, dict], None]  # level, message, extra fields


def _log_emit(logger: logging.Logger) -> Emit:
    return lambda level, msg, extra: logger.log(level, "%s", msg, extra=extra)


class RefusalLog:
    def __init__(self, counters: Counters, clock: Clock, *, interval_s: float, burst: int,
                 emit: Emit | None = None) -> None:  # fmt: skip
        self._counters = counters
        self._clock = clock
        self._interval_s = interval_s
        self._burst = burst
        self._emit = emit or _log_emit(logging.getLogger("spirtd.security"))
        self._lock = threading.Lock()
        self._start = clock.monotonic()
        self._logged = 0
        self._quiet: Counter[str] = Counter()

    def refused(self, reason: str, peer: str, message: str) -> None:
        """Counts a refusal (counter refused.REASON) and logs message, or
        counts it for the interval's summary once `burst` lines were written."""
        self._counters.inc(f"refused.{reason}")
        with self._lock:
            summary = self._roll()
            if self._logged < self._burst:
                self._logged += 1
                line: tuple[str, dict] | None = (message, {"peer": peer, "reason": reason})
            else:
                self._quiet[reason] += 1
                line = None
        if summary is not None:
            self._emit(logging.WARNING, *summary)
        if line is not None:
            self._emit(logging.WARNING, *line)

    def flush(self) -> None:
        """Writes the summary of an interval that has ended (call it every
        interval_s, so that a flood that stopped is still summed up)."""
        with self._lock:
            summary = self._roll()
        if summary is not None:
            self._emit(logging.WARNING, *summary)

    def _roll(self) -> tuple[str, dict] | None:
        now = self._clock.monotonic()
        if now - self._start < self._interval_s:
            return None
        quiet, self._quiet = self._quiet, Counter()
        self._start, self._logged = now, 0
        if not quiet:
            return None
        total = sum(quiet.values())
        by_reason = ", ".join(f"{n} {reason}" for reason, n in sorted(quiet.items()))
        return (f"refused {total} more connections or calls in the last {self._interval_s:g} s without a line "
                f"each ({by_reason}); counters refused.* in spirtctl status", {"refused": dict(quiet)})  # fmt: skip
