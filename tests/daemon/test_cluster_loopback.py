"""Several real `spirtd run` processes on loopback: joining, agreeing,
noticing a SIGKILL, leaving on SIGTERM, coming back, and the Control API."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess

import pytest

from spirtd.api.spirt.v1 import control_pb2
from tests.daemon.peers import SPIRTCTL, Control, eventually

CONVERGE_S = 15.0
# The benchmark holds the 3 s detection target; tests leave room for a busy CI.
DETECT_S = 10.0


async def states(peers_list, certs, subject: str) -> dict[str, str]:
    """What each peer thinks of subject."""
    out = {}
    for peer in peers_list:
        control = Control(peer.address, certs)
        try:
            out[peer.id] = (await control.members()).get(subject, "unknown")
        finally:
            await control.aclose()
    return out


async def all_see(peers_list, certs, subject: str, state: str, timeout_s: float) -> None:
    async def check():
        seen = await states(peers_list, certs, subject)
        return all(v == state for v in seen.values()) and seen

    await eventually(check, timeout_s, f"every peer to see {subject} {state}")


def start_cluster(peers, n: int):
    first = peers.start("node1")
    rest = [peers.start(f"node{i}", seeds=[first.address]) for i in range(2, n + 1)]
    return [first, *rest]


async def test_peers_join_through_a_seed_and_agree(peers, certs):
    cluster = start_cluster(peers, 3)
    for subject in ("node1", "node2", "node3"):
        await all_see(cluster, certs, subject, "alive", CONVERGE_S)
    control = Control(cluster[1].address, certs)
    status = await control.status()
    await control.aclose()
    assert status.id == "node2" and status.store_backend == "native"
    assert status.member_count == 3 and status.alive_count == 3
    assert status.address == cluster[1].address and status.version


async def test_sigkilled_peer_is_marked_dead_by_every_survivor(peers, certs):
    cluster = start_cluster(peers, 4)
    await all_see(cluster, certs, "node4", "alive", CONVERGE_S)
    victim = cluster[3]
    victim.signal(signal.SIGKILL)
    victim.wait()
    await all_see(cluster[:3], certs, "node4", "dead", DETECT_S)
    for peer in cluster[:3]:
        kinds = [line["event"] for line in peer.log_lines() if line.get("member") == "node4"]
        assert kinds[0] == "join" and kinds[-1] == "dead", kinds


async def test_sigterm_leaves_the_cluster_and_exits_0(peers, certs):
    cluster = start_cluster(peers, 3)
    await all_see(cluster, certs, "node3", "alive", CONVERGE_S)
    cluster[2].signal(signal.SIGTERM)
    assert cluster[2].wait() == 0
    await all_see(cluster[:2], certs, "node3", "left", DETECT_S)
    assert any("announced leaving" in line.get("msg", "") for line in cluster[2].log_lines())


async def test_a_peer_killed_and_restarted_comes_back_alive(peers, certs):
    cluster = start_cluster(peers, 3)
    await all_see(cluster, certs, "node3", "alive", CONVERGE_S)
    control = Control(cluster[0].address, certs)
    before = (await control.stub.Members(control_pb2.MembersRequest())).members
    incarnation = {m.id: m.incarnation for m in before}["node3"]
    cluster[2].signal(signal.SIGKILL)
    cluster[2].wait()
    await all_see(cluster[:2], certs, "node3", "dead", DETECT_S)
    peers.restart(cluster[2])
    await all_see(cluster, certs, "node3", "alive", CONVERGE_S)
    after = (await control.stub.Members(control_pb2.MembersRequest())).members
    await control.aclose()
    assert {m.id: m.incarnation for m in after}["node3"] > incarnation


async def test_control_streams_membership_events(peers, certs):
    first = peers.start("node1")
    control = Control(first.address, certs)
    events: list[tuple[str, str]] = []

    async def watch():
        request = control_pb2.WatchMembershipRequest(include_current=True)
        async for event in control.stub.WatchMembership(request):
            events.append((control_pb2.MembershipEvent.Kind.Name(event.kind).lower(), event.member.id))

    watcher = asyncio.create_task(watch())
    try:
        second = peers.start("node2", seeds=[first.address])
        await eventually(lambda: _async(("join", "node2") in events), CONVERGE_S, "a join event")
        second.signal(signal.SIGKILL)
        second.wait()
        await eventually(lambda: _async(("dead", "node2") in events), DETECT_S, "a dead event")
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await control.aclose()
    assert events[0] == ("join", "node1")  # the current members come first


async def _async(value):
    return value


def spirtctl(certs, peer, *args, name="client"):
    return subprocess.run(
        [SPIRTCTL, "--peer", peer, "--certs-dir", str(certs), "--name", name, "--timeout", "5", *args],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_spirtctl_status_and_members(peers, certs):
    cluster = start_cluster(peers, 2)
    asyncio.run(all_see(cluster, certs, "node2", "alive", CONVERGE_S))
    status = spirtctl(certs, cluster[0].address, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["id"] == "node1"
    members = spirtctl(certs, cluster[0].address, "members", "--json")
    assert members.returncode == 0, members.stderr
    listed = json.loads(members.stdout)
    assert {m["id"]: m["state"] for m in listed} == {"node1": "alive", "node2": "alive"}
    assert all({"id", "address", "state"} <= m.keys() for m in listed)
    human = spirtctl(certs, cluster[0].address, "members")
    assert "node2" in human.stdout and "alive" in human.stdout


@pytest.mark.parametrize(
    "name, peer, words",
    [
        ("old", None, "old.crt expired"),
        ("nobody", None, "no nobody.crt"),
        ("client", "127.0.0.1:1", "cannot reach spirtd at 127.0.0.1:1"),
        ("node2", None, None),  # a peer certificate may call Control too
    ],
)
def test_spirtctl_failed_call_exits_nonzero_with_the_reason(peers, certs, name, peer, words):
    first = peers.start("node1")
    result = spirtctl(certs, peer or first.address, "status", name=name)
    if words is None:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode != 0
    assert words in result.stderr
    assert result.stdout == ""
    if peer is not None:  # nothing listens there: no advice about certificates
        assert "is it running" in result.stderr and "TLS" not in result.stderr


async def test_insecure_mode_warns_and_serves_plaintext(short_tmp):
    from tests.daemon.peers import Peers

    group = Peers(short_tmp / "insecure", None)
    try:
        peer = group.start("node1", extra=["--insecure"])
        assert any(line.get("level") == "warning" and "--insecure" in line.get("msg", "")
                   for line in peer.log_lines())  # fmt: skip
        control = Control(peer.address, None)
        try:
            assert (await control.status()).id == "node1"
        finally:
            await control.aclose()
    finally:
        assert group.close() == []
