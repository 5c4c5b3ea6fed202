"""spirtctl health's answer and exit code for each status, and the client's
health() (asyncio and blocking), against the real health service over real
mutual TLS (in process: the daemon's NOT_SERVING lasts only while it starts
or stops)."""

from __future__ import annotations

import argparse
import asyncio
import json

import pytest

from spirt_client import AsyncClient, Client
from spirt_client.errors import CallFailed
from spirtctl.health import EXIT_NOT_SERVING, EXIT_SERVING, check
from tests.rpc.test_health import CALL_TIMEOUT_S, certs, served  # noqa: F401 - fixtures


def args(port: int, service: str = "") -> argparse.Namespace:
    return argparse.Namespace(peer=f"127.0.0.1:{port}", service=service, json=True, timeout=CALL_TIMEOUT_S)


def client(certs, port: int) -> AsyncClient:  # noqa: F811 - fixture
    return AsyncClient(f"127.0.0.1:{port}", certs.path, name="alice", peer_id="node1", timeout_s=CALL_TIMEOUT_S)


async def test_spirtctl_health_exits_1_unless_serving(certs, served, capsys):  # noqa: F811 - fixtures
    port, health = served
    async with client(certs, port) as c:
        assert await check(c, args(port)) == EXIT_NOT_SERVING  # starting
        await health.ready()
        assert await check(c, args(port)) == EXIT_SERVING
        await health.shutting_down()
        assert await check(c, args(port)) == EXIT_NOT_SERVING
    lines = [json.loads(line)["status"] for line in capsys.readouterr().out.splitlines()]
    assert lines == ["NOT_SERVING", "SERVING", "NOT_SERVING"]


async def test_spirtctl_health_of_an_unknown_service_says_which_services_exist(certs, served):  # noqa: F811
    port, health = served
    await health.ready()
    async with client(certs, port) as c:
        with pytest.raises(CallFailed, match="serves no service 'spirt.v1.Nothing'.*spirt.v1.Control"):
            await check(c, args(port, "spirt.v1.Nothing"))


async def test_the_blocking_client_asks_health_too(certs, served):  # noqa: F811 - fixtures
    port, health = served
    await health.ready()

    def ask() -> str:
        with Client(f"127.0.0.1:{port}", certs.path, name="alice", peer_id="node1", timeout_s=CALL_TIMEOUT_S) as c:
            return c.health("spirt.v1.Control")

    assert await asyncio.to_thread(ask) == "SERVING"
