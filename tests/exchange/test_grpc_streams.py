"""Contribution streams over real gRPC and mutual TLS into a real store: a
peer's GradientExchange server (its exchange driver agreed an attempt with
"b"), and streams pushed at it with b's (or c's) certificate. Each bad
stream is refused with its reason, counted, and leaves nothing in the store;
a good one lands."""

from __future__ import annotations

import asyncio
import hashlib

import grpc
import numpy as np
import pytest

from spirtd.api.spirt.v1 import gradients_pb2 as pb
from spirtd.api.spirt.v1 import gradients_pb2_grpc
from spirtd.clock import SystemClock
from spirtd.daemon.exchange_grpc import GradientExchangeService, chunk_to_wire, header_to_wire, message_to_wire
from spirtd.exchange.config import AgreementConfig, ExchangeConfig, RoundSettings
from spirtd.exchange.driver import ExchangeDriver
from spirtd.exchange.formulas import shard_bounds
from spirtd.exchange.messages import AttemptKey, Propose
from spirtd.exchange.streams import ContributionHeader, Stage
from spirtd.rpc.counters import Counters
from spirtd.rpc.guard import Guard
from spirtd.rpc.server import RpcServer
from spirtd.rpc.tls import server_credentials
from spirtd.security import ca
from spirtd.security.certsdir import CertsDir
from spirtd.security.identity import Role
from spirtd.store import connect

M = 1000
SETTINGS = RoundSettings("mean", {}, ExchangeConfig(agreement=AgreementConfig(propose_timeout_s=0.5,
                                                                              report_timeout_s=5.0)))
KEY = AttemptKey(0, 0, ("a", "b"))
SHARD_B = 1  # b owns shard 1; a owns shard 0, the one b sends its part of
START, STOP = shard_bounds(M, 2)[0]
PART = np.arange(STOP - START, dtype=np.float32).tobytes()
CALL_S = 10


class TwoAlive:
    def alive(self):
        return {"a", "b"}


@pytest.fixture
def certs(short_tmp):
    folder = short_tmp / "certs"
    ca.init_ca(folder)
    for name in ("a", "b", "c"):
        ca.issue(folder, name, ips=["127.0.0.1"])
    return folder


def channel(certs, name: str, port: int) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials((certs / "ca.crt").read_bytes(), (certs / f"{name}.key").read_bytes(),
                                         (certs / f"{name}.crt").read_bytes())  # fmt: skip
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "a")])


def header(**changes) -> ContributionHeader:
    values = dict(job="j1", key=KEY, sender="b", shard=0, start=START, n_elements=STOP - START, dtype="FLOAT",
                  nbytes=len(PART), sha256=hashlib.sha256(PART).hexdigest(), stage=Stage.SCATTER, samples=1.0)
    values.update(changes)
    return ContributionHeader(**values)


async def push(stub, h: ContributionHeader, data: bytes, chunk: int = 1000):
    async def requests():
        yield header_to_wire(h)
        for offset in range(0, len(data), chunk):
            yield pb.TensorChunk(offset=offset, data=data[offset : offset + chunk])

    return await stub.PushTensor(requests(), timeout=CALL_S)


async def test_bad_streams_are_refused_counted_and_leave_nothing_a_good_one_lands(certs, start_redis):
    server_proc = start_redis("a")
    store = await connect(socket_path=server_proc.socket_path, password=server_proc.password)
    counters = Counters()
    driver = ExchangeDriver("a", _NoTransport(), store, SystemClock(), TwoAlive(), counters=counters.inc)
    own = CertsDir(certs).credentials("a", role=Role.PEER)
    guard = Guard(CertsDir(certs).ca_cert, None, counters, max_message_bytes=1 << 20)

    def register(server):
        gradients_pb2_grpc.add_GradientExchangeServicer_to_server(
            GradientExchangeService(lambda: driver, lambda: None, guard), server)

    rpc = RpcServer("127.0.0.1:0", credentials=server_credentials(own, CertsDir(certs).ca_pem), guard=guard,
                    register=register, max_message_bytes=1 << 20, grace_s=0.5)  # fmt: skip
    async with rpc, driver:
        b = channel(certs, "b", rpc.port)
        c = channel(certs, "c", rpc.port)
        try:
            stub_b, stub_c = gradients_pb2_grpc.GradientExchangeStub(b), gradients_pb2_grpc.GradientExchangeStub(c)
            agreed = asyncio.create_task(driver.agree("j1", 0, "s0", (), M, "job:j1:round:0:x", SETTINGS))
            await stub_b.Agree(message_to_wire(Propose("b", "j1", KEY, "s0")), timeout=CALL_S)
            assert await asyncio.wait_for(agreed, CALL_S) == KEY

            bad = bytearray(PART)
            bad[7] ^= 1
            cases = [
                (stub_b, header(), bytes(bad), "bad_checksum"),
                (stub_b, header(), PART[: len(PART) // 2], "truncated"),
                (stub_c, header(sender="c"), PART, "not_participant"),
                (stub_b, header(key=AttemptKey(1, 0, ("a", "b"))), PART, "wrong_attempt"),
                (stub_b, header(n_elements=10, nbytes=40), PART[:40], "wrong_shard"),
                (stub_b, header(sender="a"), PART, "not_sender"),
            ]
            for stub, h, data, kind in cases:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await push(stub, h, data)
                assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION, kind
                assert info.value.details().startswith(f"{kind}: "), info.value.details()
                assert counters.get(f"exchange.refused.{kind}") == 1
                assert await store.keys_matching("job:j1:round:0:xa0:part:*") == []  # nothing half-written

            reply = await push(stub_b, header(), PART)  # the good one
            assert reply.received_bytes == len(PART)
            landed = await store.get("job:j1:round:0:xa0:part:b")
            assert landed.tobytes() == PART
        finally:
            await b.close()
            await c.close()
    await store.aclose()


class _NoTransport:
    """a's outgoing side: nothing here sends (the test is b)."""

    async def send(self, to, message):
        return None

    async def push(self, to, header, chunks):
        return None


@pytest.mark.parametrize("offset", [0, 1, 127, 128, 16_383, 16_384, 11_700_000, (1 << 40) + 5])
@pytest.mark.parametrize("size", [0, 1, 127, 128, 1 << 20, (4 << 20) - 1024])
def test_chunk_to_wire_is_protobufs_serialization(offset, size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    wire = chunk_to_wire(offset, memoryview(data))
    assert wire == pb.TensorChunk(offset=offset, data=data).SerializeToString()
    assert pb.TensorChunk.FromString(wire).offset == offset and pb.TensorChunk.FromString(wire).data == data
