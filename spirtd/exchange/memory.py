"""An in-memory network for exchange tests: many peers in one process, on
any Clock (FakeClock for virtual time), with the faults a real network has.

A message (send) travels with a delay and may be lost (seeded); across a
partition, or to or from a killed peer, it vanishes. A push to a killed
peer fails at once with TransportError, as a refused connection does; a
push across a partition hangs until the caller's timeout, as a black-holed
link does. Bytes pushed are counted per peer, sent and received.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterable

from spirtd.clock import Clock
from spirtd.errors import ConfigError, ContributionRefused, TransportError
from spirtd.exchange.messages import Message
from spirtd.exchange.streams import ContributionHeader
from spirtd.exchange.transport import Chunks, ExchangeInbound


class MemoryExchange:
    def __init__(self, clock: Clock, *, delay_s: float = 0.0, drop: float = 0.0, seed: int = 0) -> None:
        if not 0.0 <= drop < 1.0:
            raise ConfigError(f"drop is a probability below 1, not {drop!r}")
        if delay_s < 0:
            raise ConfigError(f"delay_s cannot be negative, not {delay_s!r}")
        self._clock = clock
        self.delay_s = delay_s
        self.drop = drop
        self._rng = random.Random(seed)
        self._peers: dict[str, ExchangeInbound] = {}
        self._killed: set[str] = set()
        self._groups: dict[str, int] = {}
        self.sent_bytes: Counter[str] = Counter()
        self.received_bytes: Counter[str] = Counter()
        self.messages: Counter[str] = Counter()  # by kind

    def register(self, peer: str, inbound: ExchangeInbound) -> None:
        self._peers[peer] = inbound
        self._killed.discard(peer)

    def transport(self, peer: str) -> "MemoryExchangeTransport":
        return MemoryExchangeTransport(self, peer)

    def kill(self, peer: str) -> None:
        self._killed.add(peer)

    def partition(self, *groups: Iterable[str]) -> None:
        """Peers in different groups cannot reach each other; peers in no
        group reach everyone not in a group."""
        self._groups = {p: i for i, group in enumerate(groups) for p in group}

    def heal(self) -> None:
        self._groups = {}

    def _cut(self, a: str, b: str) -> bool:
        return self._groups.get(a, -1) != self._groups.get(b, -1) and (a in self._groups or b in self._groups)

    def _lost(self, a: str, b: str) -> bool:
        return a in self._killed or b in self._killed or self._cut(a, b) or b not in self._peers

    async def deliver(self, sender: str, to: str, message: Message) -> None:
        self.messages[type(message).__name__] += 1
        if self._lost(sender, to) or (self.drop and self._rng.random() < self.drop):
            return
        if self.delay_s:
            await self._clock.sleep(self.delay_s)
        if not self._lost(sender, to):
            await self._peers[to].on_message(sender, message)

    async def push(self, sender: str, to: str, header: ContributionHeader, chunks: Chunks) -> None:
        if sender in self._killed or to in self._killed or to not in self._peers:
            raise TransportError(f"{to}: connection refused")
        if self._cut(sender, to):
            await asyncio.Event().wait()  # black-holed: the caller's timeout decides
        if self.delay_s:
            await self._clock.sleep(self.delay_s)

        async def counted() -> Chunks:
            async for offset, data in chunks:
                if sender in self._killed or to in self._killed:
                    raise TransportError(f"{to}: the connection broke")
                self.sent_bytes[sender] += len(data)
                self.received_bytes[to] += len(data)
                yield offset, data

        refusal = await self._peers[to].on_push(sender, header, counted())
        if refusal is not None:
            raise ContributionRefused(f"{to} refused the contribution: {refusal.reason}", refusal.kind.value)


class MemoryExchangeTransport:
    def __init__(self, network: MemoryExchange, peer: str) -> None:
        self._network = network
        self.peer = peer

    async def send(self, to: str, message: Message) -> None:
        await self._network.deliver(self.peer, to, message)

    async def push(self, to: str, header: ContributionHeader, chunks: Chunks) -> None:
        await self._network.push(self.peer, to, header, chunks)
