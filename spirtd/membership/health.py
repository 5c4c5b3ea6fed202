"""Lifeguard's two timers of doubt: the suspicion of another member, and
our own local health (awareness). Plain records; the state machine drives them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spirtd.membership.formulas import scale_by_awareness, suspicion_timeout_s


@dataclass
class Suspicion:
    """One member suspected at one incarnation. Independent confirmations
    (distinct accusers after the first, at most `expected`) pull the
    deadline from start + max_s toward start + min_s."""

    incarnation: int
    started: float
    min_s: float
    max_s: float
    expected: int
    accusers: set[str] = field(default_factory=set)

    @property
    def confirmations(self) -> int:
        return max(0, len(self.accusers) - 1)

    @property
    def deadline(self) -> float:
        timeout = suspicion_timeout_s(self.min_s, self.max_s, self.confirmations, self.expected)
        return self.started + timeout

    def confirm(self, accuser: str) -> bool:
        """Counts an accuser; True when it is new and still shortens the timeout."""
        if accuser in self.accusers or self.confirmations >= self.expected:
            return False
        self.accusers.add(accuser)
        return True


class Awareness:
    """Local health score in [0, max_mult - 1]; 0 is healthy. Our own
    timeouts are scaled by (score + 1)."""

    def __init__(self, max_mult: int) -> None:
        self._limit = max_mult - 1
        self.score = 0

    def apply(self, delta: int) -> None:
        self.score = min(self._limit, max(0, self.score + delta))

    def scale(self, duration_s: float) -> float:
        return scale_by_awareness(duration_s, self.score)
