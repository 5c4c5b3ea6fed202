"""Membership over gRPC: the client side (GrpcTransport) and the servers
(MembershipService, HeartbeatService) that hand requests to the driver.

The cluster's revocation list rides along: in every join/sync snapshot, and
in gossip for a few rounds after it changes (RevocationSpreader).
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, TypeVar

import grpc

from spirtd.api.spirt.v1 import heartbeat_pb2_grpc, membership_pb2, membership_pb2_grpc
from spirtd.errors import MembershipError, SecurityError, TransportError
from spirtd.membership import messages as m
from spirtd.membership.transport import InboundHandler
from spirtd.daemon import wire
from spirtd.rpc.guard import CRL_TRAILER, Guard
from spirtd.rpc.server import ChannelPool
from spirtd.security.revocation import RevocationList

T = TypeVar("T")
_log = logging.getLogger("spirtd.membership")


class RevocationSpreader:
    """Adopts revocation lists that arrive, and puts the one in force on
    outgoing gossip for a few rounds after it changes."""

    def __init__(self, guard: Guard, rounds: int, on_adopted: Callable[[RevocationList], None]) -> None:
        self._guard = guard
        self._rounds = rounds
        self._remaining = rounds if guard.revocations is not None else 0
        self._on_adopted = on_adopted

    def current_der(self) -> bytes | None:
        crl = self._guard.revocations
        return crl.der if crl is not None else None

    def piggyback(self) -> bytes | None:
        if self._remaining <= 0:
            return None
        self._remaining -= 1
        return self.current_der()

    def receive(self, der: bytes) -> None:
        if not der:
            return
        try:
            crl = RevocationList.from_der(der)
            if not self._guard.adopt(crl):
                return
        except SecurityError as exc:
            _log.warning("ignored a revocation list from a peer: %s", exc)
            return
        self._remaining = self._rounds
        self._on_adopted(crl)


def _status(exc: grpc.aio.AioRpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"


class GrpcTransport:
    """Transport over the spirt.v1 Membership and Heartbeat services.

    resolve_id names the member at an address (its certificate must carry
    that id); an address no member has yet (a seed) must be in the
    certificate of whoever answers there."""

    def __init__(self, channels: ChannelPool, resolve_id: Callable[[str], str | None],
                 revocations: RevocationSpreader) -> None:  # fmt: skip
        self._channels = channels
        self._resolve_id = resolve_id
        self._revocations = revocations

    async def _call(self, address: str, peer_id: str | None, call: Callable[[grpc.aio.Channel], Awaitable[T]]) -> T:
        try:
            return await call(self._channels.get(address, peer_id))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                for key, value in exc.trailing_metadata() or ():
                    if key == CRL_TRAILER and isinstance(value, bytes):
                        self._revocations.receive(value)  # checked against the CA there
            raise TransportError(f"{peer_id or address}: {_status(exc)}") from exc

    async def ping(self, address: str, ping: m.Ping) -> m.Ack:
        reply = await self._call(address, ping.target,
                                 lambda ch: heartbeat_pb2_grpc.HeartbeatStub(ch).Ping(wire.ping_to_wire(ping)))  # fmt: skip
        return wire.ack_from_wire(reply)

    async def ping_req(self, address: str, req: m.PingReq) -> m.PingReqReply:
        reply = await self._call(address, self._resolve_id(address),
                                 lambda ch: heartbeat_pb2_grpc.HeartbeatStub(ch).PingReq(wire.ping_req_to_wire(req)))  # fmt: skip
        return wire.ping_req_reply_from_wire(reply)

    async def gossip(self, address: str, gossip: m.Gossip) -> None:
        request = membership_pb2.GossipRequest(sender=gossip.sender, updates=wire.updates_to_wire(gossip.updates))
        crl = self._revocations.piggyback()
        if crl:
            request.revocations.crl_der = crl
        await self._call(address, self._resolve_id(address),
                         lambda ch: membership_pb2_grpc.MembershipStub(ch).Gossip(request))  # fmt: skip

    async def _push_pull(self, address: str, snapshot: m.Snapshot, join: bool) -> m.Snapshot:
        state = wire.snapshot_to_wire(snapshot, self._revocations.current_der())

        async def call(ch: grpc.aio.Channel):
            stub = membership_pb2_grpc.MembershipStub(ch)
            if join:
                return await stub.Join(membership_pb2.JoinRequest(state=state))
            return await stub.Sync(membership_pb2.SyncRequest(state=state))

        reply = await self._call(address, self._resolve_id(address), call)
        self._revocations.receive(reply.state.revocations.crl_der)
        try:
            return wire.snapshot_from_wire(reply.state)
        except wire.WireError as exc:
            raise TransportError(f"{address} sent a snapshot that cannot be read: {exc}") from exc

    async def sync(self, address: str, snapshot: m.Snapshot) -> m.Snapshot:
        return await self._push_pull(address, snapshot, join=False)

    async def join(self, address: str, snapshot: m.Snapshot) -> m.Snapshot:
        return await self._push_pull(address, snapshot, join=True)

    async def leave(self, address: str, leave: m.Leave) -> None:
        request = membership_pb2.LeaveRequest(sender=leave.sender, incarnation=leave.incarnation)
        await self._call(address, self._resolve_id(address),
                         lambda ch: membership_pb2_grpc.MembershipStub(ch).Leave(request))  # fmt: skip


async def _handle(context: grpc.aio.ServicerContext, work: Awaitable[T]) -> T:
    """Runs a handler; a refusal by the membership layer becomes a status."""
    try:
        return await work
    except MembershipError as exc:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    except wire.WireError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    raise AssertionError("unreachable")


class HeartbeatService(heartbeat_pb2_grpc.HeartbeatServicer):
    def __init__(self, handler: Callable[[], InboundHandler], guard: Guard) -> None:
        self._handler = handler
        self._guard = guard

    async def Ping(self, request, context):
        await self._guard.check_sender(request.sender, context)
        ack = await _handle(context, self._handler().handle_ping(wire.ping_from_wire(request)))
        return wire.ack_to_wire(ack)

    async def PingReq(self, request, context):
        await self._guard.check_sender(request.sender, context)
        reply = await _handle(context, self._handler().handle_ping_req(wire.ping_req_from_wire(request)))
        return wire.ping_req_reply_to_wire(reply)


class MembershipService(membership_pb2_grpc.MembershipServicer):
    def __init__(self, handler: Callable[[], InboundHandler], guard: Guard, revocations: RevocationSpreader) -> None:
        self._handler = handler
        self._guard = guard
        self._revocations = revocations

    async def _push_pull(self, request, context, join: bool) -> membership_pb2.StateSnapshot:
        await self._guard.check_sender(request.state.sender, context)
        self._revocations.receive(request.state.revocations.crl_der)
        snapshot = await _handle(context, _decode_snapshot(request.state))
        handler = self._handler()
        reply = await _handle(context, handler.handle_join(snapshot) if join else handler.handle_sync(snapshot))
        return wire.snapshot_to_wire(reply, self._revocations.current_der())

    async def Join(self, request, context):
        return membership_pb2.JoinResponse(state=await self._push_pull(request, context, join=True))

    async def Sync(self, request, context):
        return membership_pb2.SyncResponse(state=await self._push_pull(request, context, join=False))

    async def Gossip(self, request, context):
        await self._guard.check_sender(request.sender, context)
        self._revocations.receive(request.revocations.crl_der)
        updates = await _handle(context, _decode_updates(request.updates))
        await _handle(context, self._handler().handle_gossip(m.Gossip(request.sender, updates)))
        return membership_pb2.GossipResponse()

    async def Leave(self, request, context):
        await self._guard.check_sender(request.sender, context)
        await _handle(context, self._handler().handle_leave(m.Leave(request.sender, request.incarnation)))
        return membership_pb2.LeaveResponse()


async def _decode_snapshot(state: membership_pb2.StateSnapshot) -> m.Snapshot:
    return wire.snapshot_from_wire(state)


async def _decode_updates(updates) -> tuple[m.Update, ...]:
    return wire.updates_from_wire(updates)
