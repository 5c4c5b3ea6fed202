"""What members tell each other, as frozen dataclasses independent of any
wire format (the gRPC transport maps them to spirt.v1 messages).

Updates (Alive, Suspect, Dead) are what gossip spreads; they ride on every
message. A Dead whose from_id is the member itself means it left on purpose.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeAlias



def _frozen_meta(meta: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(meta))


class MemberState(enum.Enum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"

    @property
    def counts(self) -> bool:
        """Alive and suspect members are part of the cluster (probed, counted
        in n); dead and left ones are only remembered."""
        return self in (MemberState.ALIVE, MemberState.SUSPECT)


@dataclass(frozen=True)
class Member:
    """A member as one peer knows it. Only the member raises its incarnation."""

    id: str
    address: str
    incarnation: int
    state: MemberState
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta", _frozen_meta(self.meta))


@dataclass(frozen=True)
class Alive:
    id: str
    address: str
    incarnation: int
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta", _frozen_meta(self.meta))


@dataclass(frozen=True)
class Suspect:
    id: str
    incarnation: int
    from_id: str


@dataclass(frozen=True)
class Dead:
    id: str
    incarnation: int
    from_id: str

    @property
    def is_leave(self) -> bool:
        return self.from_id == self.id


Update: TypeAlias = Alive | Suspect | Dead


@dataclass(frozen=True)
class Ping:
    sender: str
    seq: int
    target: str  # the id the sender means to probe; a mismatch is refused
    updates: tuple[Update, ...] = ()


@dataclass(frozen=True)
class Ack:
    sender: str
    seq: int
    updates: tuple[Update, ...] = ()


@dataclass(frozen=True)
class PingReq:
    """Asks the receiver to probe target on the sender's behalf."""

    sender: str
    seq: int
    target: str
    target_address: str
    updates: tuple[Update, ...] = ()


@dataclass(frozen=True)
class PingReqReply:
    """acked: the target answered the helper in time; False is a nack, which
    tells the asker that the helper itself is alive (Lifeguard)."""

    sender: str
    seq: int
    acked: bool
    updates: tuple[Update, ...] = ()


@dataclass(frozen=True)
class Gossip:
    sender: str
    updates: tuple[Update, ...]


@dataclass(frozen=True)
class Snapshot:
    """Every member the sender knows, dead and left ones included."""

    sender: str
    members: tuple[Member, ...]


@dataclass(frozen=True)
class Leave:
    sender: str
    incarnation: int
