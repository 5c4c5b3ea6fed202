"""The async layer around MembershipState: loops, timeouts, fan-out of events.

`async with MembershipDriver(state, transport, clock, config) as driver:`
runs four loops in the driver's own TaskGroup: probe rounds, gossip, push-pull
and the suspicion timers. The driver is also the InboundHandler that a
transport's server calls. Every state call happens between awaits, so the
state needs no lock. Time comes only from `clock` (sleep, monotonic and
clock_timeout scopes), so a whole cluster runs on a FakeClock.

Errors: sends that fail (TransportError) or time out are counted in stats()
and otherwise handled by the protocol (a missing ack is what SWIM is made
of). Anything else is a bug: it ends the TaskGroup and surfaces from the
`async with` block. Inbound handlers raise MembershipError for a request
they refuse (a ping meant for another member, a closed driver).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from spirtd.clock import Clock, clock_timeout
from spirtd.errors import ConfigError, MembershipError, TransportError
from spirtd.membership.config import MembershipConfig
from spirtd.membership.effects import Outgoing, ProbePlan
from spirtd.membership.messages import Ack, Gossip, Leave, Member, Ping, PingReq, PingReqReply, Snapshot
from spirtd.membership.state import MembershipState
from spirtd.membership.subscriptions import EventHub, Subscription
from spirtd.membership.transport import Transport
from spirtd.tasks import TaskSet

T = TypeVar("T")


class DriverPhase(enum.Enum):
    NEW = "new"  # handlers and join() work, no loops yet
    RUNNING = "running"
    CLOSED = "closed"


@dataclass(frozen=True)
class DriverStats:
    sent: Mapping[str, int]  # requests by kind (relayed pings count as ping)
    received: Mapping[str, int]  # requests handled, by kind
    failed: Mapping[str, int]  # requests that raised TransportError or timed out
    events_dropped: int  # lost by slow subscribers
    awareness: int
    incarnation: int
    refutations: int


class _Tally:
    """What the probe round in flight has heard, for the waiting loop."""

    def __init__(self) -> None:
        self.acked = False
        self.outstanding = 0
        self.changed = asyncio.Event()

    @property
    def settled(self) -> bool:
        return self.acked or self.outstanding == 0

    def done(self, acked: bool) -> None:
        self.acked = self.acked or acked
        self.outstanding -= 1
        self.changed.set()


class MembershipDriver:
    def __init__(self, state: MembershipState, transport: Transport, clock: Clock, config: MembershipConfig) -> None:
        if config != state.config:
            raise ConfigError("the driver and its state must share one MembershipConfig")
        self._state = state
        self._transport = transport
        self._clock = clock
        self._config = config
        self._phase = DriverPhase.NEW
        self._group: asyncio.TaskGroup | None = None
        self._tasks = TaskSet()  # loops and sends in flight
        self._hub = EventHub(config.subscriber_queue_max)
        self._wake = asyncio.Event()
        self._timer_at: float | None = None
        self._sent: Counter[str] = Counter()
        self._received: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()

    # -- lifecycle ---------------------------------------------------------
    @property
    def phase(self) -> DriverPhase:
        return self._phase

    async def __aenter__(self) -> MembershipDriver:
        if self._phase is not DriverPhase.NEW:
            raise MembershipError(f"a membership driver runs once; this one is {self._phase.value}")
        group = asyncio.TaskGroup()
        await group.__aenter__()
        self._group, self._phase = group, DriverPhase.RUNNING
        self._tasks.open(group)
        for loop in (self._probe_loop, self._gossip_loop, self._push_pull_loop, self._timer_loop):
            self._tasks.spawn(loop())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stops every loop and send in flight at once, ends subscriptions.
        Sends nothing (leave() says goodbye first). Idempotent, from any task;
        a loop that failed with a bug re-raises here (in an ExceptionGroup)."""
        if self._phase is DriverPhase.CLOSED:
            return
        self._phase = DriverPhase.CLOSED
        self._hub.close()
        group, self._group = self._group, None
        self._tasks.close()
        if group is not None:
            await group.__aexit__(None, None, None)

    # -- the user's API ----------------------------------------------------
    async def join(self, seeds: Sequence[str]) -> int:
        """Push-pull with the first seed that answers, trying the seeds in
        order, join_attempts times over with join_retry_interval_s between;
        returns the number of members then alive or suspect (us included).
        Raises MembershipError when no seed answered."""
        self._check_open()
        own = self._state.local.address
        others = [seed for seed in seeds if seed != own]
        if not others:
            raise ConfigError("join needs at least one seed address other than this member's own")
        for attempt in range(self._config.join_attempts):
            if attempt:
                await self._clock.sleep(self._config.join_retry_interval_s)
            for seed in others:
                request = functools.partial(self._transport.join, seed, self._state.snapshot())
                reply = await self._call("join", request, self._config.rpc_timeout_s)
                if reply is not None:
                    self._state.on_snapshot(reply, self._now())
                    self._after()
                    return self._state.n
        raise MembershipError(
            f"no seed answered a join ({', '.join(others)}) in {self._config.join_attempts} attempts"
        )

    async def leave(self) -> None:
        """Leaves on purpose: tells up to gossip_fanout members (who spread it
        as LEFT), then closes. Does nothing once closed."""
        if self._phase is DriverPhase.CLOSED:
            return
        sends = self._state.leave(self._now())
        self._after()
        async with asyncio.TaskGroup() as group:
            for out in sends:
                request = functools.partial(self._transport.leave, out.to.address, out.message)
                group.create_task(self._call("leave", request, self._config.rpc_timeout_s))
        await self.aclose()

    def expel(self, member_id: str) -> None:
        """Marks a member dead for good (its certificate was revoked)."""
        self._state.expel(member_id, self._now())
        self._after()

    def members(self) -> list[Member]:
        return self._state.members()

    def subscribe(self) -> Subscription:
        """Every event from now on; ends when the driver closes."""
        return self._hub.subscribe()

    def stats(self) -> DriverStats:
        return DriverStats(
            sent=dict(self._sent),
            received=dict(self._received),
            failed=dict(self._failed),
            events_dropped=self._hub.dropped,
            awareness=self._state.awareness,
            incarnation=self._state.local.incarnation,
            refutations=self._state.refutations,
        )

    # -- InboundHandler ----------------------------------------------------
    async def handle_ping(self, ping: Ping) -> Ack:
        self._inbound("ping")
        ack = self._state.on_ping(ping, self._now())
        self._after()
        return ack

    async def handle_ping_req(self, req: PingReq) -> PingReqReply:
        """Probes req.target for the asker: acked, or a nack after
        probe_timeout_s (unscaled: the asker's health is not ours)."""
        self._inbound("ping_req")
        relay = self._state.on_ping_req(req, self._now())
        self._after()
        request = functools.partial(self._transport.ping, req.target_address, relay)
        ack = await self._call("ping", request, self._config.probe_timeout_s)
        reply = self._state.relay_result(req, relay, ack, self._now())
        self._after()
        return reply

    async def handle_gossip(self, gossip: Gossip) -> None:
        self._inbound("gossip")
        self._state.on_gossip(gossip, self._now())
        self._after()

    async def handle_sync(self, snapshot: Snapshot) -> Snapshot:
        """Merges first and answers with the merged state, so that a member
        that learns here that it was declared dead answers already refuted."""
        self._inbound("sync")
        self._state.on_snapshot(snapshot, self._now())
        self._after()
        return self._state.snapshot()

    async def handle_join(self, snapshot: Snapshot) -> Snapshot:
        self._inbound("join")
        self._state.on_snapshot(snapshot, self._now())
        self._after()
        return self._state.snapshot()

    async def handle_leave(self, leave: Leave) -> None:
        self._inbound("leave")
        self._state.on_leave(leave, self._now())
        self._after()

    # -- loops -------------------------------------------------------------
    async def _probe_loop(self) -> None:
        await self._clock.sleep(self._state.stagger_s(self._config.probe_interval_s))
        while True:
            started = self._now()
            plan = self._state.start_probe(started)
            if plan is None:
                await self._clock.sleep(self._state.probe_interval_s())
                continue
            await self._probe(plan)
            await self._clock.sleep(max(0.0, plan.deadline - self._now()))

    async def _probe(self, plan: ProbePlan) -> None:
        """Direct ping; without an ack by ack_deadline, k helpers too; the
        first ack (direct or through a helper) ends the round early."""
        tally = _Tally()
        async with asyncio.TaskGroup() as group:
            tasks = [self._start(group, tally, self._direct_ping(plan, tally))]
            await self._settle(tally, plan.ack_deadline)
            if not tally.acked:
                for out in self._state.start_indirect(plan.seq, self._now()):
                    tasks.append(self._start(group, tally, self._indirect_ping(plan, out, tally)))
                await self._settle(tally, plan.deadline)
            for task in tasks:
                task.cancel()
        self._state.finish_probe(plan.seq, self._now())
        self._after()

    @staticmethod
    def _start(group: asyncio.TaskGroup, tally: _Tally, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        tally.outstanding += 1
        return group.create_task(coro)

    async def _settle(self, tally: _Tally, deadline: float) -> None:
        """Waits until the round is settled (acked, or every request
        answered) or the deadline passes."""
        with contextlib.suppress(TimeoutError):
            async with clock_timeout(self._clock, max(0.0, deadline - self._now())):
                while not tally.settled:
                    tally.changed.clear()
                    await tally.changed.wait()

    async def _direct_ping(self, plan: ProbePlan, tally: _Tally) -> None:
        acked = False
        try:
            request = functools.partial(self._transport.ping, plan.target.address, plan.ping)
            ack = await self._call("ping", request, plan.deadline - self._now())
            if ack is not None:
                acked = self._state.record_ack(plan.seq, ack, self._now())
                self._after()
        finally:
            tally.done(acked)

    async def _indirect_ping(self, plan: ProbePlan, out: Outgoing[PingReq], tally: _Tally) -> None:
        acked = False
        try:
            request = functools.partial(self._transport.ping_req, out.to.address, out.message)
            reply = await self._call("ping_req", request, plan.deadline - self._now())
            if reply is not None:
                acked = self._state.record_reply(plan.seq, reply, self._now()) and reply.acked
                self._after()
        finally:
            tally.done(acked)

    async def _gossip_loop(self) -> None:
        while True:
            await self._clock.sleep(self._config.gossip_interval_s)
            for out in self._state.gossip_plan(self._now()):
                request = functools.partial(self._transport.gossip, out.to.address, out.message)
                self._tasks.spawn(self._call("gossip", request, self._config.rpc_timeout_s))

    async def _push_pull_loop(self) -> None:
        await self._clock.sleep(self._state.stagger_s(self._config.push_pull_interval_s))
        while True:
            for member in self._state.push_pull_targets(self._now()):
                self._tasks.spawn(self._sync(member))
            await self._clock.sleep(self._state.push_pull_interval_s())

    async def _sync(self, member: Member) -> None:
        request = functools.partial(self._transport.sync, member.address, self._state.snapshot())
        reply = await self._call("sync", request, self._config.rpc_timeout_s)
        if reply is not None:
            self._state.on_snapshot(reply, self._now())
            self._after()

    async def _timer_loop(self) -> None:
        """Runs tick() at the state's next deadline; _after() wakes it when
        a new, earlier deadline appears."""
        while True:
            now = self._now()
            self._state.tick(now)
            self._after()
            self._timer_at = self._state.next_deadline()
            self._wake.clear()
            delay = None if self._timer_at is None else max(0.0, self._timer_at - now)
            with contextlib.suppress(TimeoutError):
                async with clock_timeout(self._clock, delay):
                    await self._wake.wait()

    # -- helpers -----------------------------------------------------------
    async def _call(self, kind: str, request: Callable[[], Awaitable[T]], timeout_s: float) -> T | None:
        """One request with its timeout; None when it failed or timed out."""
        self._sent[kind] += 1
        try:
            async with clock_timeout(self._clock, max(0.0, timeout_s)):
                return await request()
        except (TransportError, TimeoutError):
            self._failed[kind] += 1
            return None

    def _after(self) -> None:
        """After every state change: hand out its events, and wake the
        timer loop if the next deadline moved earlier."""
        for event in self._state.drain_events():
            self._hub.publish(event)
        deadline = self._state.next_deadline()
        if deadline is not None and (self._timer_at is None or deadline < self._timer_at):
            self._wake.set()

    def _inbound(self, kind: str) -> None:
        self._check_open()
        self._received[kind] += 1

    def _check_open(self) -> None:
        if self._phase is DriverPhase.CLOSED:
            raise MembershipError("this member's membership driver is closed")

    def _now(self) -> float:
        return self._clock.monotonic()
