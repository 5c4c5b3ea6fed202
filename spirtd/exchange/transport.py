"""How the peers of a job reach each other, as two small protocols.

ExchangeTransport is the client side: send delivers one agreement message
(a lost one is recovered by the agreement's deadlines, so callers may
ignore its TransportError); push streams one contribution and returns once
the receiver took it whole, raising ContributionRefused with the
receiver's reason, or TransportError when the peer cannot be reached.
Transports take no timeouts: the driver wraps every call in a
clock_timeout scope. ExchangeInbound is the server side, implemented by the
driver; a transport's server calls it for each request, with the caller's
identity as its certificate names it.

Implementations: memory.MemoryExchange (in-process, any clock) and the gRPC
transport (spirtd.daemon.exchange_grpc: the spirt.v1.GradientExchange
service).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from spirtd.exchange.messages import Message
from spirtd.exchange.streams import ContributionHeader, Refusal

Chunks = AsyncIterator[tuple[int, bytes | memoryview]]  # (byte offset, data), in order


class ExchangeTransport(Protocol):
    async def send(self, to: str, message: Message) -> None: ...

    async def push(self, to: str, header: ContributionHeader, chunks: Chunks) -> None: ...


class ExchangeInbound(Protocol):
    async def on_message(self, caller: str, message: Message) -> None: ...

    async def on_push(self, caller: str, header: ContributionHeader, chunks: Chunks) -> Refusal | None:
        """Takes a contribution whole (None) or refuses it (nothing kept)."""
        ...
