"""The daemon's settings: defaults, then a TOML file, then SPIRTD_* environment
variables, then command-line flags (flags win). Unknown keys are errors.

    id = "node1"
    listen = "0.0.0.0:7100"
    advertise = "10.0.0.1:7100"
    seeds = ["10.0.0.2:7100", "10.0.0.3:7100"]
    data_dir = "/var/lib/spirtd/node1"
    certs_dir = "/etc/spirtd/certs"
    log_format = "json"

    [membership]            # spirtd.membership.config.MembershipConfig fields
    probe_interval_s = 0.25

    [store]                 # the colocated Redis
    persistence = "aof"
    fsync = "everysec"
    threads = 2

    [metrics]               # Prometheus endpoint; off unless a port is set
    port = 9464
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from spirtd.errors import ConfigError
from spirtd.membership.config import MembershipConfig
from spirtd.metrics.config import MetricsConfig
from spirtd.security.identity import check_name
from spirtd.store.server import StoreServerConfig
from spirtd.jobs.config import JobsConfig
from spirtd.logs import FORMATS, LEVELS

DEFAULT_PORT = 7100
# gRPC takes message limits as 32-bit ints.
MIN_MESSAGE_BYTES = 1024
MAX_MESSAGE_BYTES = 1 << 30
ENV_PREFIX = "SPIRTD_"
TOP_KEYS = ("id", "listen", "advertise", "seeds", "data_dir", "certs_dir", "insecure",
             "log_level", "log_format", "max_message_bytes", "max_connections", "handshake_timeout_s",
             "idle_timeout_s", "refusal_log_interval_s", "refusal_log_burst", "shutdown_grace_s",
             "leave_timeout_s", "join_retry_s", "crl_poll_s")  # fmt: skip
_INT_KEYS = ("max_message_bytes", "max_connections", "refusal_log_burst")
_SECONDS_KEYS = ("handshake_timeout_s", "idle_timeout_s", "refusal_log_interval_s", "shutdown_grace_s",
                 "leave_timeout_s", "join_retry_s", "crl_poll_s")  # fmt: skip
_ADDRESS_KEYS = ("listen", "advertise")
MAX_CONNECTIONS = 1 << 20
# [store] keys and the StoreServerConfig fields they set.
STORE_KEYS = {"url": "url", "password_file": "url_password_file", "persistence": "persistence", "fsync": "fsync", "rdb_save": "rdb_save",
              "max_memory_mb": "max_memory_mb", "threads": "module_threads", "max_tensor_bytes": "max_tensor_bytes",
              "start_timeout_s": "start_timeout_s", "stop_timeout_s": "stop_timeout_s",
              "restart_backoff_s": "restart_backoff_s", "restart_backoff_max_s": "restart_backoff_max_s",
              "redis_server": "redis_server", "module_path": "module_path"}  # fmt: skip

METRICS_KEYS = {f.name: f.name for f in dataclasses.fields(MetricsConfig)}


def parse_address(text: str, *, what: str, allow_port_zero: bool = False) -> tuple[str, int]:
    """"host:port" or "[v6]:port" -> (host, port), with a clear error."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{what} {text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{what} {text!r} has no port number") from None
    if not (0 if allow_port_zero else 1) <= port <= 65535:
        raise ConfigError(f"{what} {text!r}: the port must be between 1 and 65535")
    return host, port


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


@dataclass(frozen=True)
class DaemonConfig:
    """Everything `spirtd run` needs; each field's text below is its entry
    in docs/settings.md (made by spirtd.daemon.settings_doc)."""

    id: str
    """This peer's name, as in its certificate (the peer id)."""

    data_dir: Path
    """Its store and state: DATA_DIR/store (the Redis), DATA_DIR/jobs (job
    records), DATA_DIR/node.json (incarnation, adopted revocation list).
    Default ./spirtd-data/ID."""

    listen: str = f"0.0.0.0:{DEFAULT_PORT}"
    """HOST:PORT the gRPC server binds (port 0: any free port). A second
    daemon on a port in use fails at start."""

    advertise: str | None = None
    """The address others reach this peer at; defaults to listen unless that
    is a wildcard (0.0.0.0, ::), which others cannot dial."""

    seeds: tuple[str, ...] = ()
    """Peers to join through (a list, or comma-separated); empty: this peer
    starts a cluster."""

    certs_dir: Path | None = None
    """ca.crt, ID.crt, ID.key and crl.pem (see certs/README.md)."""

    insecure: bool = False
    """No TLS and no authentication: local experiments only (logs a warning)."""

    log_level: str = "info"
    """debug, info, warning or error."""

    log_format: str = "text"
    """text for people, json for machines (one object a line)."""

    max_message_bytes: int = 4 << 20
    """The largest message a peer accepts or sends, 1 KiB to 1 GiB; a bigger
    one is refused with RESOURCE_EXHAUSTED naming this number."""

    max_connections: int = 1024
    """Connections the server holds at once, handshaking or not; one more is
    closed as soon as it is accepted. Bounds the file descriptors a flood of
    connections can take (the daemon raises its own open-file limit to what
    this needs)."""

    handshake_timeout_s: float = 2.0
    """How long a connection may take to complete its mutual-TLS handshake;
    an idle or slow one is closed then, freeing its place. Longer helps very
    slow links; shorter frees places taken by a flood sooner."""

    idle_timeout_s: float = 300.0
    """An authenticated connection with no call for this long is closed
    (clients and peers reconnect when they need to)."""

    refusal_log_interval_s: float = 10.0
    """Refused handshakes and calls get a log line each, up to
    refusal_log_burst per interval; the rest are summed up in one line per
    interval. All are counted (refused.* in spirtctl status)."""

    refusal_log_burst: int = 5
    """Refusals logged one line each per refusal_log_interval_s."""

    shutdown_grace_s: float = 2.0
    """How long calls in flight may finish at shutdown."""

    leave_timeout_s: float = 2.0
    """How long announcing a voluntary leave may take at shutdown."""

    join_retry_s: float = 1.0
    """Wait between rounds of trying the seeds."""

    crl_poll_s: float = 2.0
    """How often the certs dir's crl.pem is checked for a newer revocation
    list (copy one there, on any one peer, to revoke)."""

    membership: MembershipConfig = field(default_factory=MembershipConfig.default)
    """The [membership] table: SWIM timing."""

    store: StoreServerConfig | None = None
    """The [store] table: the colocated Redis."""

    jobs: JobsConfig = field(default_factory=JobsConfig)
    """The [jobs] table: what ended jobs keep."""

    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    """The [metrics] table: the Prometheus endpoint, off unless a port is set."""

    def __post_init__(self) -> None:
        check_name(self.id)
        parse_address(self.listen, what="--listen", allow_port_zero=True)
        if self.advertise is not None:
            host, _ = parse_address(self.advertise, what="--advertise")
            if _is_wildcard(host):
                raise ConfigError(f"--advertise {self.advertise} is a wildcard; give an address others can reach")
        elif _is_wildcard(parse_address(self.listen, what="--listen", allow_port_zero=True)[0]):
            raise ConfigError(f"--listen {self.listen} is a wildcard: give --advertise HOST:PORT too")
        for seed in self.seeds:
            parse_address(seed, what="seed")
        if self.log_level not in LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LEVELS)}, not {self.log_level!r}")
        if self.log_format not in FORMATS:
            raise ConfigError(f"log_format must be one of {', '.join(FORMATS)}, not {self.log_format!r}")
        if not self.insecure and self.certs_dir is None:
            raise ConfigError("--certs-dir is needed (or --insecure, for local experiments only)")
        if not MIN_MESSAGE_BYTES <= self.max_message_bytes <= MAX_MESSAGE_BYTES:
            raise ConfigError(f"max_message_bytes must be from {MIN_MESSAGE_BYTES} to {MAX_MESSAGE_BYTES}, "
                              f"not {self.max_message_bytes}")  # fmt: skip
        if not 1 <= self.max_connections <= MAX_CONNECTIONS:
            raise ConfigError(f"max_connections must be from 1 to {MAX_CONNECTIONS}, not {self.max_connections}")
        if not 0 <= self.refusal_log_burst <= MAX_CONNECTIONS:
            raise ConfigError(f"refusal_log_burst must be from 0 to {MAX_CONNECTIONS}, not {self.refusal_log_burst}")
        for name in _SECONDS_KEYS:
            if not 0 < getattr(self, name) < float("inf"):
                raise ConfigError(f"{name} must be a positive number of seconds, not {getattr(self, name)!r}")
        if self.store is None:
            object.__setattr__(self, "store", StoreServerConfig(data_dir=Path(self.data_dir) / "store"))


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{what} must be true or false, not {value!r}")


def _section(values: Mapping[str, Any], what: str, base: Any, keys: Mapping[str, str]) -> Any:
    """A [section] of the file applied to a config dataclass; keys maps the
    file's key names to the dataclass's field names."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"[{what}] must be a table")
    kwargs = {}
    for key, value in values.items():
        if key not in keys:
            raise ConfigError(f"unknown key {key!r} in [{what}]; known keys: {', '.join(sorted(keys))}")
        kwargs[keys[key]] = value
    try:
        return dataclasses.replace(base, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"[{what}]: {exc}") from exc
    except ConfigError as exc:
        raise ConfigError(_with_key_names(str(exc), keys)) from exc


def _with_key_names(message: str, keys: Mapping[str, str]) -> str:
    """A dataclass's error in the file's words: field names that differ
    from their keys (module_threads) become the keys (threads)."""
    for key, name in keys.items():
        if key != name:
            message = message.replace(name, key)
    return message


def read_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _converted(merged: dict[str, Any], key: str, kind: type) -> None:
    """merged[key] as an int or float; text (from the environment) is parsed.
    A float is no integer: int() would drop 1.5's fraction unseen."""
    if key not in merged:
        return
    value = merged[key]
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float)):
            raise ValueError
        merged[key] = kind(value)
    except (TypeError, ValueError, OverflowError):
        words = "an integer" if kind is int else "a number"
        raise ConfigError(f"{key} must be {words}, not {value!r}") from None


def _checked_text(merged: dict[str, Any], key: str, expected: str) -> None:
    value = merged.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be {expected}, not {value!r}")


def _seeds(value: Any) -> tuple[str, ...]:
    """A list of HOST:PORT, or one comma-separated text (the environment's form)."""
    if isinstance(value, str):
        value = [s for s in value.split(",") if s.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
        raise ConfigError(f"seeds must be a list of HOST:PORT texts (or one comma-separated text), not {value!r}")
    return tuple(s.strip() for s in value)


def _path(value: Any, key: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{key} must be a path (text), not {value!r}")
    return Path(value)


def from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """SPIRTD_ID, SPIRTD_LISTEN, SPIRTD_SEEDS (comma-separated), ... as keys."""
    values: dict[str, Any] = {}
    for key in TOP_KEYS:
        raw = env.get(ENV_PREFIX + key.upper())
        if raw is None:
            continue
        values[key] = [s for s in raw.split(",") if s.strip()] if key == "seeds" else raw
    return values


def build(file_values: Mapping[str, Any], env_values: Mapping[str, Any], flag_values: Mapping[str, Any]) -> DaemonConfig:
    """Merges the three layers (later wins) into a checked DaemonConfig."""
    merged: dict[str, Any] = {}
    for layer in (file_values, env_values, {k: v for k, v in flag_values.items() if v is not None}):
        merged.update(layer)
    membership_values = merged.pop("membership", {}) or {}
    store_values = merged.pop("store", {}) or {}
    jobs_values = merged.pop("jobs", {}) or {}
    metrics_values = merged.pop("metrics", {}) or {}
    unknown = set(merged) - set(TOP_KEYS)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}; known: {', '.join(TOP_KEYS)}")
    if "id" not in merged:
        raise ConfigError("--id is needed (the peer's name, as in its certificate)")
    merged["seeds"] = _seeds(merged.get("seeds", ()))
    merged["insecure"] = _bool(merged.get("insecure", False), "insecure")
    for key in _ADDRESS_KEYS:
        _checked_text(merged, key, "HOST:PORT text")
    data_dir = merged.pop("data_dir", "")
    data_dir = Path("spirtd-data") / str(merged["id"]) if data_dir in (None, "") else _path(data_dir, "data_dir")
    if merged.get("certs_dir") is not None:
        merged["certs_dir"] = _path(merged["certs_dir"], "certs_dir")
    for key in _INT_KEYS:
        _converted(merged, key, int)
    for key in _SECONDS_KEYS:
        _converted(merged, key, float)
    membership_keys = {f.name: f.name for f in dataclasses.fields(MembershipConfig)}
    membership = _section(membership_values, "membership", MembershipConfig.default(), membership_keys)
    store = _section(store_values, "store", StoreServerConfig(data_dir=data_dir / "store"), STORE_KEYS)
    jobs = _section(jobs_values, "jobs", JobsConfig(), {f.name: f.name for f in dataclasses.fields(JobsConfig)})
    metrics = _section(metrics_values, "metrics", MetricsConfig(), METRICS_KEYS)
    return DaemonConfig(data_dir=data_dir, membership=membership, store=store, jobs=jobs, metrics=metrics, **merged)


def load(config_file: Path | None, env: Mapping[str, str] | None, flags: Mapping[str, Any]) -> DaemonConfig:
    env = os.environ if env is None else env
    file_path = config_file or (Path(env[ENV_PREFIX + "CONFIG"]) if env.get(ENV_PREFIX + "CONFIG") else None)
    file_values = read_file(file_path) if file_path is not None else {}
    return build(file_values, from_environment(env), flags)
