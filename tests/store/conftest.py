"""Stores of every backend on real servers, for the shared conformance suite.

native: a redis-server with spirt's module. plain: a redis-server with no
module at all. redisai: a real RedisAI (1.2.7, torch backend): started from
../shared/redisai/serve when it is there (one server per test module,
flushed before every case, stopped by its pid), else the one
SPIRTD_TEST_REDISAI_URL points at (flushed too: give a scratch server);
with neither the cases skip, saying why, except under CI (CI=true), where
they fail. redisai-protocol: the RedisAI backend against spirt's module,
which speaks RedisAI's tensor protocol (AI.TENSORSET/AI.TENSORGET): the
backend's tensor, chunk (Lua) and digest paths, on any machine.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Iterator, TypeVar

import pytest
import redis.asyncio as aioredis

from spirtd.store import TensorStore, connect
from spirtd.store import locate
from spirtd.store.redisai import RedisAIStore
from spirtd.store.server import PreparedServer, StoreServerConfig
from tests import redisai_server
from tests.conftest import RedisProcess

REDISAI_URL_ENV = "SPIRTD_TEST_REDISAI_URL"

BACKENDS = ["native", "plain", "redisai-protocol", "redisai"]
# The backends that do tensor work (aggregation, optimizer steps): all but
# redisai-protocol, whose AI.SCRIPTEXECUTE needs a real RedisAI.
COMPUTING_BACKENDS = ["native", "plain", "redisai"]
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


@pytest.fixture(scope="module")
def redisai_url(tmp_path_factory) -> Iterator[str]:
    """The URL of a real RedisAI for this test module (see the module doc)."""
    if redisai_server.SERVE.is_file():
        with redisai_server.serve(tmp_path_factory.mktemp("redisai")) as (url, _):
            yield url
        return
    url = os.environ.get(REDISAI_URL_ENV)
    if url:
        yield url
        return
    why = f"no RedisAI to test against: neither {redisai_server.SERVE} nor {REDISAI_URL_ENV}=redis://host:port"
    if os.environ.get("CI"):
        pytest.fail(f"{why}; under CI the RedisAI backend's tests must run")
    pytest.skip(why)


async def _flushed(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushall()
    finally:
        await client.aclose()


@dataclass
class StoreFactory:
    """Opens a fresh store client of one backend; usable from sync tests
    (hypothesis) through run()."""

    backend: str
    open: Callable[[], Awaitable[TensorStore]]

    def run(self, body: Callable[[TensorStore], Awaitable[T]]) -> T:
        async def main() -> T:
            async with await self.open() as store:
                return await body(store)

        return asyncio.run(main())


@pytest.fixture(params=BACKENDS)
def stores(request, start_redis, short_tmp) -> StoreFactory:
    return _factory(request.param, request, start_redis, short_tmp)


@pytest.fixture(params=COMPUTING_BACKENDS)
def computing_stores(request, start_redis, short_tmp) -> StoreFactory:
    """Stores of the backends that do tensor work in the database."""
    return _factory(request.param, request, start_redis, short_tmp)


def _factory(backend: str, request, start_redis, short_tmp) -> StoreFactory:
    if backend == "redisai":
        url = request.getfixturevalue("redisai_url")
        asyncio.run(_flushed(url))  # no case sees what another left
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

