"""What a peer does with connections before anyone is authenticated: one
daemon per port, a cap on connections, a short handshake timeout, and a log
that a flood cannot flood (real peers, loopback only, bounded floods)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time

from spirtd.api.spirt.v1 import control_pb2
from tests.daemon.peers import CALL_TIMEOUT_S, Control, eventually

FLOOD_CONNECTIONS = 2000
NOT_TLS_CONNECTIONS = 300
CAP = 64
SERVED_WITHIN_S = 1.0
FLOOD_CONFIG = f"""
max_connections = {CAP}
handshake_timeout_s = 0.5
refusal_log_interval_s = 1.0
refusal_log_burst = 3
"""


def test_a_second_daemon_on_a_port_in_use_fails_at_start(peers, certs):
    first = peers.start("node1")
    second = peers.start("node2", listen=first.address, wait=False)
    assert second.wait(30) != 0
    assert "address already in use" in second.log_text()

    async def every_call_reaches_the_first():
        control = Control(first.address, certs)
        try:
            return [(await control.status()).id for _ in range(12)]
        finally:
            await control.aclose()

    assert asyncio.run(every_call_reaches_the_first()) == ["node1"] * 12


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def flood(port: int) -> list[socket.socket]:
    """Idle TCP connections, and connections that send bytes that are not TLS."""
    held = []
    for i in range(FLOOD_CONNECTIONS + NOT_TLS_CONNECTIONS):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        held.append(s)
    time.sleep(0.2)
    for s in held[FLOOD_CONNECTIONS:]:
        try:
            s.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 4)
        except OSError:
            pass  # closed by the peer already: over the cap
    return held


async def timed_status(control: Control) -> float:
    start = time.monotonic()
    reply = await control.stub.Status(control_pb2.StatusRequest(), timeout=CALL_TIMEOUT_S, wait_for_ready=True)
    assert reply.id == "node1"
    return time.monotonic() - start


async def test_a_flood_of_connections_is_capped_and_summed_up_in_a_few_log_lines(peers, certs):
    peers.config_text = FLOOD_CONFIG + peers.config_text
    peer = peers.start("node1")
    port = int(peer.address.rsplit(":", 1)[1])
    before_fds = open_fds(peer.proc.pid)
    lines_before = len(peer.log_lines())
    connected = Control(peer.address, certs)  # a client already connected when the flood comes
    await timed_status(connected)
    sockets = flood(port)
    try:
        waits, peak = [], 0
        for _ in range(10):  # while the flood holds its connections
            waits.append(await timed_status(connected))
            peak = max(peak, open_fds(peer.proc.pid))
            await asyncio.sleep(0.1)
        assert max(waits) < SERVED_WITHIN_S, waits
        # the cap bounds what the flood takes: far fewer fds than connections
        assert peak - before_fds <= CAP + 16, (before_fds, peak)
        assert peer.alive
    finally:
        for s in sockets:
            s.close()
        await connected.aclose()
    fresh = Control(peer.address, certs)  # a new client, once the flood let go
    try:
        assert await timed_status(fresh) < SERVED_WITHIN_S
        status = await fresh.status()
    finally:
        await fresh.aclose()
    refused = {k: v for k, v in status.counters.items() if k.startswith("refused.")}
    assert refused.get("refused.handshake_timeout", 0) > 0, refused

    async def summed_up():
        return any("without a line each" in line.get("msg", "") for line in peer.log_lines()[lines_before:])

    await eventually(summed_up, 10, "the refusal summary line")
    new_lines = peer.log_lines()[lines_before:]
    refusal_lines = [line for line in new_lines if "refused" in line.get("msg", "")]
    assert len(new_lines) < 40, json.dumps(new_lines[:50])[:3000]
    assert len(refusal_lines) <= 12


async def test_an_idle_connection_that_never_handshakes_is_closed(peers, certs):
    peers.config_text = FLOOD_CONFIG + peers.config_text
    peer = peers.start("node1")
    port = int(peer.address.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        start = time.monotonic()
        assert s.recv(1) == b""  # the peer hung up on it
        assert time.monotonic() - start < 3.0
    except ConnectionResetError:
        pass
    finally:
        s.close()


def test_fd_limit_is_raised_to_what_the_cap_needs():
    import resource

    from spirtd.rpc.server import raise_fd_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert raise_fd_limit(2048) == min(2048, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == min(2048, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_grpc_refusal_words_for_a_port_in_use():
    from spirtd.rpc.server import why_not_bound

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert why_not_bound(f"127.0.0.1:{s.getsockname()[1]}").startswith("address already in use")
