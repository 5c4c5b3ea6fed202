"""The Control service: what clients (and operators) ask a peer."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from spirtd import __version__
from spirtd.api.spirt.v1 import control_pb2, control_pb2_grpc
from spirtd.clock import Clock
from spirtd.daemon import wire
from spirtd.daemon.job_control import MODEL_CHUNK_BYTES, JobControl
from spirtd.jobs.manager import JobManager
from spirtd.membership.events import EventKind, MemberEvent
from spirtd.membership.messages import Member, MemberState
from spirtd.membership.subscriptions import Subscription
from spirtd.rpc.counters import Counters

EVENT_TO_WIRE = {
    EventKind.JOIN: control_pb2.MembershipEvent.JOIN,
    EventKind.SUSPECT: control_pb2.MembershipEvent.SUSPECT,
    EventKind.ALIVE: control_pb2.MembershipEvent.ALIVE,
    EventKind.DEAD: control_pb2.MembershipEvent.DEAD,
    EventKind.LEAVE: control_pb2.MembershipEvent.LEAVE,
}


class StateAges:
    """When each member entered its current state, from membership events."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._since: dict[str, tuple[MemberState, float]] = {}

    def observe(self, event: MemberEvent) -> None:
        self._since[event.member.id] = (event.member.state, self._clock.monotonic())

    def age_s(self, member: Member) -> float:
        state, since = self._since.get(member.id, (member.state, self._clock.monotonic()))
        if state is not member.state:
            return 0.0
        return self._clock.monotonic() - since


class NodeView(Protocol):
    """What Control reads from the rest of the daemon: live values, read at
    each call."""

    @property
    def id(self) -> str: ...

    @property
    def address(self) -> str: ...

    @property
    def store_backend(self) -> str: ...

    @property
    def local(self) -> Member: ...

    def members(self) -> list[Member]: ...

    def rtt_s(self, member_id: str) -> float | None: ...

    def subscribe(self) -> Subscription: ...

    def membership_counters(self) -> dict[str, int]:
        """Membership messages sent, received and failed, by kind, and the driver's other counts."""
        ...


class ControlService(JobControl, control_pb2_grpc.ControlServicer):
    def __init__(
        self,
        node: NodeView,
        counters: Counters,
        ages: StateAges,
        clock: Clock,
        jobs: JobManager | None = None,
        layout: Callable[[Any], list] = lambda spec: [],
        model_inputs: Callable[[Any], tuple[tuple[int, ...], int]] = lambda spec: ((), 0),
        max_message_bytes: int = 4 << 20,
    ) -> None:
        # A model travels in pieces well under the message limit (room for the other fields).
        self._chunk_bytes = max(1, min(MODEL_CHUNK_BYTES, max_message_bytes // 2))
        self._jobs = jobs
        self._layout = layout
        self._model_inputs = model_inputs
        self._node = node
        self._counters = counters
        self._ages = ages
        self._clock = clock
        self._started = clock.monotonic()

    def _info(self, member: Member) -> control_pb2.MemberInfo:
        rtt = self._node.rtt_s(member.id)
        return control_pb2.MemberInfo(
            id=member.id, address=member.address, state=wire.STATE_TO_WIRE[member.state],
            incarnation=member.incarnation, rtt_ms=(rtt or 0.0) * 1000.0,
            state_age_s=self._ages.age_s(member),
        )  # fmt: skip

    async def Status(self, request, context) -> control_pb2.StatusResponse:
        members = self._node.members()
        return control_pb2.StatusResponse(
            id=self._node.id,
            version=__version__,
            uptime_s=self._clock.monotonic() - self._started,
            store_backend=self._node.store_backend,
            member_count=len(members),
            alive_count=sum(1 for x in members if x.state is MemberState.ALIVE),
            address=self._node.address,
            incarnation=self._node.local.incarnation,
            counters={**self._counters.snapshot(), **self._node.membership_counters()},
        )

    async def Members(self, request, context) -> control_pb2.MembersResponse:
        members = sorted(self._node.members(), key=lambda x: x.id)
        return control_pb2.MembersResponse(members=[self._info(x) for x in members])

    async def WatchMembership(self, request, context):
        subscription = self._node.subscribe()
        try:
            if request.include_current:
                for member in sorted(self._node.members(), key=lambda x: x.id):
                    yield self._event(control_pb2.MembershipEvent.JOIN, member)
            async for event in subscription:
                # UPDATE (an address or metadata change) has no wire kind yet.
                kind = EVENT_TO_WIRE.get(event.kind)
                if kind is not None:
                    yield self._event(kind, event.member)
        finally:
            await subscription.aclose()

    def _event(self, kind: int, member: Member) -> control_pb2.MembershipEvent:
        return control_pb2.MembershipEvent(kind=kind, member=self._info(member), time_unix=self._clock.wall())
