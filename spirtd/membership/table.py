"""What one member believes about the others, and the SWIM rules that
change it (hashicorp/memberlist's aliveNode, suspectNode and deadNode).

- Incarnations order what is said about a member. Alive overrides only
  with a higher incarnation; Suspect and Dead apply at the current one or
  higher; anything older is ignored. Only a member raises its own.
- Refutation: a Suspect or Dead about ourselves at our incarnation or
  higher (or an Alive about us that differs) makes us take that
  incarnation + 1 and spread an Alive; it also counts against our own
  health (Lifeguard).
- A suspect becomes dead when its suspicion times out; the timeout starts
  at its maximum and falls toward the minimum with each independent
  accuser (Lifeguard's dynamic suspicion).
- Dead from the member itself is a voluntary leave (LEFT, not DEAD). Dead
  and left members come back only with a higher incarnation (rejoin).
- An expelled member (revoked certificate) stays dead: its Alives are ignored.
- A snapshot (push-pull) saying dead counts as a suspicion only, so that
  stale state from the far side of a partition cannot kill anyone at once.

Every accepted update is queued for gossip. Pure: `now` comes in, no I/O.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable

from spirtd.membership import formulas
from spirtd.membership.broadcast import BroadcastQueue
from spirtd.membership.config import MembershipConfig
from spirtd.membership.events import EventKind, MemberEvent
from spirtd.membership.health import Awareness, Suspicion
from spirtd.membership.messages import Alive, Dead, Member, MemberState, Snapshot, Suspect, Update
from spirtd.membership.probing import ProbeOrder

ALIVE, SUSPECT, DEAD, LEFT = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT


def alive_of(member: Member) -> Alive:
    return Alive(member.id, member.address, member.incarnation, member.meta)


class MemberTable:
    def __init__(self, local: Member, config: MembershipConfig, rng: random.Random, now: float) -> None:
        self.config = config
        self.local_id = local.id
        self.queue = BroadcastQueue()
        self.awareness = Awareness(config.awareness_max)
        self.order = ProbeOrder(rng)
        self.refutations = 0
        self._members: dict[str, Member] = {local.id: local}
        self._changed: dict[str, float] = {local.id: now}
        self._suspicions: dict[str, Suspicion] = {}
        self._expelled: set[str] = set()
        self._events: list[MemberEvent] = []
        self.queue.push(alive_of(local))

    # -- reading -----------------------------------------------------------
    @property
    def local(self) -> Member:
        return self._members[self.local_id]

    @property
    def n(self) -> int:
        """Members that count (alive or suspect), ourselves included."""
        return sum(1 for m in self._members.values() if m.state.counts)

    def get(self, member_id: str) -> Member | None:
        return self._members.get(member_id)

    def all(self) -> list[Member]:
        return sorted(self._members.values(), key=lambda m: m.id)

    def others(self, *states: MemberState) -> list[Member]:
        """Other members in these states, expelled ones left out, by id."""
        return [
            m
            for m in self.all()
            if m.id != self.local_id and m.state in states and m.id not in self._expelled
        ]

    def suspicion(self, member_id: str) -> Suspicion | None:
        return self._suspicions.get(member_id)

    def suspects(self) -> list[tuple[str, Suspicion]]:
        """Members under suspicion, oldest suspicion first."""
        return sorted(self._suspicions.items(), key=lambda item: (item[1].started, item[0]))

    def drain_events(self) -> list[MemberEvent]:
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        times = [s.deadline for s in self._suspicions.values()]
        times += [
            self._changed[m.id] + self.config.dead_retain_s
            for m in self._members.values()
            if not m.state.counts and m.id != self.local_id
        ]
        return min(times, default=None)

    # -- our own changes ---------------------------------------------------
    def change_local(self, member: Member, now: float) -> None:
        """Replaces our own entry (new meta, leaving) and spreads it."""
        self._set(member, now)
        if member.state is LEFT:
            self.queue.push(Dead(member.id, member.incarnation, member.id))
        else:
            self.queue.push(alive_of(member))

    def expel(self, member_id: str, now: float) -> None:
        self._expelled.add(member_id)
        known = self._members.get(member_id)
        if known is None or known.state is DEAD:
            return
        self._suspicions.pop(member_id, None)
        self._set(dataclasses.replace(known, state=DEAD), now)
        self.queue.push(Dead(member_id, known.incarnation, self.local_id))
        self._emit(EventKind.DEAD, member_id, now)

    def tick(self, now: float) -> None:
        for member_id, suspicion in list(self._suspicions.items()):
            if suspicion.deadline <= now:
                member = self._members[member_id]
                self.apply_dead(Dead(member_id, member.incarnation, self.local_id), now)
        for member in list(self._members.values()):
            if member.id == self.local_id or member.state.counts:
                continue
            if self._changed[member.id] + self.config.dead_retain_s <= now:  # as next_deadline()
                del self._members[member.id], self._changed[member.id]
                self.order.remove(member.id)

    # -- the rules ---------------------------------------------------------
    def apply_all(self, updates: Iterable[Update], now: float) -> None:
        for update in updates:
            if isinstance(update, Alive):
                self.apply_alive(update, now)
            elif isinstance(update, Suspect):
                self.apply_suspect(update, now)
            else:
                self.apply_dead(update, now)

    def merge(self, snapshot: Snapshot, now: float) -> None:
        for m in snapshot.members:
            if m.state is ALIVE:
                self.apply_alive(alive_of(m), now)
            elif m.state is LEFT:
                self.apply_dead(Dead(m.id, m.incarnation, m.id), now)
            else:
                self.apply_suspect(Suspect(m.id, m.incarnation, snapshot.sender), now)

    def apply_alive(self, a: Alive, now: float) -> None:
        if a.id == self.local_id:
            local = self.local
            same = (a.address, a.meta) == (local.address, local.meta)
            if a.incarnation > local.incarnation or (a.incarnation == local.incarnation and not same):
                self._refute(a.incarnation)
            return
        if a.id in self._expelled:
            return
        known = self._members.get(a.id)
        if known is not None and a.incarnation <= known.incarnation:
            return
        self._set(Member(a.id, a.address, a.incarnation, ALIVE, a.meta), now)
        self._suspicions.pop(a.id, None)
        self.queue.push(a)
        if known is None:
            self.order.add(a.id)
            self._emit(EventKind.JOIN, a.id, now)
        elif known.state is SUSPECT:
            self._emit(EventKind.ALIVE, a.id, now)
        elif not known.state.counts:
            self._emit(EventKind.JOIN, a.id, now)
        elif (known.address, known.meta) != (a.address, a.meta):
            self._emit(EventKind.UPDATE, a.id, now)

    def apply_suspect(self, s: Suspect, now: float) -> None:
        known = self._members.get(s.id)
        if known is None:
            return
        if s.incarnation < known.incarnation:
            self._contradict(known)
            return
        if s.id == self.local_id:
            if known.state is not LEFT:
                self._refute(s.incarnation)
            return
        suspicion = self._suspicions.get(s.id)
        if suspicion is not None:
            if suspicion.confirm(s.from_id):
                self.queue.push(s)  # spread the confirmation too
            return
        if known.state is not ALIVE:
            return
        n, cfg = self.n, self.config
        min_s = formulas.suspicion_min_s(cfg.suspicion_mult, n, cfg.probe_interval_s)
        self._suspicions[s.id] = Suspicion(
            incarnation=s.incarnation,
            started=now,
            min_s=min_s,
            max_s=formulas.suspicion_max_s(cfg.suspicion_max_mult, min_s),
            expected=formulas.expected_confirmations(cfg.suspicion_mult, n),
            accusers={s.from_id},
        )
        self._set(dataclasses.replace(known, incarnation=s.incarnation, state=SUSPECT), now)
        self.queue.push(s)
        self._emit(EventKind.SUSPECT, s.id, now)

    def apply_dead(self, d: Dead, now: float) -> None:
        known = self._members.get(d.id)
        if known is None:
            return
        if d.incarnation < known.incarnation:
            self._contradict(known)
            return
        if not known.state.counts:
            return
        if d.id == self.local_id:
            self._refute(d.incarnation)
            return
        self._suspicions.pop(d.id, None)
        state = LEFT if d.is_leave else DEAD
        self._set(dataclasses.replace(known, incarnation=d.incarnation, state=state), now)
        self.queue.push(d)
        self._emit(EventKind.LEAVE if d.is_leave else EventKind.DEAD, d.id, now)

    def _contradict(self, known: Member) -> None:
        """A stale accusation (older incarnation) about a member we know
        alive: whoever sent it missed the refutation, so spread the newer
        Alive again. It goes first into our next messages, the reply to
        the accuser included. (memberlist just ignores it, and the accuser's
        suspicion may then time out: a false death.)"""
        if known.state is ALIVE:
            self.queue.push(alive_of(known))

    def _refute(self, accused_incarnation: int) -> None:
        """Someone says we are suspect, dead or different: outbid them."""
        local = self.local
        refuted = dataclasses.replace(local, incarnation=max(local.incarnation, accused_incarnation) + 1)
        self._members[self.local_id] = refuted
        self.queue.push(alive_of(refuted))
        self.awareness.apply(1)
        self.refutations += 1

    def _set(self, member: Member, now: float) -> None:
        self._members[member.id] = member
        self._changed[member.id] = now

    def _emit(self, kind: EventKind, member_id: str, now: float) -> None:
        self._events.append(MemberEvent(kind, self._members[member_id], now))
