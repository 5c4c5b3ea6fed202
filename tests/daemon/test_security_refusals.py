"""Bad input against a running peer. Each gets a clear refusal, a log line
and a counter, and the peer keeps serving its members."""

from __future__ import annotations

import os
import shutil
import socket

import grpc
import pytest

from spirtd.api.spirt.v1 import (
    gradients_pb2,
    gradients_pb2_grpc,
    heartbeat_pb2,
    heartbeat_pb2_grpc,
    membership_pb2,
    membership_pb2_grpc,
)
from spirtd.security import ca
from tests.daemon.conftest import peer_certs_dir
from tests.daemon.peers import CALL_TIMEOUT_S, Control, eventually
from tests.daemon.test_cluster_loopback import CONVERGE_S, DETECT_S, all_see, start_cluster

LOG_S = 5.0


def channel(certs, address: str, name: str | None, peer_id: str = "node1") -> grpc.aio.Channel:
    kw = {}
    if name is not None:
        kw = {"private_key": (certs / f"{name}.key").read_bytes(),
              "certificate_chain": (certs / f"{name}.crt").read_bytes()}  # fmt: skip
    creds = grpc.ssl_channel_credentials((certs / "ca.crt").read_bytes(), **kw)
    return grpc.aio.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", peer_id)])


async def gossip(certs, address, name, sender, payload=b"", peer_id="node1") -> grpc.aio.AioRpcError | None:
    request = membership_pb2.GossipRequest(sender=sender)
    if payload:
        request.revocations.crl_der = payload
    async with channel(certs, address, name, peer_id) as ch:
        try:
            await membership_pb2_grpc.MembershipStub(ch).Gossip(request, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            return exc
    return None


async def counter(certs, peer, name: str) -> int:
    control = Control(peer.address, certs)
    try:
        return (await control.status()).counters.get(name, 0)
    finally:
        await control.aclose()


async def refusal_logged(peer, reason: str) -> dict:
    async def check():
        lines = [line for line in peer.log_lines() if line.get("reason") == reason]
        return lines[-1] if lines else None

    return await eventually(check, LOG_S, f"a log line for refusal {reason}")


async def still_serving(certs, cluster) -> None:
    await all_see(cluster, certs, "node2", "alive", CONVERGE_S)


@pytest.fixture
async def two_peers(peers, certs):
    cluster = start_cluster(peers, 2)
    await all_see(cluster, certs, "node2", "alive", CONVERGE_S)
    return cluster


@pytest.mark.parametrize(
    "name, reason",
    [(None, "no_certificate"), ("other", "unknown_ca"), ("old", "expired")],
    ids=["no-client-certificate", "another-ca", "expired"],
)
async def test_handshake_refusals(two_peers, certs, name, reason):
    target = two_peers[0]
    err = await gossip(certs, target.address, name, "node2")
    assert err is not None and err.code() == grpc.StatusCode.UNAVAILABLE
    line = await refusal_logged(target, reason)
    assert line["peer"].startswith("ipv4:127.0.0.1:") and "refused a TLS connection" in line["msg"]
    assert await counter(certs, target, f"refused.{reason}") >= 1
    await still_serving(certs, two_peers)


async def test_random_bytes_on_the_port(two_peers, certs):
    target = two_peers[0]
    host, port = target.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=CALL_TIMEOUT_S) as s:
        s.sendall(os.urandom(512))
        assert s.recv(100) == b""  # the peer hangs up
    await refusal_logged(target, "not_tls")
    assert await counter(certs, target, "refused.not_tls") == 1
    await still_serving(certs, two_peers)


async def test_client_certificate_calling_a_peer_service(two_peers, certs):
    target = two_peers[0]
    err = await gossip(certs, target.address, "client", "client")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details() == "client 'client' may call only the Control service (and health, reflection), not spirt.v1.Membership"
    await refusal_logged(target, "role")
    assert await counter(certs, target, "refused.role") == 1
    await still_serving(certs, two_peers)


async def test_spoofed_sender_id(two_peers, certs):
    target = two_peers[0]
    async with channel(certs, target.address, "node3") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await heartbeat_pb2_grpc.HeartbeatStub(ch).Ping(
                heartbeat_pb2.PingRequest(sender="node2", seq=1, target="node1"), timeout=CALL_TIMEOUT_S
            )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "says it is from 'node2' but the caller's certificate is 'node3'" in info.value.details()
    await refusal_logged(target, "spoofed_sender")
    assert await counter(certs, target, "refused.spoofed_sender") == 1
    await still_serving(certs, two_peers)


async def test_oversized_message(two_peers, certs):
    target = two_peers[0]
    err = await gossip(certs, target.address, "node3", "node3", payload=b"x" * 70_000)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Received message larger than max (70" in err.details() and "vs. 65536)" in err.details()
    await refusal_logged(target, "oversized")
    assert await counter(certs, target, "refused.oversized") == 1
    await still_serving(certs, two_peers)


async def test_gradient_exchange_refuses_bad_requests_plainly_and_keeps_serving(two_peers, certs):
    """A stream with no header, an unknown job's version, a spoofed sender:
    each a clear status, never a crash or a hang."""
    target = two_peers[0]
    async with channel(certs, target.address, "node2") as ch:
        stub = gradients_pb2_grpc.GradientExchangeStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as fetch:
            request = gradients_pb2.FetchTensorRequest(sender="node2", ref=gradients_pb2.TensorRef(job="jnone", name="params"))
            async for _ in stub.FetchTensor(request, timeout=CALL_TIMEOUT_S):
                pass
        with pytest.raises(grpc.aio.AioRpcError) as push:
            await stub.PushTensor(iter([gradients_pb2.TensorChunk(data=b"x")]), timeout=CALL_TIMEOUT_S)
        with pytest.raises(grpc.aio.AioRpcError) as spoofed:
            await stub.Agree(gradients_pb2.AgreementMessage(sender="node1", job="j"), timeout=CALL_TIMEOUT_S)
    assert fetch.value.code() == grpc.StatusCode.NOT_FOUND and "no job" in fetch.value.details()
    assert push.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "header" in push.value.details()
    assert spoofed.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await still_serving(certs, two_peers)


async def test_revocation_spreads_by_gossip_and_the_peer_is_dropped(peers, certs, short_tmp):
    """Each peer has its own certs dir; the new list is copied to node1's
    only. node2 and node3 learn it by gossip; node3 is refused and dropped
    by both, without restarts."""
    authority = short_tmp / "authority"
    shutil.copytree(certs, authority)
    own = {name: peer_certs_dir(authority, short_tmp, name) for name in ("node1", "node2", "node3")}
    first = peers.start("node1", extra=["--certs-dir", str(own["node1"])])
    cluster = [first] + [peers.start(name, seeds=[first.address], extra=["--certs-dir", str(own[name])])
                         for name in ("node2", "node3")]  # fmt: skip
    await all_see(cluster, certs, "node3", "alive", CONVERGE_S)

    ca.revoke(authority, "node3")
    shutil.copy2(authority / "crl.pem", own["node1"] / "crl.pem")
    await all_see(cluster[:2], certs, "node3", "dead", DETECT_S)
    for peer in cluster[:2]:
        assert any("expelled member node3" in line.get("msg", "") for line in peer.log_lines())
    async with channel(authority, cluster[1].address, "node3", "node2") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await heartbeat_pb2_grpc.HeartbeatStub(ch).Ping(
                heartbeat_pb2.PingRequest(sender="node3", seq=9, target="node2"), timeout=CALL_TIMEOUT_S
            )
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "'node3' was revoked by the cluster CA" in info.value.details()
    assert await counter(certs, cluster[1], "refused.revoked") >= 1
    await all_see(cluster[:2], certs, "node2", "alive", CONVERGE_S)
    # node3 never got the new list into its own certs dir: the refusals
    # carry it, signed by the CA, so node3 learns it is revoked and stops
    assert cluster[2].wait(DETECT_S * 3) == 1
    assert "this peer's certificate is revoked by the cluster CA" in cluster[2].log_text()


async def test_a_revoked_peer_sharing_the_certs_dir_stops_and_cannot_start_again(peers, certs, short_tmp):
    """The README's set-up: every peer runs from one certs dir with the CA
    key in it; `spirtd certs revoke` there reaches every peer at once."""
    shared = short_tmp / "shared"
    shutil.copytree(certs, shared)
    first = peers.start("node1", extra=["--certs-dir", str(shared)])
    cluster = [first] + [peers.start(name, seeds=[first.address], extra=["--certs-dir", str(shared)])
                         for name in ("node2", "node3")]  # fmt: skip
    await all_see(cluster, certs, "node3", "alive", CONVERGE_S)
    ca.revoke(shared, "node3")
    assert cluster[2].wait(DETECT_S * 3) == 1
    assert "this peer's certificate is revoked by the cluster CA" in cluster[2].log_text()
    await all_see(cluster[:2], certs, "node3", "dead", DETECT_S * 3)
    again = peers.start("node3", seeds=[first.address], extra=["--certs-dir", str(shared)], wait=False)
    assert again.wait(30) != 0 and "node3.crt is revoked" in again.log_text()
