"""The daemon's gRPC server and its channels to peers.

The server takes at most max_connections at once (handshaking or not: gRPC
closes one more as soon as it accepts it), gives each connection
handshake_timeout_s to complete its mutual-TLS handshake, closes
authenticated connections idle for idle_timeout_s, and binds its port
alone (no SO_REUSEPORT: a second daemon on the same port fails at start
instead of sharing the calls).
"""

from __future__ import annotations

import errno
import logging
import resource
import socket
from dataclasses import dataclass
from typing import Callable

import grpc

from spirtd.errors import ConfigError
from spirtd.rpc.guard import Guard, GuardInterceptor
from spirtd.rpc.tls import verify_as

_log = logging.getLogger("spirtd.rpc")

# A peer that comes back must be reachable again at once: gRPC's default
# reconnect backoff (1 s, growing to 120 s) would fail probes to it meanwhile.
RECONNECT_BACKOFF_MS = {"initial": 100, "min": 100, "max": 1000}


def message_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """gRPC's own limits: exactly max_message_bytes, the one number every
    refusal of a big message names."""
    return [("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes)]  # fmt: skip


def peer_channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    backoff = [(f"grpc.{k}_reconnect_backoff_ms", v) for k, v in RECONNECT_BACKOFF_MS.items()]
    return message_options(max_message_bytes) + backoff


# File descriptors the daemon needs besides its connections: the store's
# clients, worker pipes, logs, channels to peers.
FD_RESERVE = 1024


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 1024
    handshake_timeout_s: float = 2.0
    idle_timeout_s: float = 300.0


def server_options(max_message_bytes: int, limits: ConnectionLimits) -> list[tuple[str, int]]:
    return message_options(max_message_bytes) + [
        ("grpc.so_reuseport", 0),
        ("grpc.max_allowed_incoming_connections", limits.max_connections),
        ("grpc.server_handshake_timeout_ms", max(1, round(limits.handshake_timeout_s * 1000))),
        ("grpc.max_connection_idle_ms", max(1, round(limits.idle_timeout_s * 1000))),
    ]


def raise_fd_limit(needed: int) -> int:
    """Raises this process's soft limit of open files towards needed (up to
    the hard limit); returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def why_not_bound(address: str) -> str:
    """In words, why a bind to address fails (gRPC only says that it did)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
        probe.bind((host, int(port)))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return "address already in use (is another spirtd running there?)"
        return exc.strerror or str(exc)
    except (ValueError, OverflowError) as exc:
        return str(exc)
    finally:
        probe.close()
    return "gRPC could not bind it"


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
        limits: ConnectionLimits | None = None,
    ) -> None:
        self._listen = listen
        self._credentials = credentials
        self._guard = guard
        self._register = register
        self._max_message_bytes = max_message_bytes
        self._grace_s = grace_s
        self._limits = limits or ConnectionLimits()
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> "RpcServer":
        limits = self._limits
        soft = raise_fd_limit(limits.max_connections + FD_RESERVE)
        if soft < limits.max_connections + FD_RESERVE:
            allowed = max(1, soft - FD_RESERVE)
            _log.warning("the open-file limit is %d: serving at most %d connections, not max_connections = %d",
                         soft, allowed, limits.max_connections)  # fmt: skip
            limits = ConnectionLimits(allowed, limits.handshake_timeout_s, limits.idle_timeout_s)
        server = grpc.aio.server(
            interceptors=[GuardInterceptor(self._guard)],
            options=server_options(self._max_message_bytes, limits),
        )
        self._register(server)
        try:
            if self._credentials is None:
                self.port = server.add_insecure_port(self._listen)
            else:
                self.port = server.add_secure_port(self._listen, self._credentials)
        except RuntimeError:
            raise ConfigError(f"cannot listen on {self._listen}: {why_not_bound(self._listen)}") from None
        if self.port == 0:
            raise ConfigError(f"cannot listen on {self._listen}: {why_not_bound(self._listen)}")
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
