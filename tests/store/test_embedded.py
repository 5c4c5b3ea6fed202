"""EmbeddedStore on real redis-server processes: start, privacy, the module,
restarts after SIGKILL with the data back from disk, failing starts, close,
and the restart backoff on a FakeClock.

Every test runs in a short temp dir (unix socket paths are limited); after
each test, any process whose command line names that dir is killed and fails
the test, so that no redis-server outlives a test, even a failing one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import stat
import sys
from pathlib import Path
from typing import Awaitable, Callable, Iterator

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from spirtd.clock import FakeClock
from spirtd.errors import StoreUnavailable
from spirtd.store.embedded import EmbeddedStore, StoreState
from spirtd.store.locate import loadable_module_path
from spirtd.store.server import StoreServerConfig

pytestmark = pytest.mark.timeout(60)

# Bounds of the waits in these tests.
WAIT_S = 15.0
POLL_S = 0.01
# How long a test checks that something does not happen.
QUIET_S = 0.2
# Fast restarts on the system clock.
FAST_BACKOFF_S = 0.02


def processes_naming(path: Path) -> list[int]:
    """Pids of live processes whose command line contains path (redis-server
    retitles itself "redis-server unixsocket:<data dir>/redis.sock")."""
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


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def data_root(short_tmp: Path) -> Iterator[Path]:
    """A short temp dir; fails the test if a process naming it outlives it."""
    yield short_tmp
    leftovers = processes_naming(short_tmp)
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    if leftovers:
        pytest.fail(f"processes outlived the test: {leftovers}")


@pytest.fixture
def make_cfg(data_root: Path) -> Callable[..., StoreServerConfig]:
    def make(name: str = "node", **kwargs) -> StoreServerConfig:
        kwargs.setdefault("persistence", "none")
        kwargs.setdefault("restart_backoff_s", FAST_BACKOFF_S)
        return StoreServerConfig(data_dir=data_root / name, **kwargs)

    return make


async def eventually(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not check():
            await asyncio.sleep(POLL_S)


async def with_client(store: EmbeddedStore, body: Callable[[aioredis.Redis], Awaitable]) -> object:
    client = store.client()
    try:
        return await body(client)
    finally:
        await client.aclose()


async def kill_and_await_restart(store: EmbeddedStore, count: int) -> None:
    old = store.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    await eventually(lambda: store.restarts == count)
    await store.wait_ready()
    assert store.pid not in (None, old)


def tensorset(key: str, *values: float) -> tuple:
    return ("AI.TENSORSET", key, "FLOAT", len(values), "VALUES", *values)


async def test_embedded_starts_private(make_cfg) -> None:
    cfg = make_cfg()
    async with EmbeddedStore(cfg) as store:
        assert store.state is StoreState.RUNNING
        assert stat.S_ISSOCK(os.stat(store.socket_path).st_mode)
        assert stat.S_IMODE(os.stat(cfg.data_dir).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(cfg.password_file).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(cfg.conf_path).st_mode) == 0o600
        assert cfg.password_file.read_text().strip() == store.password

        async def body(c: aioredis.Redis) -> None:
            # redis-py 8 decodes CONFIG GET; older versions return bytes
            assert await c.config_get("port") in ({"port": "0"}, {b"port": b"0"})
            assert await c.ping()

        await with_client(store, body)
        # Without the password the server answers NOAUTH...
        reader, writer = await asyncio.open_unix_connection(store.socket_path)
        try:
            writer.write(b"PING\r\n")
            assert (await reader.readline()).startswith(b"-NOAUTH")
        finally:
            writer.close()
        # ...which redis-py 8 reports from the HELLO it sends on connecting
        # as an AuthenticationError wrapped in a ConnectionError.
        anonymous = aioredis.Redis(
            unix_socket_path=str(store.socket_path), retry=Retry(NoBackoff(), 0)
        )
        try:
            with pytest.raises(redis.ConnectionError, match="NOAUTH|authenticated"):
                await anonymous.ping()
        finally:
            await anonymous.aclose()


async def test_embedded_loads_the_module(make_cfg) -> None:
    async with EmbeddedStore(make_cfg()) as store:

        async def body(c: aioredis.Redis) -> None:
            names = {m[b"name"] for m in await c.execute_command("MODULE", "LIST")}
            assert b"spirt" in names
            assert await c.execute_command(*tensorset("k", 1, 2)) == b"OK"

        await with_client(store, body)


@pytest.mark.parametrize("persistence", ["rdb", "aof"])
async def test_embedded_restarts_after_sigkill_with_data(make_cfg, persistence: str) -> None:
    async with EmbeddedStore(make_cfg(persistence=persistence)) as store:

        async def write(c: aioredis.Redis) -> bytes:
            if persistence == "aof":
                await c.config_set("appendfsync", "always")  # no explicit save
            await c.execute_command(*tensorset("k", 1.5, -2.25, 3))
            if persistence == "rdb":
                await c.save()
            return await c.execute_command("AI.TENSORGET", "k", "BLOB")

        before = await with_client(store, write)
        await kill_and_await_restart(store, 1)

        async def read(c: aioredis.Redis) -> bytes:
            return await c.execute_command("AI.TENSORGET", "k", "BLOB")

        assert await with_client(store, read) == before


async def test_embedded_shutdown_saves_per_persistence(make_cfg) -> None:
    """aclose saves with rdb (SHUTDOWN SAVE), relies on the log with aof
    (no snapshot of a big store to wait for), and keeps nothing with none."""
    for persistence, kept in (("rdb", True), ("aof", True), ("none", False)):
        cfg = make_cfg(f"n-{persistence}", persistence=persistence)
        async with EmbeddedStore(cfg) as store:
            await with_client(store, lambda c: c.execute_command(*tensorset("k", 7)))
        assert (cfg.data_dir / "dump.rdb").exists() is (persistence == "rdb")
        async with EmbeddedStore(cfg) as store:
            assert await with_client(store, lambda c: c.exists("k")) == int(kept)


async def test_embedded_removes_temporary_files_of_a_cut_short_save(make_cfg, caplog) -> None:
    cfg = make_cfg(persistence="aof")
    cfg.data_dir.mkdir(mode=0o700)
    left = [cfg.data_dir / "temp-4242.rdb", cfg.data_dir / "temp-rewriteaof-bg-4243.aof"]
    for path in left:
        path.write_bytes(b"\0" * 4096)
    kept = cfg.data_dir / "notes.txt"
    kept.write_text("not redis's")
    async with EmbeddedStore(cfg):
        assert not any(path.exists() for path in left) and kept.exists()
    assert sum("left by a save or rewrite that was cut short" in r.getMessage() for r in caplog.records) == 2


async def test_embedded_writes_over_the_memory_limit_are_refused_never_evicted(make_cfg) -> None:
    cfg = make_cfg(max_memory_mb=8)
    async with EmbeddedStore(cfg) as store:

        async def fill(c: aioredis.Redis) -> tuple[int, str]:
            blob = bytes(1 << 20)
            for i in range(64):
                try:
                    await c.execute_command("AI.TENSORSET", f"t{i}", "UINT8", len(blob), "BLOB", blob)
                except redis.ResponseError as exc:
                    return i, str(exc)
            return 64, ""

        written, error = await with_client(store, fill)
        assert 0 < written < 64 and "maxmemory" in error
        assert await with_client(store, lambda c: c.exists(*(f"t{i}" for i in range(written)))) == written


async def test_embedded_failing_start_quotes_the_log(make_cfg, data_root: Path) -> None:
    bogus = data_root / "bogus.so"
    bogus.write_text("this is not a shared object\n")
    bogus.chmod(0o755)
    store = EmbeddedStore(make_cfg(module_path=bogus))
    with pytest.raises(StoreUnavailable) as info:
        async with store:
            pytest.fail("a store without its module started")
    message = str(info.value)
    assert "exited with code" in message
    assert f"Module {bogus} failed to load" in message  # a line of redis.log
    assert store.state is StoreState.CLOSED and store.pid is None
    assert processes_naming(data_root) == []


async def test_embedded_start_timeout_kills_the_process(make_cfg, data_root: Path) -> None:
    """A server that never answers (here: a sleeping stand-in) is killed."""
    fake = data_root / "fake-redis-server"
    fake.write_text(
        f"#!{sys.executable}\nimport sys, time\n"
        "if sys.argv[1:] == ['--version']:\n    print('Redis server v=6.2.14')\n"
        f"else:\n    time.sleep({WAIT_S})\n"
    )
    fake.chmod(0o755)
    cfg = make_cfg(redis_server=fake, start_timeout_s=0.3)
    with pytest.raises(StoreUnavailable, match="did not answer PING within 0.3s"):
        async with EmbeddedStore(cfg):
            pytest.fail("started")
    assert processes_naming(data_root) == []


async def test_embedded_refuses_a_data_dir_already_served(make_cfg) -> None:
    cfg = make_cfg()
    async with EmbeddedStore(cfg) as first:
        with pytest.raises(StoreUnavailable, match=f"already served \\(redis-server pid {first.pid}\\)"):
            async with EmbeddedStore(cfg):
                pytest.fail("two servers on one data dir")
        assert await with_client(first, lambda c: c.ping())


async def test_embedded_starts_over_a_stale_socket(make_cfg) -> None:
    """A socket file nobody listens on (left by a SIGKILLed server) is replaced."""
    cfg = make_cfg()
    cfg.data_dir.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(cfg.socket_path))
    stale.close()
    async with EmbeddedStore(cfg) as store:
        assert await with_client(store, lambda c: c.ping())


async def test_embedded_aclose_is_idempotent(make_cfg) -> None:
    store = EmbeddedStore(make_cfg())
    async with store:
        pid = store.pid
        assert pid is not None and pid_exists(pid)
        await asyncio.gather(store.aclose(), store.aclose())  # the second waits for the first
        assert not pid_exists(pid)
        await store.aclose()
    await store.aclose()
    assert store.state is StoreState.CLOSED and store.pid is None
    with pytest.raises(StoreUnavailable):
        await store.wait_ready()
    await EmbeddedStore(make_cfg("never-started")).aclose()


class RecordingClock(FakeClock):
    """A FakeClock that remembers every sleep it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


async def test_embedded_backoff_doubles_caps_and_resets(make_cfg, data_root: Path) -> None:
    module = data_root / "spirt.so"
    shutil.copy2(loadable_module_path(), module)
    bogus = data_root / "bogus.so"
    bogus.write_text("not a module\n")
    bogus.chmod(0o755)
    clock = RecordingClock()
    cfg = make_cfg(module_path=module, restart_backoff_s=0.2, restart_backoff_max_s=0.5)
    async with EmbeddedStore(cfg, clock=clock) as store:
        # Restarts fail while the module file is not a module (a new inode:
        # the running server keeps its mapping of the old one).
        os.replace(bogus, module)
        os.kill(store.pid, signal.SIGKILL)
        await eventually(lambda: clock.sleeps == [0.2])
        await asyncio.sleep(QUIET_S)  # nothing happens until the clock moves
        assert store.state is StoreState.RESTARTING and store.pid is None
        assert store.restarts == 0
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(QUIET_S):
                await store.wait_ready()

        clock.advance(0.2)
        await eventually(lambda: clock.sleeps == [0.2, 0.4])
        clock.advance(0.4)
        await eventually(lambda: clock.sleeps == [0.2, 0.4, 0.5])  # capped
        assert store.restarts == 0

        shutil.copy2(loadable_module_path(), data_root / "again.so")
        os.replace(data_root / "again.so", module)
        clock.advance(0.5)
        await eventually(lambda: store.restarts == 1)
        await store.wait_ready()

        os.kill(store.pid, signal.SIGKILL)  # reset after a successful start
        await eventually(lambda: len(clock.sleeps) == 4)
        assert clock.sleeps[-1] == 0.2
        clock.advance(0.2)
        await eventually(lambda: store.restarts == 2)
        await store.wait_ready()


async def test_embedded_aclose_while_restarting(make_cfg, data_root: Path) -> None:
    clock = RecordingClock()
    store = EmbeddedStore(make_cfg(), clock=clock)
    async with store:
        os.kill(store.pid, signal.SIGKILL)
        await eventually(lambda: clock.sleeps == [FAST_BACKOFF_S])
        async with asyncio.timeout(WAIT_S):
            await store.aclose()
    assert store.state is StoreState.CLOSED and store.pid is None
    assert processes_naming(data_root) == []
