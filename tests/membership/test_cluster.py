"""Whole clusters of real drivers over the in-memory network, on virtual
time: joining, failure detection, no false deaths under delay, loss and
stalls, partitions and healing, leave, rejoin, expel, message load.

Timing targets (default config): a killed member is marked dead by every
survivor within 3 s; a live member is never marked dead."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from spirtd.membership import EventKind, MembershipConfig, MemberState
from spirtd.membership.sim import SimCluster, address_of

CFG = MembershipConfig.default()
DETECTION_LIMIT_S = 3.0
LAN_JITTER_S = 0.002


def cluster_with(seed: int, *, jitter_s: float = LAN_JITTER_S, drop: float = 0.0, config=CFG) -> SimCluster:
    rng = random.Random(seed)
    return SimCluster(config, seed=seed, delay_s=lambda src, dst: rng.uniform(0.0, jitter_s), drop=drop)


async def test_cluster_eight_join_through_one_seed_and_converge():
    cluster = cluster_with(0)
    members = await cluster.start(8, settle_s=3.0)
    assert cluster.converged()
    for member in members:
        assert Counter(member.view().values()) == {MemberState.ALIVE: 7}
        assert sorted(e.member.id for e in member.events if e.kind is EventKind.JOIN) == sorted(
            m.id for m in members if m is not member
        )
    assert cluster.false_deaths() == []
    await cluster.aclose()


DETECTION_RUNS = [(8, seed) for seed in range(5)] + [(16, seed) for seed in range(3)] + [(32, seed) for seed in range(2)]


@pytest.mark.parametrize("n, seed", DETECTION_RUNS)
async def test_cluster_killed_member_marked_dead_by_every_survivor(n, seed):
    cluster = cluster_with(seed)
    await cluster.start(n, settle_s=5.0)
    victim = random.Random(seed).choice(sorted(cluster.members))
    await cluster.kill(victim)
    await cluster.run_for(DETECTION_LIMIT_S + 1.0)
    times = cluster.detection_times(victim)
    print(f"n={n} seed={seed} detection s: min {min(times.values()):.2f} max {max(times.values()):.2f}")
    assert None not in times.values()
    assert max(times.values()) < DETECTION_LIMIT_S
    # and it stays dead: nobody sees it alive again
    assert all(m.view()[victim] is MemberState.DEAD for m in cluster.live())
    assert cluster.false_deaths() == []
    await cluster.aclose()


# n, one-way delay up to, loss, stalls (per second, seconds), simulated seconds
NO_FALSE_DEATH = [
    pytest.param(8, 0.150, 0.01, None, 300.0, id="8-jitter150ms-loss1%-5min"),
    pytest.param(8, 0.010, 0.005, (1.0, 0.05, 0.2), 300.0, id="8-stalls50-200ms-5min"),
    pytest.param(16, 0.150, 0.02, None, 90.0, id="16-jitter150ms-loss2%"),
    pytest.param(16, 0.010, 0.005, (1.0, 0.05, 0.2), 90.0, id="16-stalls50-200ms"),
]


@pytest.mark.parametrize("n, jitter_s, drop, stalls, seconds", NO_FALSE_DEATH)
async def test_cluster_no_live_member_ever_marked_dead(n, jitter_s, drop, stalls, seconds):
    cluster = cluster_with(7, jitter_s=jitter_s, drop=drop)
    await cluster.start(n, settle_s=5.0)
    if stalls:
        cluster.stall_randomly(*stalls)
    await cluster.run_for(seconds)
    suspicions = sum(1 for m in cluster.members.values() for e in m.events if e.kind is EventKind.SUSPECT)
    refutations = sum(m.state.refutations for m in cluster.members.values())
    print(f"{n} members, {seconds:.0f} s: {suspicions} suspect events, {refutations} refutations")
    assert cluster.false_deaths() == []
    assert refutations > 0  # the scenario did put members under suspicion
    await cluster.aclose()


async def test_cluster_partition_each_side_kills_the_other_and_heals():
    cluster = cluster_with(3)
    members = await cluster.start(8, settle_s=3.0)
    left, right = members[:4], members[4:]
    cluster.network.partition([m.address for m in left], [m.address for m in right])
    await cluster.run_for(10.0)
    for side, other in ((left, right), (right, left)):
        for member in side:
            view = member.view()
            assert {view[o.id] for o in other} == {MemberState.DEAD}
            assert {view[s.id] for s in side if s is not member} == {MemberState.ALIVE}
    healed_at = cluster.now
    cluster.network.heal()
    while not cluster.converged() and cluster.now - healed_at < 2 * CFG.push_pull_interval_s:
        await cluster.run_for(0.5)
    print(f"partition healed in {cluster.now - healed_at:.1f} s")
    assert cluster.converged()
    for member in members:  # back through higher incarnations
        rejoined = {e.member.id for e in member.events if e.kind is EventKind.JOIN and e.time >= healed_at}
        assert rejoined == {o.id for o in (right if member in left else left)}
        assert member.state.local.incarnation > 0
    await cluster.aclose()


async def test_cluster_voluntary_leave_is_left_everywhere_not_dead():
    cluster = cluster_with(4)
    await cluster.start(8, settle_s=3.0)
    await cluster.leave("m05")
    assert cluster.members["m05"].driver.phase.value == "closed"
    await cluster.run_for(2.0)
    for member in cluster.live():
        assert member.view()["m05"] is MemberState.LEFT
        kinds = [e.kind for e in member.events if e.member.id == "m05"]
        assert EventKind.LEAVE in kinds and EventKind.DEAD not in kinds
    await cluster.run_for(CFG.dead_retain_s)
    assert all("m05" not in m.view() for m in cluster.live())  # forgotten
    await cluster.aclose()


async def test_cluster_killed_member_restarts_and_rejoins_with_higher_incarnation():
    cluster = cluster_with(5)
    await cluster.start(6, settle_s=3.0)
    await cluster.kill("m03")
    await cluster.run_for(4.0)
    assert all(m.view()["m03"] is MemberState.DEAD for m in cluster.live())
    restarted_at = cluster.now
    cluster.network.revive(address_of("m03"))
    back = await cluster.add("m03")  # a new process: incarnation 0 again
    await cluster.join("m03", ["m00"])
    await cluster.run_for(3.0)
    assert cluster.converged()
    assert back.state.local.incarnation > 0  # it refuted its own death
    for member in cluster.live():
        if member is not back:
            assert member.first(EventKind.JOIN, "m03", after=restarted_at) is not None
    await cluster.aclose()


async def test_cluster_expelled_member_stays_dead_though_it_lives():
    cluster = cluster_with(6)
    await cluster.start(5, settle_s=3.0)
    for member in cluster.live():
        if member.id != "m04":
            member.driver.expel("m04")  # its certificate was revoked everywhere
    await cluster.run_for(15.0)  # m04 keeps probing, gossiping and refuting
    for member in cluster.live():
        if member.id != "m04":
            assert member.view()["m04"] is MemberState.DEAD
    assert cluster.members["m04"].state.local.incarnation > 0
    await cluster.aclose()


async def test_cluster_message_load_per_member_is_flat_in_n():
    rates = {}
    for n in (8, 16, 32):
        cluster = cluster_with(n)
        await cluster.start(n, settle_s=CFG.push_pull_interval_s)
        cluster.network.reset_counts()
        started = cluster.now
        await cluster.run_for(2 * CFG.push_pull_interval_s)
        seconds = cluster.now - started
        rates[n] = sum(cluster.network.sent(m.address) for m in cluster.live()) / n / seconds
        await cluster.aclose()
    print("messages/s/member (requests + replies):", {n: round(r, 2) for n, r in rates.items()})
    assert max(rates.values()) / min(rates.values()) < 1.1
    # one probe (ping + ack) per probe interval, plus push-pull
    assert rates[8] == pytest.approx(2 / CFG.probe_interval_s, rel=0.1)
