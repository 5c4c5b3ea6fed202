"""Shared fixtures: real redis-server processes with the real spirt module.

Every server a test starts is stopped at teardown; a server that died with
an error (a sanitizer report, a crash) fails the test that started it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest
import redis

from spirtd.store import locate
from spirtd.store.server import PreparedServer, StoreServerConfig, prepare

# How long a test waits for a server to start or stop.
SERVER_START_TIMEOUT_S = 20.0
SERVER_STOP_TIMEOUT_S = 20.0
POLL_S = 0.02


def _sanitizer_env() -> dict[str, str]:
    """With SPIRTD_SANITIZER=asan, the module under test is an ASan build,
    which needs the ASan runtime loaded first into redis-server."""
    env = dict(os.environ)
    if os.environ.get("SPIRTD_SANITIZER") == "asan":
        lib = subprocess.run(
            ["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
        ).stdout.strip()
        env["LD_PRELOAD"] = lib
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:exitcode=97"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1:exitcode=98"
    return env


def allow_debug_command(conf: Path, server: Path) -> None:
    """Redis 7 refuses DEBUG unless configured; some tests use DEBUG DIGEST
    and DEBUG RELOAD (tests only: spirtd's own config keeps it off)."""
    if locate.redis_server_version(server) >= (7, 0, 0):
        with open(conf, "a") as f:
            f.write("enable-debug-command local\n")


@dataclass
class RedisProcess:
    """One running redis-server with the spirt module, for tests."""

    cfg: StoreServerConfig
    prepared: PreparedServer
    proc: subprocess.Popen | None = None
    clients: list[redis.Redis] = field(default_factory=list)

    @property
    def socket_path(self) -> Path:
        return self.prepared.socket_path

    @property
    def password(self) -> str:
        return self.prepared.password

    def start(self) -> None:
        self.proc = subprocess.Popen(
            list(self.prepared.argv),
            env=_sanitizer_env(),
            stdout=subprocess.DEVNULL,
            stderr=open(self.cfg.data_dir / "stderr.log", "ab"),
        )
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited at start:\n{self.log_tail()}")
            try:
                if self.client(socket_timeout=1).ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                time.sleep(POLL_S)
        raise RuntimeError(f"redis-server did not answer within {SERVER_START_TIMEOUT_S}s")

    def client(self, **kwargs) -> redis.Redis:
        c = redis.Redis(unix_socket_path=str(self.socket_path), password=self.password, **kwargs)
        self.clients.append(c)
        return c

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for name in ("redis.log", "stderr.log"):
            path = self.cfg.data_dir / name
            if path.exists():
                text += "".join(path.read_text(errors="replace").splitlines(True)[-lines:])
        return text

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stops the server and returns its exit status."""
        for c in self.clients:
            c.close()
        self.clients.clear()
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("redis-server did not stop in time") from None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary dir with a short path (unix socket paths are limited)."""
    path = Path(tempfile.mkdtemp(prefix="spt-", dir="/tmp"))
    try:
        yield path
    finally:
        keep = os.environ.get("SPIRTD_TEST_KEEP_LOGS")  # a directory: the logs of every test, for a post-mortem
        if keep:
            for log in path.glob("**/*.log"):
                target = Path(keep) / path.name / log.relative_to(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(log, target)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_redis(short_tmp: Path) -> Iterator[Callable[..., RedisProcess]]:
    """Starts servers on demand: start_redis(persistence="aof", ...)."""
    started: list[RedisProcess] = []

    def start(name: str = "node", **cfg_kwargs) -> RedisProcess:
        cfg_kwargs.setdefault("persistence", "none")
        cfg = StoreServerConfig(data_dir=short_tmp / name, **cfg_kwargs)
        prepared = prepare(cfg)
        allow_debug_command(cfg.conf_path, Path(prepared.argv[0]))
        server = RedisProcess(cfg=cfg, prepared=prepared)
        started.append(server)
        server.start()
        return server

    yield start
    failures = []
    for server in started:
        code = server.stop()
        if code not in (0, -signal.SIGKILL):
            failures.append(f"redis-server exited with {code}:\n{server.log_tail()}")
    if failures:
        pytest.fail("\n".join(failures))


@pytest.fixture
def redis_node(start_redis: Callable[..., RedisProcess]) -> RedisProcess:
    return start_redis()


@pytest.fixture
def r(redis_node: RedisProcess) -> redis.Redis:
    """A client of a fresh server with the module loaded."""
    return redis_node.client()
