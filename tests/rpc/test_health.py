"""The standard health and reflection services behind the guard, on real
gRPC over real mutual TLS: NOT_SERVING until ready, SERVING, then
NOT_SERVING for good while shutting down (Watch hears each change); open to
client certificates; a caller without a certificate never gets through."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from spirtd.rpc.counters import Counters
from spirtd.rpc.guard import Guard
from spirtd.rpc.health import HEALTH_SERVICE, Health
from spirtd.rpc.reflection import REFLECTION_SERVICE, add_reflection
from spirtd.rpc.server import RpcServer
from spirtd.rpc.tls import server_credentials
from spirtd.security import ca
from spirtd.security.certsdir import CertsDir
from spirtd.security.identity import Role

LIMIT = 1 << 16
CALL_TIMEOUT_S = 5.0
GRACE_S = 0.1
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
CONTROL = "spirt.v1.Control"


@pytest.fixture
def certs(tmp_path):
    ca.init_ca(tmp_path)
    ca.issue(tmp_path, "node1", ips=["127.0.0.1"])
    ca.issue(tmp_path, "alice", role=Role.CLIENT)
    return CertsDir(tmp_path)


@pytest.fixture
async def served(certs):
    health = Health([CONTROL])
    await health.starting()

    def register(server: grpc.aio.Server) -> None:
        health.register(server)
        add_reflection(server, [HEALTH_SERVICE])

    guard = Guard(certs.ca_cert, None, Counters(), max_message_bytes=LIMIT)
    own = certs.credentials("node1", role=Role.PEER)
    async with RpcServer("127.0.0.1:0", credentials=server_credentials(own, certs.ca_pem), guard=guard,
                         register=register, max_message_bytes=LIMIT, grace_s=GRACE_S) as server:  # fmt: skip
        yield server.port, health


def channel(certs: CertsDir, port: int, name: str | None) -> grpc.aio.Channel:
    kw = {}
    if name is not None:
        kw = {"private_key": (certs.path / f"{name}.key").read_bytes(),
              "certificate_chain": (certs.path / f"{name}.crt").read_bytes()}  # fmt: skip
    creds = grpc.ssl_channel_credentials(certs.ca_pem, **kw)
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "node1")])


async def check(ch: grpc.aio.Channel, service: str = "") -> int:
    reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service),
                                                       timeout=CALL_TIMEOUT_S)  # fmt: skip
    return reply.status


async def test_health_not_serving_until_ready_then_serving_until_shutdown(certs, served):
    port, health = served
    async with channel(certs, port, "alice") as ch:
        watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT_S)
        assert (await watch.read()).status == NOT_SERVING
        assert await check(ch) == NOT_SERVING and await check(ch, CONTROL) == NOT_SERVING
        await health.ready()
        assert (await watch.read()).status == SERVING
        assert await check(ch) == SERVING and await check(ch, CONTROL) == SERVING
        await health.shutting_down()
        assert (await watch.read()).status == NOT_SERVING
        assert await check(ch) == NOT_SERVING and await check(ch, CONTROL) == NOT_SERVING
        with pytest.raises(RuntimeError, match="from shutting_down to serving"):
            await health.ready()
        watch.cancel()


async def test_health_of_an_unknown_service_is_not_found(certs, served):
    port, _ = served
    async with channel(certs, port, "alice") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await check(ch, "spirt.v1.Nothing")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def list_services(certs: CertsDir, port: int) -> list[str]:
    """As grpcurl does it: the reflection client over a blocking channel."""
    creds = grpc.ssl_channel_credentials(certs.ca_pem, (certs.path / "alice.key").read_bytes(),
                                         (certs.path / "alice.crt").read_bytes())  # fmt: skip
    with grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "node1")]) as ch:
        return ProtoReflectionDescriptorDatabase(ch).get_services()


async def test_reflection_lists_the_services_to_a_client_certificate(certs, served):
    port, _ = served
    services = await asyncio.wait_for(asyncio.to_thread(list_services, certs, port), CALL_TIMEOUT_S)
    assert set(services) == {HEALTH_SERVICE, REFLECTION_SERVICE}


async def test_health_refuses_a_caller_without_a_certificate(certs, served):
    port, health = served
    await health.ready()
    async with channel(certs, port, None) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await check(ch)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
