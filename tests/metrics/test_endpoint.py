"""The metrics endpoint over real HTTP on loopback: the registry in the text
format at /metrics, clear answers elsewhere, a silent connection closed at
its deadline, a port in use a config error."""

from __future__ import annotations

import asyncio
import socket

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from spirtd.clock import FakeClock, SystemClock
from spirtd.errors import ConfigError
from spirtd.metrics.endpoint import REQUEST_TIMEOUT_S, MetricsEndpoint

READ_S = 5.0
QUIET_S = 0.05


def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    Counter("things", "Things seen", ["kind"], registry=reg).labels("good").inc(3)
    return reg


async def ask(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        raw = await asyncio.wait_for(reader.read(), READ_S)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *headers = head.decode().split("\r\n")
    return status, dict(h.split(": ", 1) for h in headers), body


async def test_endpoint_serves_the_registry_in_the_text_format():
    async with MetricsEndpoint("127.0.0.1", 0, registry(), SystemClock()) as endpoint:
        status, headers, body = await ask(endpoint.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head_status, head_headers, head_body = await ask(endpoint.port, b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.1 200 OK" and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert int(headers["Content-Length"]) == len(body)
    things = {f.name: f for f in text_string_to_metric_families(body.decode())}["things"]
    assert [(s.name, s.labels, s.value) for s in things.samples if s.name == "things_total"] == [
        ("things_total", {"kind": "good"}, 3.0)]
    assert head_status == "HTTP/1.1 200 OK" and head_body == b"" and head_headers["Content-Length"] == str(len(body))


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
        (b"POST /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
        (b"hello there\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    ],
    ids=["elsewhere", "post", "not-http"],
)
async def test_endpoint_answers_other_requests_plainly(request_bytes, status):
    async with MetricsEndpoint("127.0.0.1", 0, registry(), SystemClock()) as endpoint:
        got, _, body = await ask(endpoint.port, request_bytes)
    assert got == status and body


async def test_endpoint_closes_a_silent_connection_at_its_deadline():
    clock = FakeClock()
    async with MetricsEndpoint("127.0.0.1", 0, registry(), clock) as endpoint:
        reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
        writer.write(b"GET /metr")  # and nothing more
        with pytest.raises(TimeoutError):  # no time passed: still open
            await asyncio.wait_for(asyncio.shield(read := asyncio.ensure_future(reader.read())), QUIET_S)

        async def closed() -> bytes:
            while not read.done():
                clock.advance(REQUEST_TIMEOUT_S)
                await asyncio.sleep(QUIET_S)
            return read.result()

        assert await asyncio.wait_for(closed(), READ_S) == b""
        writer.close()


async def test_endpoint_on_a_port_in_use_is_a_config_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"cannot serve metrics on 127.0.0.1:{port} .*address already in use"):
            async with MetricsEndpoint("127.0.0.1", port, registry(), SystemClock()):
                pass


class Broken(Collector):
    def collect(self):
        raise ValueError("a bug in a collector")


async def test_endpoint_answers_500_when_collecting_fails(caplog):
    reg = registry()
    reg.register(Broken())
    async with MetricsEndpoint("127.0.0.1", 0, reg, SystemClock()) as endpoint:
        status, _, _ = await ask(endpoint.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        again, _, _ = await ask(endpoint.port, b"GET / HTTP/1.1\r\n\r\n")  # still serving
    assert status == "HTTP/1.1 500 Internal Server Error" and again.startswith("HTTP/1.1 404")
    assert "collecting the metrics failed" in caplog.text
