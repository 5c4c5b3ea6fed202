"""A real RedisAI for tests and benchmarks: ../shared/redisai/serve (RedisAI
1.2.7 with its torch backend) started on a free loopback port, or the one a
URL names. Used by tests/store/conftest.py and bench/aggregate.py."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import redis

SERVE = Path(__file__).resolve().parents[1].parent / "shared" / "redisai" / "serve"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
POLL_S = 0.05


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, log: Path) -> None:
    client = redis.Redis.from_url(url, socket_timeout=2)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"RedisAI exited with {proc.returncode} at start:\n{log.read_text()[-3000:]}")
            try:
                modules = client.execute_command("MODULE", "LIST")
                names = [entry.get(b"name") if isinstance(entry, dict) else entry[1] for entry in modules]
                if b"ai" in names:
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                pass
            time.sleep(POLL_S)
    finally:
        client.close()
    raise RuntimeError(f"RedisAI did not answer within {START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[tuple[str, Path]]:
    """Runs ../shared/redisai/serve in folder until the block ends; yields
    its URL and its unix socket. Stopped by its pid (SIGTERM, then SIGKILL)."""
    port = free_port()
    log = folder / "redisai.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(SERVE), str(folder), str(port), sys.executable], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    url = f"redis://127.0.0.1:{port}"
    try:
        _wait(url, proc, log)
        yield url, folder / "redisai.sock"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
