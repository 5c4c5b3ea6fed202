"""How members reach each other, as two small protocols.

Transport is the client side: one method per message, each raising
TransportError when the peer cannot be reached or refuses (a
MembershipError raised by the peer's handler arrives as a TransportError).
Transports take no timeouts: the driver wraps every call in a clock_timeout
scope. InboundHandler is the server side, implemented by MembershipDriver;
a transport's server calls it for each request that arrives.

Implementations: memory.MemoryNetwork (in-process, virtual time) and the
gRPC transport (spirtd.daemon.membership_grpc: the spirt.v1.Membership and
spirt.v1.Heartbeat services).
"""

from __future__ import annotations

from typing import Protocol

from spirtd.membership.messages import Ack, Gossip, Leave, Ping, PingReq, PingReqReply, Snapshot


class Transport(Protocol):
    async def ping(self, address: str, ping: Ping) -> Ack: ...

    async def ping_req(self, address: str, req: PingReq) -> PingReqReply: ...

    async def gossip(self, address: str, gossip: Gossip) -> None: ...

    async def sync(self, address: str, snapshot: Snapshot) -> Snapshot: ...

    async def join(self, address: str, snapshot: Snapshot) -> Snapshot: ...

    async def leave(self, address: str, leave: Leave) -> None: ...


class InboundHandler(Protocol):
    async def handle_ping(self, ping: Ping) -> Ack: ...

    async def handle_ping_req(self, req: PingReq) -> PingReqReply: ...

    async def handle_gossip(self, gossip: Gossip) -> None: ...

    async def handle_sync(self, snapshot: Snapshot) -> Snapshot: ...

    async def handle_join(self, snapshot: Snapshot) -> Snapshot: ...

    async def handle_leave(self, leave: Leave) -> None: ...
