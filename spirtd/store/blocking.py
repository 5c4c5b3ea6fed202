"""The store API for code with no event loop of its own: a worker process.

    store = BlockingStore.from_env()        # where the daemon said the store is
    params = store.get("job:j1:params:3")   # same methods, same errors as TensorStore
    store.set("job:j1:round:3:grad:0", grad)

It is the async TensorStore (connect() picks the backend) run on a private
event loop, so key layout, chunking and error translation are written once.
How a worker finds the store travels in its environment (store_env()): the
colocated store's socket and password file, or the URL of an external one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from spirtd.errors import ConfigError
from spirtd.store.api import TensorMeta, TensorStore
from spirtd.store.connect import connect, read_password_file

SOCKET_ENV = "SPIRTD_STORE_SOCKET"
PASSWORD_FILE_ENV = "SPIRTD_STORE_PASSWORD_FILE"
URL_ENV = "SPIRTD_STORE_URL"

T = TypeVar("T")


def store_env(socket_path: Path | None = None, password_file: Path | None = None,
              url: str | None = None) -> dict[str, str]:  # fmt: skip
    """The environment that tells a worker where the store is: a socket and
    its password file, or a URL (and, if the password is not in it, a file)."""
    if url is not None:
        return {URL_ENV: url, **({PASSWORD_FILE_ENV: str(password_file)} if password_file is not None else {})}
    return {SOCKET_ENV: str(socket_path), PASSWORD_FILE_ENV: str(password_file)}


class BlockingStore:
    def __init__(self, loop: asyncio.AbstractEventLoop, store: TensorStore) -> None:
        self._loop = loop
        self._store = store

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "BlockingStore":
        """Connects to the store store_env() described (ConfigError when the
        environment says nothing usable)."""
        url, socket, password_file = env.get(URL_ENV), env.get(SOCKET_ENV), env.get(PASSWORD_FILE_ENV)
        if url:
            opened = connect(url, password=read_password_file(password_file) if password_file else None)
        elif socket and password_file:
            opened = connect(socket_path=socket, password=read_password_file(password_file))
        else:
            raise ConfigError(f"a worker needs {URL_ENV}, or {SOCKET_ENV} and {PASSWORD_FILE_ENV}, to reach the store")
        loop = asyncio.new_event_loop()
        try:
            return cls(loop, loop.run_until_complete(opened))
        except BaseException:
            loop.close()
            raise

    @property
    def backend(self) -> str:
        return self._store.backend

    def get(self, key: str) -> np.ndarray:
        return self._run(self._store.get(key))

    def set(self, key: str, array: np.ndarray) -> None:
        self._run(self._store.set(key, array))

    def meta(self, key: str) -> TensorMeta:
        return self._run(self._store.meta(key))

    def exists(self, key: str) -> bool:
        return self._run(self._store.exists(key))

    def delete(self, *keys: str) -> int:
        return self._run(self._store.delete(*keys))

    def close(self) -> None:
        if not self._loop.is_closed():
            self._run(self._store.aclose())
            self._loop.close()

    def __enter__(self) -> "BlockingStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(call)
