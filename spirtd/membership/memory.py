"""An in-memory network for membership tests: many members in one process,
on any Clock (FakeClock for virtual time).

Each message travels with a delay (fixed, or a function of the link for
jitter) and may be lost (seeded, per direction). A lost message, a message
across a partition and a message to or from a killed member vanish: the
caller hears nothing and its own timeout decides, as with SIGKILL or a
black-holed link. A paused member (a process the OS did not schedule for
a while) neither receives nor sends until the pause ends; its messages are
held, not lost. A message to an address nobody registered fails at once
with TransportError, as a refused connection does; so does a request whose
handler raises a SpirtError. Messages sent are counted per address and
kind (replies as "<kind>.reply") for load measurements.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from spirtd.clock import Clock
from spirtd.errors import ConfigError, SpirtError, TransportError
from spirtd.membership.messages import Ack, Gossip, Leave, Ping, PingReq, PingReqReply, Snapshot
from spirtd.membership.transport import InboundHandler

R = TypeVar("R")
DelayFn = Callable[[str, str], float]  # (from address, to address) -> seconds


class MemoryNetwork:
    def __init__(self, clock: Clock, *, delay_s: float | DelayFn = 0.0, drop: float = 0.0, seed: int = 0) -> None:
        if not 0.0 <= drop < 1.0:
            raise ConfigError(f"drop is a probability below 1, not {drop!r}")
        if not callable(delay_s) and delay_s < 0:
            raise ConfigError(f"delay_s cannot be negative, not {delay_s!r}")
        self._clock = clock
        self._delay = delay_s
        self.drop = drop
        self._rng = random.Random(seed)
        self._handlers: dict[str, InboundHandler] = {}
        self._killed: set[str] = set()
        self._paused_until: dict[str, float] = {}
        self._groups: dict[str, int] = {}
        self._sent: dict[str, Counter[str]] = {}

    # -- topology ----------------------------------------------------------
    def register(self, address: str, handler: InboundHandler) -> None:
        self._handlers[address] = handler
        self._killed.discard(address)

    def unregister(self, address: str) -> None:
        self._handlers.pop(address, None)

    def transport(self, address: str) -> MemoryTransport:
        """The client side for the member at `address`."""
        return MemoryTransport(self, address)

    def kill(self, address: str) -> None:
        """From now on the address neither answers nor sends (SIGKILL)."""
        self._killed.add(address)

    def revive(self, address: str) -> None:
        self._killed.discard(address)

    def pause(self, address: str, duration_s: float) -> None:
        """For duration_s, messages to and from the address are held (a
        stalled process): they arrive when the pause ends."""
        until = self._clock.monotonic() + duration_s
        self._paused_until[address] = max(until, self._paused_until.get(address, until))

    def partition(self, *groups: Iterable[str]) -> None:
        """Addresses in different groups cannot reach each other; an address
        in no group reaches everyone. Replaces any earlier partition."""
        self._groups = {address: i for i, group in enumerate(groups) for address in group}

    def heal(self) -> None:
        self._groups = {}

    def can_reach(self, src: str, dst: str) -> bool:
        if src in self._killed or dst in self._killed:
            return False
        a, b = self._groups.get(src), self._groups.get(dst)
        return a is None or b is None or a == b

    # -- load --------------------------------------------------------------
    def sent(self, address: str) -> int:
        return sum(self._sent.get(address, Counter()).values())

    def sent_by_kind(self, address: str) -> dict[str, int]:
        return dict(self._sent.get(address, Counter()))

    def reset_counts(self) -> None:
        self._sent.clear()

    # -- delivery ----------------------------------------------------------
    async def call(
        self, src: str, dst: str, kind: str, invoke: Callable[[InboundHandler], Awaitable[R]]
    ) -> R:
        self._count(src, kind)
        await self._travel(src, dst)
        handler = self._handlers.get(dst)
        if handler is None:
            raise TransportError(f"nothing listens at {dst}")
        try:
            reply = await invoke(handler)
        except SpirtError as exc:
            raise TransportError(f"{dst} refused {kind}: {exc}") from exc
        self._count(dst, f"{kind}.reply")
        await self._travel(dst, src)
        return reply

    async def _travel(self, src: str, dst: str) -> None:
        delay = self._delay(src, dst) if callable(self._delay) else self._delay
        lost = self.drop > 0 and self._rng.random() < self.drop
        if src in self._killed:
            await _forever()
        await self._hold(src)
        await self._clock.sleep(delay)
        if lost or not self.can_reach(src, dst):
            await _forever()
        await self._hold(dst)

    async def _hold(self, address: str) -> None:
        until = self._paused_until.get(address)
        if until is not None and until > self._clock.monotonic():
            await self._clock.sleep(until - self._clock.monotonic())

    def _count(self, address: str, kind: str) -> None:
        self._sent.setdefault(address, Counter())[kind] += 1


async def _forever() -> None:
    """A message that never arrives: waits until the caller gives up."""
    await asyncio.get_running_loop().create_future()


class MemoryTransport:
    """Transport for one member of a MemoryNetwork."""

    def __init__(self, network: MemoryNetwork, address: str) -> None:
        self._network = network
        self.address = address

    async def ping(self, address: str, ping: Ping) -> Ack:
        return await self._network.call(self.address, address, "ping", lambda h: h.handle_ping(ping))

    async def ping_req(self, address: str, req: PingReq) -> PingReqReply:
        return await self._network.call(self.address, address, "ping_req", lambda h: h.handle_ping_req(req))

    async def gossip(self, address: str, gossip: Gossip) -> None:
        await self._network.call(self.address, address, "gossip", lambda h: h.handle_gossip(gossip))

    async def sync(self, address: str, snapshot: Snapshot) -> Snapshot:
        return await self._network.call(self.address, address, "sync", lambda h: h.handle_sync(snapshot))

    async def join(self, address: str, snapshot: Snapshot) -> Snapshot:
        return await self._network.call(self.address, address, "join", lambda h: h.handle_join(snapshot))

    async def leave(self, address: str, leave: Leave) -> None:
        await self._network.call(self.address, address, "leave", lambda h: h.handle_leave(leave))
