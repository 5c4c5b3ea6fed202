"""What the membership state reports about other members."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from spirtd.membership.messages import Member


class EventKind(enum.Enum):
    JOIN = "join"  # first seen alive, or back after dead/left (higher incarnation)
    UPDATE = "update"  # an alive member changed its address or meta
    SUSPECT = "suspect"
    ALIVE = "alive"  # a suspect refuted the suspicion
    DEAD = "dead"
    LEAVE = "leave"  # left on purpose


@dataclass(frozen=True)
class MemberEvent:
    kind: EventKind
    member: Member  # as it is after the change
    time: float  # the `now` of the state call that caused it


# The meta key of a token each process start draws afresh.
BOOT_META = "boot"


class RestartDetector:
    """Tells, from the boot token in a member's meta, that a member came back
    as a new process before anyone declared the old one dead: SWIM sees only
    a higher incarnation (an UPDATE, or ALIVE when it was suspected), but
    whatever the old process held (a round's work) is gone."""

    def __init__(self) -> None:
        self._boots: dict[str, str] = {}

    def restarted(self, event: MemberEvent) -> bool:
        boot = event.member.meta.get(BOOT_META)
        if boot is None:
            return False
        before = self._boots.get(event.member.id)
        self._boots[event.member.id] = boot
        # After DEAD or LEAVE, the rejoin is a JOIN: the death was already news.
        return before is not None and before != boot and event.kind in (EventKind.UPDATE, EventKind.ALIVE)
