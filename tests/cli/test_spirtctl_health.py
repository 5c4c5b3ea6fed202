"""spirtctl health's answer and exit code for each status, against the real
health service over real mutual TLS (in process: the daemon's NOT_SERVING
lasts only while it starts or stops)."""

from __future__ import annotations

import argparse
import json

from spirtctl.health import EXIT_NOT_SERVING, EXIT_SERVING, check
from tests.rpc.test_health import CALL_TIMEOUT_S, certs, channel, served  # noqa: F401 - fixtures


def args(port: int) -> argparse.Namespace:
    return argparse.Namespace(peer=f"127.0.0.1:{port}", service="", json=True, timeout=CALL_TIMEOUT_S)


async def test_spirtctl_health_exits_1_unless_serving(certs, served, capsys):  # noqa: F811 - fixtures
    port, health = served
    async with channel(certs, port, "alice") as ch:
        assert await check(ch, args(port)) == EXIT_NOT_SERVING  # starting
        await health.ready()
        assert await check(ch, args(port)) == EXIT_SERVING
        await health.shutting_down()
        assert await check(ch, args(port)) == EXIT_NOT_SERVING
    lines = [json.loads(line)["status"] for line in capsys.readouterr().out.splitlines()]
    assert lines == ["NOT_SERVING", "SERVING", "NOT_SERVING"]
