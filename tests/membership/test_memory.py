"""MemoryNetwork: delays, loss, partitions, kills, pauses, refusals, counts."""

from __future__ import annotations

import asyncio

import pytest

from spirtd.clock import FakeClock
from spirtd.errors import ConfigError, MembershipError, TransportError
from spirtd.membership import Ack, Gossip, MemoryNetwork, Ping, Snapshot, clock_timeout


class Echo:
    """An InboundHandler that answers pings and records what it got."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.got: list[object] = []

    async def handle_ping(self, ping):
        self.got.append(ping)
        if ping.target != self.name:
            raise MembershipError("not me")
        return Ack(self.name, ping.seq)

    async def handle_ping_req(self, req):
        raise NotImplementedError

    async def handle_gossip(self, gossip):
        self.got.append(gossip)

    async def handle_sync(self, snapshot):
        self.got.append(snapshot)
        return Snapshot(self.name, ())

    handle_join = handle_sync

    async def handle_leave(self, leave):
        self.got.append(leave)


async def _run(clock: FakeClock, coro, *, advance: float = 0.0, step: float = 0.001):
    """Runs coro while the fake clock moves on by `advance` seconds."""
    task = asyncio.ensure_future(coro)
    moved = 0.0
    while True:
        for _ in range(10):
            await asyncio.sleep(0)
        if task.done() or moved >= advance:
            break
        clock.advance(step)
        moved += step
    return task


def _net(**kwargs):
    clock = FakeClock()
    net = MemoryNetwork(clock, **kwargs)
    handlers = {name: Echo(name) for name in "abc"}
    for name, handler in handlers.items():
        net.register(name, handler)
    return clock, net, handlers


async def test_memory_round_trip_takes_two_delays():
    clock, net, handlers = _net(delay_s=0.01)
    task = await _run(clock, net.transport("a").ping("b", Ping("a", 1, "b")))
    clock.advance(0.01)  # the request arrives
    await _run(clock, asyncio.sleep(0))
    assert handlers["b"].got == [Ping("a", 1, "b")] and not task.done()
    clock.advance(0.0099)
    await _run(clock, asyncio.sleep(0))
    assert not task.done()
    clock.advance(0.0001)  # the ack arrives
    await _run(clock, asyncio.sleep(0))
    assert task.result() == Ack("b", 1)


async def test_memory_delay_function_gets_the_link():
    links = []
    clock, net, _ = _net(delay_s=lambda src, dst: links.append((src, dst)) or 0.0)
    await (await _run(clock, net.transport("a").gossip("c", Gossip("a", ()))))
    assert links == [("a", "c"), ("c", "a")]


async def test_memory_unregistered_address_refused_at_once():
    clock, net, _ = _net()
    with pytest.raises(TransportError, match="nothing listens"):
        await net.transport("a").ping("zz", Ping("a", 1, "zz"))


async def test_memory_handler_refusal_becomes_transport_error():
    clock, net, _ = _net()
    with pytest.raises(TransportError, match="not me"):
        await net.transport("a").ping("b", Ping("a", 1, "c"))


@pytest.mark.parametrize("cut", ["kill target", "kill sender", "partition", "drop"])
async def test_memory_lost_messages_are_never_answered(cut):
    clock, net, handlers = _net(drop=0.999 if cut == "drop" else 0.0, seed=1)
    if cut == "kill target":
        net.kill("b")
    elif cut == "kill sender":
        net.kill("a")
    elif cut == "partition":
        net.partition(["a"], ["b", "c"])
    with pytest.raises(TimeoutError):
        async with clock_timeout(clock, 1.0):
            await (await _run(clock, net.transport("a").ping("b", Ping("a", 1, "b")), advance=1.01, step=0.1))
    assert net.sent("a") == 1


async def test_memory_partition_heal_and_outsiders():
    clock, net, _ = _net()
    net.partition(["a"], ["b"])
    assert not net.can_reach("a", "b") and net.can_reach("a", "c") and net.can_reach("c", "b")
    net.heal()
    assert net.can_reach("a", "b")
    net.kill("c")
    assert not net.can_reach("a", "c")
    net.revive("c")
    assert net.can_reach("a", "c")


async def test_memory_pause_holds_messages_until_it_ends():
    clock, net, _ = _net()
    net.pause("b", 0.5)
    task = await _run(clock, net.transport("a").ping("b", Ping("a", 1, "b")), advance=0.45, step=0.05)
    assert not task.done()
    task = await _run(clock, asyncio.shield(task), advance=0.1, step=0.05)
    assert task.result() == Ack("b", 1)


async def test_memory_counts_requests_and_replies():
    clock, net, _ = _net()
    t = net.transport("a")
    await t.ping("b", Ping("a", 1, "b"))
    await t.gossip("c", Gossip("a", ()))
    await t.sync("b", Snapshot("a", ()))
    assert net.sent_by_kind("a") == {"ping": 1, "gossip": 1, "sync": 1}
    assert net.sent_by_kind("b") == {"ping.reply": 1, "sync.reply": 1}
    assert net.sent("b") == 2
    net.reset_counts()
    assert net.sent("a") == 0


@pytest.mark.parametrize("kwargs", [{"drop": 1.0}, {"drop": -0.1}, {"delay_s": -1.0}])
def test_memory_bad_settings_refused(kwargs):
    with pytest.raises(ConfigError):
        MemoryNetwork(FakeClock(), **kwargs)
