"""Stores of every backend on real servers, for the shared conformance suite.

native: a redis-server with spirt's module. plain: a redis-server with no
module at all. redisai: a real RedisAI, only when SPIRTD_TEST_REDISAI_URL
points at one (RedisAI is unmaintained and installable from no registry).
redisai-protocol: the RedisAI backend against spirt's module, which speaks
RedisAI's tensor protocol (AI.TENSORSET/AI.TENSORGET): this runs the
backend's tensor, chunk (Lua) and digest paths for real everywhere; only
its AI.SCRIPTEXECUTE paths need a real RedisAI.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, TypeVar

import pytest
import redis.asyncio as aioredis

from spirtd.store import TensorStore, connect
from spirtd.store import locate
from spirtd.store.redisai import RedisAIStore
from spirtd.store.server import PreparedServer, StoreServerConfig
from tests.conftest import RedisProcess

REDISAI_URL_ENV = "SPIRTD_TEST_REDISAI_URL"
BACKENDS = ["native", "plain", "redisai-protocol", "redisai"]
T = TypeVar("T")


def plain_redis(data_dir: Path) -> RedisProcess:
    """A redis-server with no module at all."""
    cfg = StoreServerConfig(data_dir=data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    password = "plain-test-password"
    argv = (str(locate.redis_server_path()), "--port", "0", "--unixsocket", str(cfg.socket_path),
            "--requirepass", password, "--dir", str(data_dir), "--save", "",
            "--logfile", str(cfg.log_path))  # fmt: skip
    server = RedisProcess(
        cfg=cfg,
        prepared=PreparedServer(argv=argv, socket_path=cfg.socket_path, password=password,
                                log_path=cfg.log_path),
    )
    server.start()
    return server


@dataclass
class StoreFactory:
    """Opens a fresh store client of one backend; usable from sync tests
    (hypothesis) through run()."""

    backend: str
    open: Callable[[], Awaitable[TensorStore]]

    def needs_script_execution(self) -> None:
        if self.backend == "redisai-protocol":
            pytest.skip("AI.SCRIPTEXECUTE needs a real RedisAI (see SPIRTD_TEST_REDISAI_URL)")

    def run(self, body: Callable[[TensorStore], Awaitable[T]]) -> T:
        async def main() -> T:
            async with await self.open() as store:
                return await body(store)

        return asyncio.run(main())


@pytest.fixture(params=BACKENDS)
def stores(request, start_redis, short_tmp) -> StoreFactory:
    backend = request.param
    if backend == "redisai":
        url = os.environ.get(REDISAI_URL_ENV)
        if not url:
            pytest.skip(f"no RedisAI to test against: set {REDISAI_URL_ENV}=redis://host:port")
        return StoreFactory(backend, lambda: connect(url, backend="redisai"))
    if backend == "redisai-protocol":
        server = start_redis()

        async def open_redisai_protocol() -> TensorStore:
            client = aioredis.Redis(unix_socket_path=str(server.socket_path), password=server.password)
            return RedisAIStore(client)

        return StoreFactory(backend, open_redisai_protocol)
    if backend == "native":
        server = start_redis()
    else:
        server = plain_redis(short_tmp / "plain")
        request.addfinalizer(server.stop)
    return StoreFactory(
        backend,
        lambda: connect(socket_path=server.socket_path, password=server.password, backend=backend),
    )

