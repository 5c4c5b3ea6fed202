"""Fixtures for the spirt module's tests, on top of tests/conftest.py.

- `node`: one server shared by the tests of a file (starting a server per
  test case would dominate the suite's run time); `sr` gives each test a
  client with an empty database and fails the test if the server died
  during it, so a crash is charged to the test that caused it.
- `start_spirt`: start_redis(...) plus the module's INLINE_BYTES load
  argument, which StoreServerConfig does not know about.
"""

from __future__ import annotations

from typing import Callable, Iterator

import pytest
import redis

from tests.conftest import RedisProcess

from .helpers import add_module_args, check_alive, running_server


@pytest.fixture(scope="module")
def node() -> Iterator[RedisProcess]:
    """A server shared by one test file (default load arguments)."""
    with running_server() as server:
        yield server


@pytest.fixture
def sr(node: RedisProcess) -> Iterator[redis.Redis]:
    """A client of the shared server, with an empty database."""
    check_alive(node)
    client = node.client()
    client.flushall()
    yield client
    client.close()
    check_alive(node)


@pytest.fixture
def start_spirt(start_redis: Callable[..., RedisProcess]) -> Callable[..., RedisProcess]:
    """start_spirt(name, inline_bytes=n, **StoreServerConfig fields): a server
    whose module also got INLINE_BYTES n (restarted once to apply it)."""

    def start(name: str = "node", inline_bytes: int | None = None, **cfg) -> RedisProcess:
        server = start_redis(name, **cfg)
        if inline_bytes is not None:
            server.stop()
            add_module_args(server.cfg.conf_path, "INLINE_BYTES", str(inline_bytes))
            server.start()
        return server

    return start
