"""Who to probe next, and the tally of the probe round in flight."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


class ProbeOrder:
    """Shuffled round-robin (memberlist): every member is probed once per
    pass, in a fresh random order each pass, so a failed member is probed
    by someone within one probe interval on average, whatever n. New
    members go in at a random place."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._ids: list[str] = []
        self._index = 0

    def __contains__(self, member_id: str) -> bool:
        return member_id in self._ids

    def add(self, member_id: str) -> None:
        if member_id in self._ids:
            return
        at = self._rng.randint(0, len(self._ids))
        self._ids.insert(at, member_id)
        if at < self._index:
            self._index += 1

    def remove(self, member_id: str) -> None:
        if member_id not in self._ids:
            return
        at = self._ids.index(member_id)
        del self._ids[at]
        if at < self._index:
            self._index -= 1

    def next(self, eligible: Callable[[str], bool]) -> str | None:
        """The next eligible member, reshuffling after each full pass."""
        for _ in range(2 * len(self._ids)):
            if self._index >= len(self._ids):
                self._rng.shuffle(self._ids)
                self._index = 0
            member_id = self._ids[self._index]
            self._index += 1
            if eligible(member_id):
                return member_id
        return None


@dataclass
class ProbeRound:
    """The probe in flight: what came back so far."""

    seq: int
    target: str
    started: float
    acked: bool = False
    direct: bool = False
    helpers: set[str] = field(default_factory=set)
    replied: set[str] = field(default_factory=set)
    nacks: int = 0

    def awareness_delta(self) -> int:
        """Lifeguard: a direct ack is a sign of our own good health (-1); an
        indirect ack says nothing (0); each helper that did not even nack
        suggests that we are the slow one (+1 each); with no helpers to ask,
        a failed probe counts +1."""
        if self.direct:
            return -1
        if self.acked:
            return 0
        if self.helpers:
            return len(self.helpers) - self.nacks
        return 1
