"""MembershipDriver on its own: lifecycle, join and its retries, handlers,
subscriptions, stats. Everything on a FakeClock."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from spirtd.errors import ConfigError, MembershipError
from spirtd.membership import (
    DriverPhase,
    EventKind,
    MembershipConfig,
    MembershipDriver,
    MemberState,
    Ping,
)
from spirtd.membership.sim import SimCluster, address_of

CFG = MembershipConfig.default()


async def test_driver_join_through_seed_returns_member_count():
    cluster = SimCluster(CFG)
    await cluster.add("a")
    await cluster.add("b")
    assert await cluster.join("b", ["a"]) == 2
    await cluster.run_for(1.0)
    assert cluster.converged()
    assert [e.kind for e in cluster.members["a"].events] == [EventKind.JOIN]
    await cluster.aclose()


async def test_driver_join_retries_until_a_seed_answers():
    cluster = SimCluster(CFG)
    await cluster.add("b")
    job = asyncio.ensure_future(cluster.members["b"].driver.join([address_of("a")]))
    await cluster.step()  # nobody at a yet: refused at once, then a pause
    assert not job.done()
    await cluster.add("a")
    while not job.done():
        await cluster.step()
    assert job.result() == 2
    assert cluster.now == pytest.approx(CFG.join_retry_interval_s, abs=0.01)
    assert cluster.members["b"].driver.stats().failed == {"join": 1}
    await cluster.aclose()


async def test_driver_join_gives_up_after_attempts():
    cluster = SimCluster(CFG)
    await cluster.add("a")
    await cluster.add("b")
    cluster.network.kill(address_of("a"))  # never answers: each try times out
    with pytest.raises(MembershipError, match="no seed answered"):
        await cluster.join("b", ["a"])
    spent = CFG.join_attempts * CFG.rpc_timeout_s + (CFG.join_attempts - 1) * CFG.join_retry_interval_s
    assert cluster.now == pytest.approx(spent, abs=0.05)  # each phase ends on a 5 ms step
    await cluster.aclose()


async def test_driver_join_needs_another_seed():
    cluster = SimCluster(CFG)
    await cluster.add("a")
    with pytest.raises(ConfigError):
        await cluster.members["a"].driver.join([address_of("a")])
    await cluster.aclose()


async def test_driver_config_must_be_the_states():
    cluster = SimCluster(CFG)
    member = await cluster.add("a")
    with pytest.raises(ConfigError):
        MembershipDriver(member.state, cluster.network.transport("x"), cluster.clock, MembershipConfig.local())
    await cluster.aclose()


async def test_driver_lifecycle_close_is_idempotent_and_final():
    cluster = SimCluster(CFG)
    member = await cluster.add("a")
    driver = member.driver
    assert driver.phase is DriverPhase.RUNNING
    with pytest.raises(MembershipError):
        await driver.__aenter__()
    await driver.aclose()
    await driver.aclose()
    assert driver.phase is DriverPhase.CLOSED
    with pytest.raises(MembershipError, match="closed"):
        await driver.handle_ping(Ping("x", 1, "a"))
    with pytest.raises(MembershipError):
        await driver.join([address_of("b")])
    await driver.leave()  # nothing to do once closed


async def test_driver_close_does_not_wait_for_sends_in_flight():
    cluster = SimCluster(CFG)
    await cluster.start(3, settle_s=1.0)
    cluster.network.kill(address_of("m02"))
    await cluster.run_for(0.5)  # probes and gossip toward m02 now hang
    member = cluster.members["m00"]
    before = cluster.now
    await member.driver.aclose()
    assert cluster.now == before  # closed without virtual time passing
    await cluster.aclose()


async def test_driver_subscribers_each_get_every_event_and_slow_ones_drop_oldest():
    config = dataclasses.replace(CFG, subscriber_queue_max=2)
    cluster = SimCluster(config)
    a = await cluster.add("a")
    fast, slow = a.driver.subscribe(), a.driver.subscribe()
    seen = []

    async def consume():
        async for event in fast:
            seen.append((event.kind, event.member.id))

    consumer = asyncio.ensure_future(consume())
    for name in "bcde":
        await cluster.add(name)
        await cluster.join(name, ["a"])
    await cluster.run_for(0.5)
    assert sorted(seen) == [(EventKind.JOIN, name) for name in "bcde"]
    assert [e.member.id for e in slow.pending()] == ["d", "e"]
    assert slow.dropped == 2
    assert a.driver.stats().events_dropped == 2
    await a.driver.aclose()
    await asyncio.wait_for(consumer, timeout=1.0)  # iteration ended with the driver
    await cluster.aclose()


async def test_driver_stats_and_expel():
    cluster = SimCluster(CFG)
    await cluster.start(3, settle_s=2.0)
    a = cluster.members["m00"]
    stats = a.driver.stats()
    assert stats.sent["ping"] >= 4 and stats.received["ping"] >= 4
    assert stats.awareness == 0 and stats.incarnation == 0
    a.driver.expel("m02")
    await cluster.step()
    assert a.view()["m02"] is MemberState.DEAD
    assert [e.kind for e in a.events if e.member.id == "m02"] == [EventKind.JOIN, EventKind.DEAD]
    await cluster.aclose()
