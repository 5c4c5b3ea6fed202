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
