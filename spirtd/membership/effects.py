"""What the state machine asks its driver to do: messages to send, probe
rounds to run. Frozen records; the driver owns the sockets and the timers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from spirtd.membership.messages import Member, Ping

M = TypeVar("M")


@dataclass(frozen=True)
class Outgoing(Generic[M]):
    """Send `message` to `to` (at to.address)."""

    to: Member
    message: M


@dataclass(frozen=True)
class ProbePlan:
    """One probe round. Ping the target; wait for its ack until
    ack_deadline, then ask helpers (start_indirect); at deadline the round
    ends (finish_probe). A direct ack that arrives late still counts."""

    seq: int
    target: Member
    ping: Ping
    ack_deadline: float
    deadline: float


@dataclass(frozen=True)
class ProbeResult:
    target: str
    acked: bool  # directly or through a helper
    direct: bool  # the target's own ack arrived
    nacks: int
    helpers: int
    awareness_delta: int
    suspected: bool  # we accused (or confirmed) the target
