"""Membership messages to and from their spirt.v1 protobufs. Pure functions."""

from __future__ import annotations

from typing import Iterable

from spirtd.api.spirt.v1 import heartbeat_pb2 as hb
from spirtd.api.spirt.v1 import membership_pb2 as mb
from spirtd.errors import WireError
from spirtd.membership import messages as m

STATE_TO_WIRE = {
    m.MemberState.ALIVE: mb.ALIVE,
    m.MemberState.SUSPECT: mb.SUSPECT,
    m.MemberState.DEAD: mb.DEAD,
    m.MemberState.LEFT: mb.LEFT,
}
STATE_FROM_WIRE = {v: k for k, v in STATE_TO_WIRE.items()}


def update_to_wire(u: m.Update) -> mb.Update:
    if isinstance(u, m.Alive):
        return mb.Update(alive=mb.Alive(id=u.id, address=u.address, incarnation=u.incarnation, meta=dict(u.meta)))
    if isinstance(u, m.Suspect):
        return mb.Update(suspect=mb.Suspect(id=u.id, incarnation=u.incarnation, **{"from": u.from_id}))
    return mb.Update(dead=mb.Dead(id=u.id, incarnation=u.incarnation, **{"from": u.from_id}))


def update_from_wire(u: mb.Update) -> m.Update:
    kind = u.WhichOneof("kind")
    if kind == "alive":
        return m.Alive(u.alive.id, u.alive.address, u.alive.incarnation, dict(u.alive.meta))
    if kind == "suspect":
        return m.Suspect(u.suspect.id, u.suspect.incarnation, getattr(u.suspect, "from"))
    if kind == "dead":
        return m.Dead(u.dead.id, u.dead.incarnation, getattr(u.dead, "from"))
    raise WireError("an update with no kind")


def updates_to_wire(updates: Iterable[m.Update]) -> list[mb.Update]:
    return [update_to_wire(u) for u in updates]


def updates_from_wire(updates: Iterable[mb.Update]) -> tuple[m.Update, ...]:
    return tuple(update_from_wire(u) for u in updates)


def member_to_wire(x: m.Member) -> mb.Member:
    return mb.Member(id=x.id, address=x.address, incarnation=x.incarnation,
                     state=STATE_TO_WIRE[x.state], meta=dict(x.meta))  # fmt: skip


def member_from_wire(x: mb.Member) -> m.Member:
    if x.state not in STATE_FROM_WIRE:
        raise WireError(f"member {x.id!r} has an unknown state {x.state}")
    return m.Member(x.id, x.address, x.incarnation, STATE_FROM_WIRE[x.state], dict(x.meta))


def snapshot_to_wire(s: m.Snapshot, crl_der: bytes | None) -> mb.StateSnapshot:
    out = mb.StateSnapshot(sender=s.sender, members=[member_to_wire(x) for x in s.members])
    if crl_der:
        out.revocations.crl_der = crl_der
    return out


def snapshot_from_wire(s: mb.StateSnapshot) -> m.Snapshot:
    return m.Snapshot(s.sender, tuple(member_from_wire(x) for x in s.members))


def ping_to_wire(p: m.Ping) -> hb.PingRequest:
    return hb.PingRequest(sender=p.sender, seq=p.seq, target=p.target, updates=updates_to_wire(p.updates))


def ping_from_wire(p: hb.PingRequest) -> m.Ping:
    return m.Ping(p.sender, p.seq, p.target, updates_from_wire(p.updates))


def ack_to_wire(a: m.Ack) -> hb.PingResponse:
    return hb.PingResponse(sender=a.sender, seq=a.seq, updates=updates_to_wire(a.updates))


def ack_from_wire(a: hb.PingResponse) -> m.Ack:
    return m.Ack(a.sender, a.seq, updates_from_wire(a.updates))


def ping_req_to_wire(r: m.PingReq) -> hb.PingReqRequest:
    return hb.PingReqRequest(sender=r.sender, seq=r.seq, target=r.target, target_address=r.target_address,
                             updates=updates_to_wire(r.updates))  # fmt: skip


def ping_req_from_wire(r: hb.PingReqRequest) -> m.PingReq:
    return m.PingReq(r.sender, r.seq, r.target, r.target_address, updates_from_wire(r.updates))


def ping_req_reply_to_wire(r: m.PingReqReply) -> hb.PingReqResponse:
    return hb.PingReqResponse(sender=r.sender, seq=r.seq, acked=r.acked, updates=updates_to_wire(r.updates))


def ping_req_reply_from_wire(r: hb.PingReqResponse) -> m.PingReqReply:
    return m.PingReqReply(r.sender, r.seq, r.acked, updates_from_wire(r.updates))
