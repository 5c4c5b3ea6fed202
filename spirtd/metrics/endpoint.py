"""The HTTP endpoint Prometheus scrapes: GET /metrics answers the registry
in the text format, collected on the event loop (so collectors read the
daemon's state from its own thread); anything else is 404 or 405.

    async with MetricsEndpoint("127.0.0.1", 9464, registry, clock) as endpoint:
        ...                                   # endpoint.port: the port bound

Each connection gets one answer and is closed. A request must arrive
within REQUEST_TIMEOUT_S and fit in MAX_REQUEST_BYTES; at most
MAX_CONNECTIONS are served at once, others are closed unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from spirtd.clock import Clock, clock_timeout
from spirtd.errors import ConfigError

METRICS_PATH = "/metrics"
REQUEST_TIMEOUT_S = 5.0
MAX_REQUEST_BYTES = 8192
MAX_CONNECTIONS = 16
_log = logging.getLogger("spirtd.metrics")


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class MetricsEndpoint:
    def __init__(self, host: str, port: int, registry: CollectorRegistry, clock: Clock) -> None:
        self._host = host
        self._registry = registry
        self._clock = clock
        self.port = port
        self._server: asyncio.Server | None = None
        self._open = 0

    @property
    def address(self) -> str:
        return _address(self._host, self.port)

    async def __aenter__(self) -> "MetricsEndpoint":
        try:
            self._server = await asyncio.start_server(self._serve, self._host, self.port, limit=MAX_REQUEST_BYTES)
        except OSError as exc:
            why = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise ConfigError(f"cannot serve metrics on {self.address} ([metrics] host and port): {why}") from None
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        try:
            if self._open <= MAX_CONNECTIONS:
                async with clock_timeout(self._clock, REQUEST_TIMEOUT_S):
                    head = await reader.readuntil(b"\r\n\r\n")
                    writer.write(self.answer(head))
                    await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a scraper that went away, or sent no HTTP request in time: nothing to answer
        finally:
            self._open -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def answer(self, head: bytes) -> bytes:
        """The whole HTTP response to a request's head (its request line and headers)."""
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _response(400, "Bad Request", b"not an HTTP request\n")
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return _response(405, "Method Not Allowed", b"only GET\n", extra="Allow: GET, HEAD\r\n")
        if target != METRICS_PATH:
            return _response(404, "Not Found", f"nothing here: the metrics are at {METRICS_PATH}\n".encode())
        try:
            body = generate_latest(self._registry)
        except Exception:  # noqa: BLE001 - the HTTP boundary: a collector's bug answers 500, the peer goes on
            _log.exception("collecting the metrics failed")
            return _response(500, "Internal Server Error", b"collecting the metrics failed: see the peer's log\n")
        return _response(200, "OK", body, content_type=CONTENT_TYPE_PLAIN_0_0_4, head_only=method == "HEAD")


def _response(code: int, reason: str, body: bytes, *, content_type: str = "text/plain; charset=utf-8",
              extra: str = "", head_only: bool = False) -> bytes:  # fmt: skip
    head = (f"HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"{extra}Connection: close\r\n\r\n")  # fmt: skip
    return head.encode("latin-1") + (b"" if head_only else body)
