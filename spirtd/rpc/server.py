"""The daemon's gRPC server and its channels to peers."""

from __future__ import annotations

import logging
from typing import Callable

import grpc

from spirtd.errors import ConfigError
from spirtd.rpc.guard import Guard, GuardInterceptor
from spirtd.rpc.tls import verify_as

_log = logging.getLogger("spirtd.rpc")

# gRPC itself refuses messages over this many times our own limit; between
# the two, the guard refuses them with a log line and a counter.
HARD_LIMIT_MULT = 2


# A peer that comes back must be reachable again at once: gRPC's default
# reconnect backoff (1 s, growing to 120 s) would fail probes to it meanwhile.
RECONNECT_BACKOFF_MS = {"initial": 100, "min": 100, "max": 1000}


def message_options(max_message_bytes: int) -> list[tuple[str, int]]:
    hard = max_message_bytes * HARD_LIMIT_MULT
    return [("grpc.max_receive_message_length", hard), ("grpc.max_send_message_length", hard)]


def peer_channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    backoff = [(f"grpc.{k}_reconnect_backoff_ms", v) for k, v in RECONNECT_BACKOFF_MS.items()]
    return message_options(max_message_bytes) + backoff


class RpcServer:
    """`async with RpcServer(...)`: listening and serving until closed."""

    def __init__(
        self,
        listen: str,
        *,
        credentials: grpc.ServerCredentials | None,
        guard: Guard,
        register: Callable[[grpc.aio.Server], None],
        max_message_bytes: int,
        grace_s: float,
    ) -> None:
        self._listen = listen
        self._credentials = credentials
        self._guard = guard
        self._register = register
        self._max_message_bytes = max_message_bytes
        self._grace_s = grace_s
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> "RpcServer":
        server = grpc.aio.server(
            interceptors=[GuardInterceptor(self._guard)],
            options=message_options(self._max_message_bytes),
        )
        self._register(server)
        try:
            if self._credentials is None:
                self.port = server.add_insecure_port(self._listen)
            else:
                self.port = server.add_secure_port(self._listen, self._credentials)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {self._listen}: {exc}") from exc
        if self.port == 0:
            raise ConfigError(f"cannot listen on {self._listen} (in use, or not an address of this host?)")
        await server.start()
        self._server = server
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(self._grace_s)


class ChannelPool:
    """One channel per (address, peer id), reused; mTLS unless insecure."""

    def __init__(self, credentials: grpc.ChannelCredentials | None, options: list[tuple[str, object]]) -> None:
        self._credentials = credentials
        self._options = options
        self._channels: dict[tuple[str, str | None], grpc.aio.Channel] = {}

    def get(self, address: str, peer_id: str | None = None) -> grpc.aio.Channel:
        key = (address, peer_id)
        channel = self._channels.get(key)
        if channel is None:
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(address, options=self._options)
            else:
                options = self._options + verify_as(peer_id)
                channel = grpc.aio.secure_channel(address, self._credentials, options=options)
            self._channels[key] = channel
        return channel

    async def drop(self, address: str) -> None:
        for key in [k for k in self._channels if k[0] == address]:
            await self._channels.pop(key).close()

    async def aclose(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
