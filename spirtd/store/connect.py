"""Opens a tensor store and picks its backend from what the Redis has loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from spirtd.errors import ConfigError, StoreUnavailable
from spirtd.store.api import DEFAULT_CHUNK_BYTES, TensorStore

Backend = Literal["native", "redisai", "plain"]

# How much of a reply one socket read takes: a tensor's chunk of megabytes
# in 64 KiB reads (redis-py's default) costs 15% more CPU.
SOCKET_READ_BYTES = 1 << 20
# MODULE LIST names: spirt's own module, and RedisAI's.
_MODULE_BACKEND = {"spirt": "native", "ai": "redisai"}


def store_class(backend: str) -> type[TensorStore]:
    """The class of a backend (imported on use: the RedisAI one brings torch
    script sources that most nodes never need)."""
    if backend == "native":
        from spirtd.store.native import NativeStore

        return NativeStore
    if backend == "plain":
        from spirtd.store.plain import PlainStore

        return PlainStore
    if backend == "redisai":
        from spirtd.store.redisai import RedisAIStore

        return RedisAIStore
    raise ConfigError(f"unknown store backend {backend!r}; use native, redisai or plain")


async def detect_backend(client: aioredis.Redis) -> Backend:
    """native if spirt's module is loaded, redisai if RedisAI is, else plain."""
    try:
        modules = await client.execute_command("MODULE", "LIST")
    except ResponseError:
        return "plain"  # MODULE disabled or unknown: treat as a plain Redis
    names = set()
    for entry in modules:
        fields = entry if isinstance(entry, dict) else dict(zip(entry[::2], entry[1::2]))
        name = fields.get(b"name", fields.get("name", b""))
        names.add(name.decode() if isinstance(name, bytes) else name)
    for module, backend in _MODULE_BACKEND.items():
        if module in names:
            return backend  # type: ignore[return-value]
    return "plain"


def read_password_file(path: Path | str) -> str:
    """A store's password from its file (such as a store's store.password),
    or StoreUnavailable saying which file could not be used."""
    try:
        password = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreUnavailable(f"cannot read the store's password file {path}: {exc}") from exc
    if not password:
        raise StoreUnavailable(f"the store's password file {path} is empty")
    return password


async def connect(
    url: str | None = None,
    *,
    socket_path: Path | str | None = None,
    password: str | None = None,
    backend: Backend | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> TensorStore:
    """Connects to a Redis (a redis:// or unix:// URL, or a unix socket path)
    and returns the store for its backend. With backend given, refuses a
    Redis that cannot serve it (plain works with any Redis)."""
    if (url is None) == (socket_path is None):
        raise ConfigError("give exactly one of url or socket_path")
    # No client-side timeout (callers scope their waits) and no retries: a
    # retried SPIRT.ADAM after a dropped reply would take the step twice.
    settings = {"socket_timeout": None, "retry": Retry(NoBackoff(), 0), "socket_read_size": SOCKET_READ_BYTES}
    if url is not None:
        client = aioredis.Redis.from_url(url, password=password, **settings)
    else:
        client = aioredis.Redis(unix_socket_path=str(socket_path), password=password, **settings)
    try:
        found = await detect_backend(client)
    except (RedisConnectionError, OSError) as exc:
        await client.aclose()
        raise StoreUnavailable(f"cannot reach the tensor store at {url or socket_path}: {exc}") from exc
    chosen = backend or found
    try:
        cls = store_class(chosen)
    except ConfigError:
        await client.aclose()
        raise
    if chosen != found and chosen != "plain":
        await client.aclose()
        raise ConfigError(
            f"backend {chosen} needs {'spirt' if chosen == 'native' else 'the RedisAI'} module, "
            f"but the Redis at {url or socket_path} serves {found}"
        )
    return cls(client, chunk_bytes=chunk_bytes)
