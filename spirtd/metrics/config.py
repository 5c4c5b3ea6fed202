"""The [metrics] table: where the Prometheus endpoint listens, if anywhere.

    [metrics]
    port = 9464           # unset (the default): no endpoint
    host = "127.0.0.1"    # loopback unless told otherwise
"""

from __future__ import annotations

from dataclasses import dataclass

from spirtd.errors import ConfigError

MAX_PORT = 65535


@dataclass(frozen=True)
class MetricsConfig:
    port: int | None = None
    """TCP port of the Prometheus endpoint, http://HOST:PORT/metrics (plain
    HTTP, the text format); unset: no endpoint, nothing listens. 0: any free
    port, named in the log."""

    host: str = "127.0.0.1"
    """The address the endpoint binds: loopback, so only this host can
    scrape it; "0.0.0.0" or "::" for a scraper on another host. It has no
    TLS and no authentication (it shows the peer's id, counts and timings,
    never tensors or jobs): bind it beyond loopback only on a network you
    trust."""

    def __post_init__(self) -> None:
        if self.port is not None:
            if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= MAX_PORT:
                raise ConfigError(f"[metrics] port must be an integer from 0 to {MAX_PORT}, not {self.port!r}")
        if not isinstance(self.host, str) or not self.host.strip() or any(c.isspace() for c in self.host):
            raise ConfigError(f"[metrics] host must be an address or host name, not {self.host!r}")

    @property
    def enabled(self) -> bool:
        return self.port is not None
