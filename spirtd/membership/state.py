"""SWIM membership with Lifeguard refinements, as a pure state machine.

No I/O, no locks, no clock: every method takes `now` (seconds on the
driver's monotonic clock) and returns what to send (effects.py); events are
collected for drain_events(). The rules about members live in table.py;
this module decides what to do: which member to probe and how
(direct, then through k helpers, with Lifeguard's nacks and local health),
what to piggyback (the buddy system first), whom to gossip to and sync with.

A driver runs, forever and concurrently: a probe round every
probe_interval_s() (start_probe, record_ack, start_indirect, record_reply,
finish_probe); gossip_plan every gossip_interval_s; push_pull_targets every
push_pull_interval_s(); tick at next_deadline(). Inbound messages go to
on_ping, on_ping_req + relay_result, on_gossip, on_snapshot, on_leave.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Mapping

from spirtd.errors import MembershipError
from spirtd.membership import formulas
from spirtd.membership.config import MembershipConfig
from spirtd.membership.effects import Outgoing, ProbePlan, ProbeResult
from spirtd.membership.events import MemberEvent
from spirtd.membership.messages import (
    Ack,
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
from spirtd.membership.probing import ProbeRound
from spirtd.membership.table import MemberTable

ALIVE, SUSPECT, DEAD, LEFT = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT


class MembershipState:
    def __init__(
        self,
        member_id: str,
        address: str,
        config: MembershipConfig,
        *,
        rng: random.Random,
        now: float,
        meta: Mapping[str, str] | None = None,
        incarnation: int = 0,
    ) -> None:
        self._config = config
        self._rng = rng
        self._id = member_id
        local = Member(member_id, address, incarnation, ALIVE, meta or {})
        self._table = MemberTable(local, config, rng, now)
        self._rtt: dict[str, float] = {}
        self._probe: ProbeRound | None = None
        self._seq = itertools.count(1)
        self._buddy_probed: set[tuple[str, int]] = set()  # (suspect, incarnation)

    # -- reading -----------------------------------------------------------
    @property
    def id(self) -> str:
        return self._id

    @property
    def config(self) -> MembershipConfig:
        return self._config

    @property
    def local(self) -> Member:
        return self._table.local

    @property
    def left(self) -> bool:
        return self.local.state is LEFT

    @property
    def awareness(self) -> int:
        """Local health score: 0 is healthy, awareness_max - 1 the worst."""
        return self._table.awareness.score

    @property
    def refutations(self) -> int:
        return self._table.refutations

    @property
    def n(self) -> int:
        """Members that count (alive or suspect), ourselves included."""
        return self._table.n

    def members(self) -> list[Member]:
        """Every member we know, by id: ourselves and remembered dead ones too."""
        return self._table.all()

    def member(self, member_id: str) -> Member | None:
        return self._table.get(member_id)

    def rtt(self, member_id: str) -> float | None:
        """Seconds from our last direct ping of this member to its ack."""
        return self._rtt.get(member_id)

    def pending_updates(self) -> dict[str, tuple[Update, int]]:
        """The piggyback queue: update and times sent, by member id."""
        return self._table.queue.pending()

    def drain_events(self) -> list[MemberEvent]:
        return self._table.drain_events()

    def next_deadline(self) -> float | None:
        """When tick() next has work: a suspicion expires or a dead member
        is to be forgotten."""
        return self._table.next_deadline()

    def probe_interval_s(self) -> float:
        """The probe interval now, scaled by our local health."""
        return self._table.awareness.scale(self._config.probe_interval_s)

    def push_pull_interval_s(self) -> float:
        return formulas.push_pull_interval_s(self._config.push_pull_interval_s, self.n)

    def stagger_s(self, duration_s: float) -> float:
        """A random part of duration_s, so that members do not run in step."""
        return self._rng.uniform(0.0, duration_s)

    # -- our own changes ---------------------------------------------------
    def set_meta(self, meta: Mapping[str, str], now: float) -> None:
        """Changes our meta and spreads it with a new incarnation."""
        local = self.local
        self._table.change_local(dataclasses.replace(local, incarnation=local.incarnation + 1, meta=meta), now)

    def leave(self, now: float) -> tuple[Outgoing[Leave], ...]:
        """We leave on purpose: marks us LEFT, queues Dead(from=us) for
        gossip and returns the Leave messages to send now, to up to
        gossip_fanout alive members. Nothing once left."""
        if self.left:
            return ()
        local = dataclasses.replace(self.local, state=LEFT)
        self._table.change_local(local, now)
        message = Leave(self._id, local.incarnation)
        targets = self._sample(self._table.others(ALIVE), self._config.gossip_fanout)
        return tuple(Outgoing(m, message) for m in targets)

    def expel(self, member_id: str, now: float) -> None:
        """Marks a member dead for good (its certificate was revoked): any
        later Alive for it is ignored, whatever its incarnation."""
        if member_id == self._id:
            raise MembershipError("a member cannot expel itself")
        self._table.expel(member_id, now)

    # -- probing -----------------------------------------------------------
    def start_probe(self, now: float) -> ProbePlan | None:
        """Starts the next probe round (ending any unfinished one), or None
        when there is nobody to probe."""
        self._probe = None
        if self.left:
            return None
        table = self._table
        target_id = self._next_buddy()
        if target_id is None:
            target_id = table.order.next(lambda i: (m := table.get(i)) is not None and m.state.counts)
        target = table.get(target_id) if target_id is not None else None
        if target is None:
            return None
        seq = next(self._seq)
        self._probe = ProbeRound(seq, target.id, now)
        return ProbePlan(
            seq=seq,
            target=target,
            ping=Ping(self._id, seq, target.id, self._piggyback(buddy=target)),
            ack_deadline=now + table.awareness.scale(self._config.probe_timeout_s),
            deadline=now + self.probe_interval_s(),
        )

    def record_ack(self, seq: int, ack: Ack, now: float) -> bool:
        """The target's ack to our probe `seq`; False if it is not one."""
        round_ = self._round(seq)
        if round_ is None or ack.seq != seq or ack.sender != round_.target:
            return False
        self._table.apply_all(ack.updates, now)
        if not round_.direct:
            round_.acked = round_.direct = True
            self._rtt[round_.target] = now - round_.started
        return True

    def start_indirect(self, seq: int, now: float) -> tuple[Outgoing[PingReq], ...]:
        """No direct ack in time: ask up to k alive members to probe the target."""
        round_ = self._round(seq)
        target = self._table.get(round_.target) if round_ else None
        if round_ is None or target is None or round_.helpers:
            return ()
        candidates = [m for m in self._table.others(ALIVE) if m.id != target.id]
        helpers = self._sample(candidates, self._config.indirect_checks)
        round_.helpers = {h.id for h in helpers}
        return tuple(
            Outgoing(h, PingReq(self._id, seq, target.id, target.address, self._piggyback(buddy=target)))
            for h in helpers
        )

    def record_reply(self, seq: int, reply: PingReqReply, now: float) -> bool:
        """A helper's answer: an ack through it, or a nack (it is alive)."""
        round_ = self._round(seq)
        if round_ is None or reply.seq != seq or reply.sender not in round_.helpers:
            return False
        if reply.sender in round_.replied:
            return False
        round_.replied.add(reply.sender)
        self._table.apply_all(reply.updates, now)
        if reply.acked:
            round_.acked = True
        else:
            round_.nacks += 1
        return True

    def finish_probe(self, seq: int, now: float) -> ProbeResult | None:
        """Ends the round: adjusts our local health, and suspects the target
        if nobody reached it (or confirms the suspicion it is under)."""
        round_ = self._round(seq)
        if round_ is None:
            return None
        self._probe = None
        delta = round_.awareness_delta()
        self._table.awareness.apply(delta)
        target = self._table.get(round_.target)
        suspected = False
        if not round_.acked and target is not None and target.state.counts:
            suspected = True
            self._table.apply_suspect(Suspect(target.id, target.incarnation, self._id), now)
        return ProbeResult(
            target=round_.target,
            acked=round_.acked,
            direct=round_.direct,
            nacks=round_.nacks,
            helpers=len(round_.helpers),
            awareness_delta=delta,
            suspected=suspected,
        )

    # -- answering others --------------------------------------------------
    def on_ping(self, ping: Ping, now: float) -> Ack:
        if ping.target != self._id:
            raise MembershipError(f"a ping for {ping.target!r} reached {self._id!r}")
        self._table.apply_all(ping.updates, now)
        return Ack(self._id, ping.seq, self._piggyback())

    def on_ping_req(self, req: PingReq, now: float) -> Ping:
        """Someone asks us to probe req.target: the ping to send it."""
        self._table.apply_all(req.updates, now)
        target = self._table.get(req.target)
        return Ping(self._id, next(self._seq), req.target, self._piggyback(buddy=target))

    def relay_result(self, req: PingReq, relay: Ping, ack: Ack | None, now: float) -> PingReqReply:
        """Our answer to req, given the target's ack to `relay` (None: it did
        not answer in time, so we nack)."""
        acked = ack is not None and ack.sender == req.target and ack.seq == relay.seq
        if ack is not None:
            self._table.apply_all(ack.updates, now)
        return PingReqReply(self._id, req.seq, acked, self._piggyback())

    def on_gossip(self, gossip: Gossip, now: float) -> None:
        self._table.apply_all(gossip.updates, now)

    def on_leave(self, leave: Leave, now: float) -> None:
        self._table.apply_dead(Dead(leave.sender, leave.incarnation, leave.sender), now)

    def on_snapshot(self, snapshot: Snapshot, now: float) -> None:
        """Merges a peer's full state (join, push-pull)."""
        self._table.merge(snapshot, now)

    def snapshot(self) -> Snapshot:
        return Snapshot(self._id, tuple(self._table.all()))

    # -- spreading ---------------------------------------------------------
    def gossip_plan(self, now: float) -> tuple[Outgoing[Gossip], ...]:
        """Pending updates for up to gossip_fanout random members: alive,
        suspect, or dead and still remembered (so that one wrongly declared
        dead hears it and refutes). Nothing when nothing is pending."""
        if not self._table.queue:
            return ()
        candidates = self._table.others(ALIVE, SUSPECT, DEAD)
        plan = []
        for target in self._sample(candidates, self._config.gossip_fanout):
            updates = self._piggyback()
            if not updates:
                break
            plan.append(Outgoing(target, Gossip(self._id, updates)))
        return tuple(plan)

    def push_pull_targets(self, now: float) -> tuple[Member, ...]:
        """One random alive member to sync with, and one remembered dead one
        (not left, not expelled) to try to reconnect to."""
        alive = self._sample(self._table.others(ALIVE), 1)
        return tuple(alive + self._sample(self._table.others(DEAD), 1))

    # -- time --------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Expires suspicions (suspect -> dead) and forgets members dead or
        left for longer than dead_retain_s."""
        self._table.tick(now)
        for member_id in list(self._rtt):
            if self._table.get(member_id) is None:
                del self._rtt[member_id]

    # -- helpers -----------------------------------------------------------
    def _next_buddy(self) -> str | None:
        """A suspect that others accused and that we have not probed since:
        it is probed out of turn, once per suspicion. The ping tells it that
        it is suspected (so that it refutes at once if it is alive), and our
        own verdict confirms the suspicion or not within a probe interval.
        Which member a round probes changes, not how many pings we send."""
        suspects = self._table.suspects()
        live = {(member_id, s.incarnation) for member_id, s in suspects}
        self._buddy_probed &= live
        for member_id, suspicion in suspects:
            key = (member_id, suspicion.incarnation)
            if key not in self._buddy_probed and self._id not in suspicion.accusers:
                self._buddy_probed.add(key)
                return member_id
        return None

    def _round(self, seq: int) -> ProbeRound | None:
        return self._probe if self._probe is not None and self._probe.seq == seq else None

    def _piggyback(self, buddy: Member | None = None) -> tuple[Update, ...]:
        """Updates for one outgoing message. To a suspect, its suspicion
        goes first (the buddy system), so that it can refute at once."""
        first: tuple[Update, ...] = ()
        if buddy is not None and buddy.state is SUSPECT:
            first = (Suspect(buddy.id, buddy.incarnation, self._id),)
        limit = formulas.retransmit_limit(self._config.retransmit_mult, self.n)
        return first + self._table.queue.take(limit, self._config.piggyback_max - len(first))

    def _sample(self, members: list[Member], k: int) -> list[Member]:
        return self._rng.sample(members, min(k, len(members)))
