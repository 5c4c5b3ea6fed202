"""Health, reflection and metrics of a real `spirtd run`, over real mutual
TLS: the standard health service answers SERVING (and NOT_SERVING while the
peer shuts down), reflection lists, describes and calls Control with a
client certificate, `spirtctl health` exits 0 only when SERVING, callers
without a valid certificate are refused; the metrics endpoint is off by
default, and once configured serves every family, moving as a job runs and
as refusals happen."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from prometheus_client.parser import text_string_to_metric_families

from spirtd.api.spirt.v1 import membership_pb2, membership_pb2_grpc
from tests.daemon.conftest import FAST_CONFIG
from tests.daemon.peers import CALL_TIMEOUT_S, SPIRTCTL, Peers, eventually
from tests.daemon.test_cluster_loopback import CONVERGE_S, all_see
from tests.jobs.jobs import DIGITS, spec_file, submit, waited

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
METRICS_CONFIG = FAST_CONFIG + "[metrics]\nport = 0\n"
SPIRTCTL_S = 30.0
SCRAPE_S = 5.0
COUNTED_S = 5.0
# Two rounds of the MLP on digits, one warm worker: the whole job in seconds.
SHORT_JOB = DIGITS.format(epochs=1, timeout=30, mode="warm").replace("epochs = 1", "rounds = 2").replace(
    "concurrency = 2", "concurrency = 1")
FAMILIES = {
    "spirtd_info": "gauge", "spirtd_members": "gauge", "spirtd_rounds": "counter",
    "spirtd_round_phase_seconds": "histogram", "spirtd_exchange_bytes": "counter",
    "spirtd_contributions_refused": "counter", "spirtd_quarantined_peers": "gauge",
    "spirtd_worker_invocations": "counter", "spirtd_worker_retries": "counter",
    "spirtd_worker_cold_starts": "counter", "spirtd_worker_warm_starts": "counter",
    "spirtd_store_command_seconds": "histogram", "spirtd_tls_handshakes_refused": "counter",
    "spirtd_calls_refused": "counter",
}  # fmt: skip


def credentials(certs: Path, name: str | None) -> grpc.ChannelCredentials:
    if name is None:
        return grpc.ssl_channel_credentials((certs / "ca.crt").read_bytes())
    return grpc.ssl_channel_credentials((certs / "ca.crt").read_bytes(), (certs / f"{name}.key").read_bytes(),
                                        (certs / f"{name}.crt").read_bytes())  # fmt: skip


def channel(certs: Path, address: str, name: str | None = "client") -> grpc.aio.Channel:
    return grpc.aio.secure_channel(address, credentials(certs, name))


async def check(certs: Path, address: str, service: str = "", name: str | None = "client") -> int:
    async with channel(certs, address, name) as ch:
        request = health_pb2.HealthCheckRequest(service=service)
        return (await health_pb2_grpc.HealthStub(ch).Check(request, timeout=CALL_TIMEOUT_S)).status


def spirtctl_health(certs: Path, address: str, *args: str, name: str = "client") -> subprocess.CompletedProcess:
    return subprocess.run([SPIRTCTL, "--peer", address, "--certs-dir", str(certs), "--name", name, "--timeout", "5",
                           "health", *args], capture_output=True, text=True, timeout=SPIRTCTL_S)  # fmt: skip


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process pid listens on (from /proc: its sockets' inodes)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = re.fullmatch(r"socket:\[(\d+)\]", str(fd.readlink()) if fd.is_symlink() else "")
        if target:
            inodes.add(target.group(1))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture(scope="module")
def plain_peer(certs):
    """One peer with the default settings (no [metrics]), shared by the
    tests that only ask it."""
    root = Path(tempfile.mkdtemp(prefix="spt-", dir="/tmp"))
    group = Peers(root, certs, config_text=FAST_CONFIG)
    try:
        yield group.start("node1")
    finally:
        problems = group.close()
        shutil.rmtree(root, ignore_errors=True)
        assert not problems, problems


async def test_health_answers_serving_over_mutual_tls_and_refuses_strangers(plain_peer, certs):
    address = plain_peer.address
    assert await check(certs, address) == SERVING
    assert await check(certs, address, "spirt.v1.Control") == SERVING
    assert await check(certs, address, name="ops") == SERVING and await check(certs, address, name="node2") == SERVING
    async with channel(certs, address) as ch:
        watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)
        assert (await watch.read()).status == SERVING
        watch.cancel()
    for stranger in (None, "other", "old"):  # no certificate, another CA's, an expired one
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await check(certs, address, name=stranger)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, stranger


def reflect_and_call_status(certs: Path, address: str) -> tuple[list[str], list[str], dict]:
    """What grpcurl does: list the services, describe Control, then call
    Control/Status with messages built from the descriptors alone."""
    with grpc.secure_channel(address, credentials(certs, "client")) as ch:
        database = ProtoReflectionDescriptorDatabase(ch)
        services = database.get_services()
        control = DescriptorPool(database).FindServiceByName("spirt.v1.Control")
        status = control.methods_by_name["Status"]
        request_class, reply_class = GetMessageClass(status.input_type), GetMessageClass(status.output_type)
        call = ch.unary_unary("/spirt.v1.Control/Status", request_serializer=request_class.SerializeToString,
                              response_deserializer=reply_class.FromString)  # fmt: skip
        reply = call(request_class(), timeout=CALL_TIMEOUT_S)
        return services, [m.name for m in control.methods], {"id": reply.id, "store": reply.store_backend}


async def test_reflection_lists_describes_and_calls_control(plain_peer, certs):
    services, methods, status = await asyncio.to_thread(reflect_and_call_status, certs, plain_peer.address)
    assert {"spirt.v1.Control", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= set(services)
    assert {"Status", "Members", "SubmitJob", "WatchJob", "GetModel"} <= set(methods)
    assert status == {"id": "node1", "store": "native"}


async def test_spirtctl_health_exits_0_only_when_serving(plain_peer, certs):
    address = plain_peer.address
    serving = await asyncio.to_thread(spirtctl_health, certs, address, "--json")
    assert serving.returncode == 0, serving.stderr
    assert json.loads(serving.stdout) == {"peer": address, "service": "", "status": "SERVING"}
    as_the_peer = await asyncio.to_thread(spirtctl_health, certs, address, "--service", "spirt.v1.Control",
                                          name="node2")  # a pod probing with a peer's own certificate
    assert as_the_peer.returncode == 0 and as_the_peer.stdout.strip() == f"{address} spirt.v1.Control: SERVING"
    unknown = await asyncio.to_thread(spirtctl_health, certs, address, "--service", "spirt.v1.Nothing")
    assert unknown.returncode == 1 and "serves no service 'spirt.v1.Nothing'" in unknown.stderr
    stranger = await asyncio.to_thread(spirtctl_health, certs, address, name="other")  # another CA's certificate
    assert stranger.returncode == 1 and "not signed by the CA" in stranger.stderr


def test_metrics_are_off_by_default(plain_peer):
    start = next(line for line in plain_peer.log_lines() if "serving on" in str(line.get("msg")))
    assert "metrics" not in start and "metrics" not in start["msg"]
    grpc_port = int(plain_peer.address.rsplit(":", 1)[1])
    assert listening_ports(plain_peer.proc.pid) == {grpc_port}


async def test_health_says_not_serving_while_the_peer_shuts_down(peers, certs):
    peer = peers.start("node1")
    async with channel(certs, peer.address) as ch:
        watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S * 2)
        assert (await watch.read()).status == SERVING
        peer.signal(signal.SIGTERM)
        assert (await watch.read()).status == NOT_SERVING
        watch.cancel()
    assert await asyncio.to_thread(peer.wait) == 0
    gone = await asyncio.to_thread(spirtctl_health, certs, peer.address)
    assert gone.returncode == 1 and "cannot reach spirtd" in gone.stderr


def scrape(address: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=SCRAPE_S) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return {family.name: family for family in text_string_to_metric_families(reply.read().decode())}


def sample(families: dict, name: str, suffix: str = "", **labels: str) -> float:
    """The value of family name's sample name+suffix with exactly these labels (absent: 0)."""
    for s in families[name].samples:
        if s.name == name + suffix and s.labels == labels:
            return s.value
    return 0.0


def summed(families: dict, name: str, suffix: str) -> float:
    return sum(s.value for s in families[name].samples if s.name == name + suffix)


async def test_metrics_serve_every_family_and_move_with_a_job_and_refusals(peers, certs, tmp_path):
    peers.config_text = METRICS_CONFIG
    peer = peers.start("node1")
    other = peers.start("node2", seeds=[peer.address])  # so that the job's rounds exchange bytes
    start = next(line for line in peer.log_lines() if "serving on" in str(line.get("msg")))
    address = start["metrics"]
    assert address.startswith("127.0.0.1:")  # loopback by default
    before = await asyncio.to_thread(scrape, address)
    assert {name: before[name].type for name in FAMILIES} == FAMILIES
    assert sample(before, "spirtd_info", id="node1", version=before["spirtd_info"].samples[0].labels["version"],
                  store="native") == 1  # fmt: skip
    assert sample(before, "spirtd_members", state="dead") == 0
    assert sample(before, "spirtd_rounds", "_total") == 0 and sample(before, "spirtd_quarantined_peers") == 0
    assert sample(before, "spirtd_tls_handshakes_refused", "_total", reason="unknown_ca") == 0
    assert sample(before, "spirtd_contributions_refused", "_total", reason="bad_checksum") == 0

    with pytest.raises(grpc.aio.AioRpcError):  # another CA's certificate: refused in the handshake
        await check(certs, peer.address, name="other")
    async with channel(certs, peer.address, "client") as ch:  # a client calling a peer service: refused after it
        with pytest.raises(grpc.aio.AioRpcError):
            await membership_pb2_grpc.MembershipStub(ch).Gossip(membership_pb2.GossipRequest(sender="client"),
                                                                timeout=CALL_TIMEOUT_S)  # fmt: skip
    await all_see([peer, other], certs, "node2", "alive", CONVERGE_S)
    final = waited(await asyncio.to_thread(submit, certs, peer, spec_file(tmp_path, text=SHORT_JOB), "--wait",
                                           "--json"))  # fmt: skip
    assert final["state"] == "succeeded" and final["round"] == 2

    async def moved():
        after = await asyncio.to_thread(scrape, address)
        rounds = sample(after, "spirtd_rounds", "_total")
        refused = sample(after, "spirtd_tls_handshakes_refused", "_total", reason="unknown_ca")
        return after if rounds == 2 and refused >= 1 else None  # >= 1: gRPC may have tried to connect again

    after = await eventually(moved, COUNTED_S, "the rounds and the refused handshake in the metrics")
    assert sample(after, "spirtd_calls_refused", "_total", reason="role") == 1
    assert sample(after, "spirtd_members", state="alive") == 2
    for phase in ("propose", "compute", "aggregate", "exchange", "update", "agree", "evaluate"):
        assert sample(after, "spirtd_round_phase_seconds", "_count", phase=phase) >= 1, phase
    assert sample(after, "spirtd_round_phase_seconds", "_count", phase="compute") == 2
    assert sample(after, "spirtd_round_phase_seconds", "_sum", phase="compute") > 0
    for direction in ("sent", "received"):
        assert sample(after, "spirtd_exchange_bytes", "_total", direction=direction) > 0, direction
    # each peer: 4 minibatches a round
    assert sample(after, "spirtd_worker_invocations", "_total", outcome="succeeded") >= 2 * 4
    assert sample(after, "spirtd_worker_warm_starts", "_total") == 1
    assert sample(after, "spirtd_worker_cold_starts", "_total") == 0
    assert sample(after, "spirtd_store_command_seconds", "_count", command="SPIRT.AGGREGATE") >= 2
    assert summed(after, "spirtd_store_command_seconds", "_count") > summed(before, "spirtd_store_command_seconds",
                                                                             "_count")  # fmt: skip
