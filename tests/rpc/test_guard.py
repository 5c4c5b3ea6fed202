"""The guard on real gRPC over real mutual TLS: roles, revocation (also
adopted while running), spoofed senders, oversized messages. Each refusal:
a clear status for the caller, a log line and a counter."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import grpc
import pytest

from spirtd.errors import ConfigError, SecurityError
from spirtd.rpc.counters import Counters
from spirtd.rpc.guard import Guard, caller
from spirtd.rpc.server import RpcServer
from spirtd.rpc.tls import server_credentials
from spirtd.security import ca
from spirtd.security.certsdir import CertsDir
from spirtd.security.identity import Role
from spirtd.security.revocation import RevocationList

LIMIT = 1000
CALL_TIMEOUT_S = 5.0
GRACE_S = 0.1


@pytest.fixture
def certs(tmp_path):
    ca.init_ca(tmp_path)
    for name in ("node1", "peer2", "peer3"):
        ca.issue(tmp_path, name, ips=["127.0.0.1"])
    ca.issue(tmp_path, "alice", role=Role.CLIENT)
    ca.revoke(tmp_path, "peer3")
    return CertsDir(tmp_path)


def register_handlers(guard: Guard):
    async def whoami(request: bytes, context) -> bytes:
        return caller().name.encode()

    async def claims(request: bytes, context) -> bytes:
        await guard.check_sender(request.decode(), context)
        return b"ok"

    async def total(requests, context) -> bytes:
        return str(sum([len(r) async for r in requests])).encode()

    async def boom(request: bytes, context) -> bytes:
        raise ValueError("a bug in a handler")

    def register(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((
            grpc.method_handlers_generic_handler("spirt.v1.Control", {
                "Status": grpc.unary_unary_rpc_method_handler(whoami),
                "Boom": grpc.unary_unary_rpc_method_handler(boom)}),
            grpc.method_handlers_generic_handler("spirt.v1.Membership", {
                "Gossip": grpc.unary_unary_rpc_method_handler(whoami),
                "Claims": grpc.unary_unary_rpc_method_handler(claims),
                "Total": grpc.stream_unary_rpc_method_handler(total)}),
        ))  # fmt: skip

    return register


@pytest.fixture
async def served(certs):
    counters = Counters()
    guard = Guard(certs.ca_cert, certs.revocations(), counters, max_message_bytes=LIMIT)
    own = certs.credentials("node1", role=Role.PEER)
    async with RpcServer(
        "127.0.0.1:0", credentials=server_credentials(own, certs.ca_pem), guard=guard,
        register=register_handlers(guard), max_message_bytes=LIMIT, grace_s=GRACE_S,
    ) as server:  # fmt: skip
        yield server.port, guard, counters


def channel(certs: CertsDir, port: int, name: str) -> grpc.aio.Channel:
    key, cert = (certs.path / f"{name}.key").read_bytes(), (certs.path / f"{name}.crt").read_bytes()
    creds = grpc.ssl_channel_credentials(certs.ca_pem, private_key=key, certificate_chain=cert)
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "node1")])


@contextlib.asynccontextmanager
async def guarded(certs: CertsDir, method: str, handler) -> AsyncIterator[grpc.aio.Channel]:
    """A real mutual-TLS server whose one stream-unary method (of
    spirt.v1.Membership) is handler, behind the guard; a peer's channel to it."""

    def register(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("spirt.v1.Membership", {
            method: grpc.stream_unary_rpc_method_handler(handler)}),))  # fmt: skip

    guard = Guard(certs.ca_cert, certs.revocations(), Counters(), max_message_bytes=LIMIT)
    own = certs.credentials("node1", role=Role.PEER)
    async with RpcServer("127.0.0.1:0", credentials=server_credentials(own, certs.ca_pem), guard=guard,
                         register=register, max_message_bytes=LIMIT, grace_s=GRACE_S) as server:  # fmt: skip
        async with channel(certs, server.port, "peer2") as ch:
            yield ch


async def call(certs, port, name, method, payload=b"") -> bytes:
    async with channel(certs, port, name) as ch:
        return await ch.unary_unary(method)(payload, timeout=CALL_TIMEOUT_S)


async def refused(certs, port, name, method, payload=b"") -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(certs, port, name, method, payload)
    return info.value


async def test_guard_lets_peers_call_everything_and_knows_who_they_are(certs, served):
    port, _, counters = served
    assert await call(certs, port, "peer2", "/spirt.v1.Membership/Gossip") == b"peer2"
    assert await call(certs, port, "peer2", "/spirt.v1.Control/Status") == b"peer2"
    assert counters.snapshot() == {}


async def test_guard_lets_clients_call_only_control(certs, served, caplog):
    port, _, counters = served
    assert await call(certs, port, "alice", "/spirt.v1.Control/Status") == b"alice"
    with caplog.at_level(logging.WARNING, logger="spirtd.security"):
        err = await refused(certs, port, "alice", "/spirt.v1.Membership/Gossip")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details() == "client 'alice' may call only the Control service (and health, reflection), not spirt.v1.Membership"
    assert counters.get("refused.role") == 1
    assert "refused a call from ipv4:127.0.0.1:" in caplog.text and "may call only" in caplog.text


async def test_guard_refuses_a_revoked_certificate(certs, served):
    port, _, counters = served
    err = await refused(certs, port, "peer3", "/spirt.v1.Control/Status")
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "'peer3' was revoked by the cluster CA (revocation list 2)" in err.details()
    assert counters.get("refused.revoked") == 1


async def test_guard_adopts_a_newer_list_while_running(certs, served):
    port, guard, counters = served
    assert await call(certs, port, "peer2", "/spirt.v1.Membership/Gossip") == b"peer2"
    newer = ca.revoke(certs.path, "peer2")
    assert guard.adopt(RevocationList.from_der(newer.der))
    assert not guard.adopt(RevocationList.from_der(newer.der))  # not newer: ignored
    err = await refused(certs, port, "peer2", "/spirt.v1.Membership/Gossip")
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert counters.get("refused.revoked") == 1


async def test_guard_refuses_a_list_not_signed_by_the_ca(certs, served, tmp_path):
    _, guard, _ = served
    other = tmp_path / "other"
    ca.init_ca(other)
    for name in ("x", "y"):
        ca.issue(other, name)
        forged = ca.revoke(other, name)
    assert forged.number > guard.revocations.number
    with pytest.raises(SecurityError, match="not signed by the cluster CA"):
        guard.adopt(forged)
    assert guard.revocations.number == 2


async def test_guard_refuses_a_spoofed_sender(certs, served):
    port, _, counters = served
    assert await call(certs, port, "peer2", "/spirt.v1.Membership/Claims", b"peer2") == b"ok"
    err = await refused(certs, port, "peer2", "/spirt.v1.Membership/Claims", b"node1")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details() == "the message says it is from 'node1' but the caller's certificate is 'peer2'"
    assert counters.get("refused.spoofed_sender") == 1


async def test_guard_refuses_oversized_messages(certs, served):
    port, _, counters = served
    # One limit, whatever the size: the caller always hears max_message_bytes.
    for size in (LIMIT + 1, 2 * LIMIT + 1, 50 * LIMIT):
        err = await refused(certs, port, "peer2", "/spirt.v1.Membership/Gossip", b"x" * size)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"Received message larger than max ({size} vs. {LIMIT})" in err.details()
    assert counters.get("refused.oversized") == 3
    assert await call(certs, port, "peer2", "/spirt.v1.Membership/Gossip", b"x" * (LIMIT - 10)) == b"peer2"

    async def pieces():
        yield b"x" * 10
        yield b"x" * (LIMIT + 5)

    async with channel(certs, port, "peer2") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.stream_unary("/spirt.v1.Membership/Total")(pieces(), timeout=CALL_TIMEOUT_S)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"vs. {LIMIT})" in info.value.details()
    # and the server still serves its members
    assert await call(certs, port, "peer2", "/spirt.v1.Membership/Gossip") == b"peer2"


async def test_a_bug_in_a_handler_is_internal_with_its_traceback_only_in_the_log(certs, served, caplog):
    port, _, _ = served
    with caplog.at_level(logging.ERROR, logger="spirtd.security"):
        err = await refused(certs, port, "alice", "/spirt.v1.Control/Boom")
    assert err.code() == grpc.StatusCode.INTERNAL
    assert err.details().startswith("an internal error on the peer (error ") and "ValueError" not in err.details()
    logged = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert logged and logged[0].exc_info and "a bug in a handler" in str(logged[0].exc_info[1])
    assert await call(certs, port, "alice", "/spirt.v1.Control/Status") == b"alice"


def test_guard_without_a_ca_needs_insecure():
    with pytest.raises(ConfigError, match="a CA certificate is needed unless insecure"):
        Guard(None, None, Counters(), max_message_bytes=LIMIT)


async def test_a_refusal_to_a_caller_that_hung_up_is_no_internal_error(certs, caplog):
    """A handler refuses (aborts) a call whose caller cancelled meanwhile:
    the status cannot be sent any more. That is the caller's leaving, not a
    bug: it was logged as an internal error with two tracebacks, and the
    guard's own abort then failed ("Abort already called")."""
    import asyncio

    CALLS = 20

    started, finished = asyncio.Event(), asyncio.Event()
    outcome: list[str] = []

    async def refuses_late(requests, context) -> bytes:
        started.set()
        try:
            async for _ in requests:  # ends when the caller cancels (as a truncated stream)
                pass
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "refused, but the caller is gone")
        except BaseException as exc:
            outcome.append(type(exc).__name__)
            raise
        finally:
            finished.set()

    async def pieces():
        yield b"x"
        await asyncio.sleep(CALL_TIMEOUT_S)

    async with guarded(certs, "Late", refuses_late) as ch:
        with caplog.at_level(logging.DEBUG):
            for _ in range(CALLS):  # the race (the status sent as the call goes) is won only now and then
                started.clear()
                finished.clear()
                call = ch.stream_unary("/spirt.v1.Membership/Late")(pieces(), timeout=CALL_TIMEOUT_S)
                await asyncio.wait_for(started.wait(), CALL_TIMEOUT_S)
                call.cancel()
                await asyncio.wait_for(finished.wait(), CALL_TIMEOUT_S)
            await asyncio.sleep(0.2)  # the guard's handling of what the last handler raised
    assert len(outcome) == CALLS
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def test_a_bug_after_a_status_was_sent_is_still_an_internal_error(certs, caplog):
    """Only the failure to send a status to a caller that left is quiet: a
    handler's bug after its status went out (here: it swallowed its own
    abort) was logged at debug level as a caller's hang-up."""

    async def aborts_then_fails(requests, context) -> bytes:
        async for _ in requests:
            pass
        try:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "refused")
        except grpc.aio.AbortError:
            pass  # the bug: an abort is not to be caught
        raise KeyError("a bug")

    async with guarded(certs, "Buggy", aborts_then_fails) as ch:
        with caplog.at_level(logging.DEBUG):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await ch.stream_unary("/spirt.v1.Membership/Buggy")(iter([b"x"]), timeout=CALL_TIMEOUT_S)
    assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION  # the status that went out
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(" ")[:2] for r in errors] == [["internal", "error"]], [r.getMessage() for r in errors]
    assert "KeyError" in (errors[0].exc_text or "")
