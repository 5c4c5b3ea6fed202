"""`spirtd store ...` as a person runs it: the console script, in a subprocess."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import redis

from spirtd.cli import main
from spirtd.logs import setup_logging

pytestmark = pytest.mark.timeout(60)

SPIRTD = Path(sys.executable).parent / "spirtd"
# Bounds of the waits in these tests.
WAIT_S = 15.0
POLL_S = 0.02
READY_LINE = "store serving on unix socket"


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def processes_naming(path: Path) -> list[int]:
    """Live processes whose command line contains path."""
    needle = str(path).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            found.append(int(entry))
    return found


@pytest.fixture
def data_root(short_tmp: Path) -> Iterator[Path]:
    """A short temp dir; fails the test if a process naming it outlives it."""
    yield short_tmp
    leftovers = processes_naming(short_tmp)
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    if leftovers:
        pytest.fail(f"processes outlived the test: {leftovers}")


def spirtd(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(SPIRTD), *args], capture_output=True, text=True, timeout=WAIT_S, **kwargs)


def wait_for_line(path: Path, text: str, proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines():
            if text in line:
                return line
        if proc.poll() is not None:
            pytest.fail(f"spirtd exited with {proc.returncode}:\n{path.read_text()}")
        time.sleep(POLL_S)
    pytest.fail(f"spirtd did not log {text!r} within {WAIT_S}s:\n{path.read_text()}")


def test_store_path_prints_the_module() -> None:
    done = spirtd("store", "path")
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.is_file() and path.suffix == ".so"


def test_store_serve_until_sigterm(data_root: Path) -> None:
    data_dir = data_root / "node"
    log = data_root / "spirtd.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [str(SPIRTD), "store", "serve", "--data-dir", str(data_dir), "--threads", "2"],
            stdout=subprocess.DEVNULL, stderr=stderr,
        )
    redis_pid = None
    try:
        line = wait_for_line(log, READY_LINE, proc)
        assert str(data_dir / "redis.sock") in line and str(data_dir / "store.password") in line
        password = (data_dir / "store.password").read_text().strip()
        client = redis.Redis(unix_socket_path=str(data_dir / "redis.sock"), password=password)
        try:
            assert client.execute_command("AI.TENSORSET", "k", "FLOAT", 2, "VALUES", 1, 2) == b"OK"
            redis_pid = int(client.info("server")["process_id"])
        finally:
            client.close()
        assert pid_exists(redis_pid)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT_S) == 0, log.read_text()
        assert not pid_exists(redis_pid)
        # aof by default: the log holds the write, and no snapshot was taken
        assert not (data_dir / "dump.rdb").exists()
        assert (data_dir / "appendonly.aof").exists() or (data_dir / "appendonlydir").is_dir()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if redis_pid is not None and pid_exists(redis_pid):
            os.kill(redis_pid, signal.SIGKILL)


def test_store_serve_rejects_zero_threads(data_root: Path) -> None:
    done = spirtd("store", "serve", "--data-dir", str(data_root / "node"), "--threads", "0")
    assert done.returncode == 2
    assert "--threads must be between 1 and 256" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (data_root / "node").exists()


def test_store_serve_reports_a_failed_start(data_root: Path) -> None:
    bogus = data_root / "bogus.so"
    bogus.write_text("not a module\n")
    bogus.chmod(0o755)
    env = dict(os.environ, SPIRTD_MODULE_PATH=str(bogus))
    done = spirtd("store", "serve", "--data-dir", str(data_root / "node"), env=env)
    assert done.returncode == 1
    first = done.stderr.splitlines()[0]
    assert first.startswith("spirtd store: error: redis-server exited with code 1 at start")
    assert f"Can't load module from {bogus}" in first


def test_main_returns_usage_errors(capsys) -> None:
    assert main(["store"]) == 2
    assert "ACTION" in capsys.readouterr().err
    assert main(["--version"]) == 0


def test_logs_json_one_object_a_line() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    try:
        setup_logging("debug", "json", stream=out)
        logging.getLogger("spirtd.test").info("hello %s", "there", extra={"peer": "p1"})
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    entry = json.loads(out.getvalue().strip())
    assert entry["msg"] == "hello there" and entry["peer"] == "p1"
    assert entry["level"] == "info" and entry["logger"] == "spirtd.test" and entry["ts"]
