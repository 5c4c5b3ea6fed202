"""The piggyback queue: updates waiting to be spread, each sent a limited
number of times (memberlist's TransmitLimitedQueue).

One entry per member: a newer update about a member replaces the older one
(the state machine queues only updates it accepted, so the newest is the one
that matters). take() hands out the least-sent updates first, newest first
among equals, and drops an update once it has been sent `limit` times.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from spirtd.membership.messages import Update


@dataclass
class _Entry:
    update: Update
    transmits: int
    order: int  # larger is newer


class BroadcastQueue:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def push(self, update: Update) -> None:
        """Queues an update, replacing any queued update about the same member."""
        self._entries[update.id] = _Entry(update, 0, next(self._order))

    def take(self, limit: int, max_items: int) -> tuple[Update, ...]:
        """Up to max_items updates for one message, least-sent first; each
        counts as one transmission, and one sent `limit` times is dropped."""
        if max_items <= 0 or not self._entries:
            return ()
        chosen = sorted(self._entries.values(), key=lambda e: (e.transmits, -e.order))[:max_items]
        for entry in chosen:
            entry.transmits += 1
            if entry.transmits >= limit:
                del self._entries[entry.update.id]
        return tuple(entry.update for entry in chosen)

    def pending(self) -> dict[str, tuple[Update, int]]:
        """Every queued update by member id, with how often it was sent."""
        return {key: (e.update, e.transmits) for key, e in self._entries.items()}
