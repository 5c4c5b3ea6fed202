"""SWIM gossip membership with Lifeguard refinements.

- config.MembershipConfig: every setting, with presets.
- state.MembershipState: the protocol as a pure state machine (rules in table.py).
- driver.MembershipDriver: the async loops around it; the InboundHandler.
- transport.Transport / InboundHandler: how members reach each other;
  memory.MemoryNetwork is the in-process twin for tests.
"""

from spirtd.membership.config import MembershipConfig
from spirtd.membership.driver import DriverPhase, DriverStats, MembershipDriver
from spirtd.membership.effects import Outgoing, ProbePlan, ProbeResult
from spirtd.membership.events import EventKind, MemberEvent
from spirtd.membership.memory import MemoryNetwork, MemoryTransport
from spirtd.membership.messages import (
    Ack,
    Alive,
    Dead,
    Gossip,
    Leave,
    Member,
    MemberState,
    Ping,
    PingReq,
    PingReqReply,
    Snapshot,
    Suspect,
    Update,
)
from spirtd.membership.state import MembershipState
from spirtd.membership.subscriptions import Subscription
from spirtd.clock import clock_timeout
from spirtd.membership.transport import InboundHandler, Transport

__all__ = [
    "Ack",
    "Alive",
    "Dead",
    "DriverPhase",
    "DriverStats",
    "EventKind",
    "Gossip",
    "InboundHandler",
    "Leave",
    "Member",
    "MemberEvent",
    "MemberState",
    "MembershipConfig",
    "MembershipDriver",
    "MembershipState",
    "MemoryNetwork",
    "MemoryTransport",
    "Outgoing",
    "Ping",
    "PingReq",
    "PingReqReply",
    "ProbePlan",
    "ProbeResult",
    "Snapshot",
    "Subscription",
    "Suspect",
    "Transport",
    "Update",
    "clock_timeout",
]
