"""WorkerPool with real worker processes (handlers in pool_handlers.py):
reuse, cold starts, every way a worker can fail and be retried, limits,
closing, and the pieces (config, protocol, /proc parsing) on their own."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from spirtd.clock import SystemClock
from spirtd.errors import (
    ConfigError,
    InvocationFailed,
    PoolClosed,
    ProtocolError,
    WorkerStartFailed,
)
from spirtd.workers import protocol
from spirtd.workers.failures import FailureKind
from spirtd.workers.memwatch import parse_vmrss_kb, rss_mb
from spirtd.workers.pool import InvocationResult, WorkerPool
from spirtd.workers.config import PoolConfig, PoolMode

ROOT = Path(__file__).resolve().parents[2]
ENV = {"PYTHONPATH": str(ROOT)}  # the workers import tests.workers.pool_handlers
H = "tests.workers.pool_handlers:"
WAIT_S = 10.0  # the longest any test waits for something to happen
POLL_S = 0.01

FAST = PoolConfig(
    concurrency=2, invocation_timeout_s=2.0, start_timeout_s=10.0, stop_grace_s=1.0,
    memory_limit_mb=200, memory_poll_s=0.05, max_attempts=3,
)  # fmt: skip


def pool_of(handler: str, **changes) -> WorkerPool:
    return WorkerPool(dataclasses.replace(FAST, **changes), H + handler, clock=SystemClock(), env=ENV)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        await asyncio.sleep(POLL_S)


async def started_pid(path: Path) -> int:
    await eventually(path.exists, f"{path} written by the handler")
    return int(path.read_text())


# -- warm and cold ------------------------------------------------------------
async def test_pool_warm_reuses_the_same_workers():
    async with pool_of("echo") as pool:
        pids = set(pool.worker_pids())
        results = [await pool.invoke({"id": i}) for i in range(6)]
        assert [r.reply["echo"] for r in results] == [{"id": i} for i in range(6)]
        assert {r.pid for r in results} == pids and len(pids) == 2
        assert all(r.reply["pid"] == r.pid and r.attempts == 1 for r in results)
        stats = pool.stats()
        assert (stats.invocations, stats.attempts, stats.retries, stats.workers_started) == (6, 6, 0, 2)
    assert not any(alive(p) for p in pids)
    assert pool.stats().workers_stopped == 2 and pool.stats().live_workers == 0


async def test_pool_cold_starts_a_process_per_invocation():
    async with pool_of("echo", mode="cold") as pool:
        assert pool.worker_pids() == []
        results = [await pool.invoke({"id": i}) for i in range(3)]
        assert len({r.pid for r in results}) == 3
        assert all(r.timings.start_s > r.timings.run_s > 0 for r in results)
    assert pool.stats().workers_started == 3 and pool.stats().workers_stopped == 3
    assert not any(alive(r.pid) for r in results)


# -- failures and retries -----------------------------------------------------
async def test_pool_worker_killed_mid_invocation_is_retried_and_replaced(tmp_path):
    started = tmp_path / "started"
    async with pool_of("slow_once") as pool:
        request = {"id": 1, "marker": str(tmp_path / "m"), "started": str(started)}
        task = asyncio.create_task(pool.invoke(request))
        victim = await started_pid(started)
        os.kill(victim, signal.SIGKILL)
        result = await task
        assert result.attempts == 2 and result.pids[0] == victim and result.pid != victim
        assert result.failures[0].kind is FailureKind.CRASHED
        assert "killed by signal SIGKILL (9)" in result.failures[0].reason
        await eventually(lambda: len(pool.worker_pids()) == 2, "a replacement worker")
        assert victim not in pool.worker_pids()
        assert pool.stats().workers_lost == {"crashed": 1}


async def test_pool_worker_that_died_idle_is_replaced_before_use():
    async with pool_of("echo", concurrency=1) as pool:
        (victim,) = pool.worker_pids()
        os.kill(victim, signal.SIGKILL)
        await eventually(lambda: pool.worker_pids() == [], "the pool notices the death")
        result = await pool.invoke({"id": 1})
        assert result.attempts == 1 and result.pid != victim and result.timings.start_s > 0
        assert pool.worker_pids() == [result.pid]
        stats = pool.stats()
        assert (stats.workers_started, stats.workers_lost) == (2, {"crashed": 1})


async def test_pool_hung_worker_is_killed_at_the_timeout_and_retried(tmp_path):
    async with pool_of("hang_once", invocation_timeout_s=1.0) as pool:
        result = await pool.invoke({"id": 2, "marker": str(tmp_path / "m")})
        (failure,) = result.failures
        assert failure.kind is FailureKind.TIMED_OUT and "timed out after 1 s: killed" in failure.reason
        assert 1.0 <= failure.elapsed_s < 2.0
        await eventually(lambda: not alive(failure.pid), "the hung worker is killed")
        assert pool.stats().workers_lost == {"timed_out": 1}


async def test_pool_memory_hog_is_killed_by_the_watchdog_and_retried(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="spirtd.workers.pool")
    async with pool_of("hog_memory_once", memory_limit_mb=200) as pool:
        result = await pool.invoke({"id": 3, "marker": str(tmp_path / "m"), "hog_mb": 400})
        (failure,) = result.failures
        assert failure.kind is FailureKind.OVER_MEMORY
        assert "over the limit of 200 MB: killed" in failure.reason
        assert pool.stats().workers_lost == {"over_memory": 1}
    assert "over the limit of 200 MB: killed; retrying request 3 (attempt 2 of 3)" in caplog.text


async def test_pool_allocation_over_the_data_backstop_counts_as_over_memory(tmp_path):
    async with pool_of("hog_memory_once", memory_limit_mb=100, data_limit_mult=2.0) as pool:
        result = await pool.invoke({"id": 3, "marker": str(tmp_path / "m"), "hog_mb": 400})
        (failure,) = result.failures
        assert failure.kind is FailureKind.OVER_MEMORY
        assert "MemoryError at the RLIMIT_DATA backstop of 200 MB): killed" in failure.reason
        await eventually(lambda: not alive(failure.pid), "the worker that ran out of memory is killed")


# what the fake worker writes after its ready line, what the error says
BROKEN_WORKERS = [
    ("echo garbage", "not a JSON line: 'garbage'"),
    ('echo \'{"type": "reply", "seq": 0, "ok": true, "reply": {}, "run_s": 0}\'', "not 1"),
    ("head -c 5000 /dev/zero | tr '\\0' a; echo", "longer than 1000 bytes"),
]


@pytest.mark.parametrize(("answer", "words"), BROKEN_WORKERS)
async def test_pool_worker_that_breaks_the_protocol_is_killed(tmp_path, answer, words):
    fake = tmp_path / "fake-python"  # run as "fake-python -m spirtd.workers.worker_main ..."
    fake.write_text(
        "#!/bin/sh\n"
        'echo \'{"type": "ready", "v": 1, "pid": \'$$\', "import_s": 0}\'\n'
        f"read line\n{answer}\nexec sleep 60\n"
    )
    fake.chmod(0o755)
    config = {"python": str(fake), "concurrency": 1, "max_attempts": 2, "max_message_bytes": 1000, "stop_grace_s": 0.2}
    async with pool_of("echo", **config) as pool:
        with pytest.raises(InvocationFailed) as info:
            await pool.invoke({"id": 1})
        assert [a.kind for a in info.value.attempts] == [FailureKind.PROTOCOL_ERROR] * 2
        assert words in str(info.value) and "broke the protocol" in str(info.value)
        pids = [a.pid for a in info.value.attempts]
        await eventually(lambda: not any(alive(p) for p in pids), "the fake workers are killed")
        assert pool.stats().workers_lost == {"protocol_error": 2}


async def test_pool_always_crashing_raises_invocation_failed_with_every_reason(caplog):
    caplog.set_level(logging.WARNING, logger="spirtd.workers.pool")
    async with pool_of("crash") as pool:
        with pytest.raises(InvocationFailed) as info:
            await pool.invoke({"id": 7})
        stats = pool.stats()
    error = info.value
    assert error.request_id == 7 and len(error.attempts) == 3
    assert [a.kind for a in error.attempts] == [FailureKind.CRASHED] * 3
    assert len({a.pid for a in error.attempts}) == 3
    assert str(error).startswith("request 7 failed 3 times: attempt 1: worker ")
    assert str(error).count("crashed: it exited with code 3") == 3
    assert (stats.failures, stats.attempts, stats.retries, stats.workers_lost["crashed"]) == (1, 3, 2, 3)
    assert "retrying request 7 (attempt 2 of 3)" in caplog.text
    assert "request 7 failed after 3 attempt(s)" in caplog.text


# handler, retry_handler_errors, attempts, succeeds
HANDLER_ERRORS = [
    ("raise_error", True, 3, False),
    ("raise_error", False, 1, False),
    ("raise_error_once", True, 2, True),
    ("not_a_dict", False, 1, False),
]


@pytest.mark.parametrize(("handler", "retry", "attempts", "succeeds"), HANDLER_ERRORS)
async def test_pool_handler_error_keeps_the_worker(tmp_path, handler, retry, attempts, succeeds):
    async with pool_of(handler, retry_handler_errors=retry) as pool:
        pids = set(pool.worker_pids())
        request = {"id": 4, "marker": str(tmp_path / "m")}
        if succeeds:
            result = await pool.invoke(request)
            failures = result.failures
            assert result.attempts == attempts
        else:
            with pytest.raises(InvocationFailed) as info:
                await pool.invoke(request)
            failures = info.value.attempts
            assert len(failures) == attempts
        assert all(f.kind is FailureKind.HANDLER_ERROR for f in failures)
        assert "the handler raised" in failures[0].reason
        if not succeeds:
            assert str(info.value).startswith("request 4 failed " + ("once: " if attempts == 1 else "3 times: "))
        assert set(pool.worker_pids()) == pids and pool.stats().workers_lost == {}
    expected = {"raise_error": "ValueError: bad minibatch 4", "raise_error_once": "RuntimeError: transient",
                "not_a_dict": "TypeError: the handler returned list, not a dict"}[handler]  # fmt: skip
    assert expected in failures[0].reason


async def test_pool_stdout_and_stdin_of_the_handler_do_not_touch_the_protocol():
    async with pool_of("print_to_stdout_then_echo") as pool:
        for i in range(3):
            assert (await pool.invoke({"id": i})).reply["echo"] == {"id": i}
    async with pool_of("read_stdin_then_echo", concurrency=1) as pool:
        first, second = await pool.invoke({"id": 1}), await pool.invoke({"id": 2})
        assert first.reply["stdin"] == "" and second.reply["echo"] == {"id": 2}


async def test_pool_caller_cancelling_an_invocation_kills_and_replaces_its_worker(tmp_path):
    started = tmp_path / "started"
    async with pool_of("sleep_then_echo", concurrency=1) as pool:
        task = asyncio.create_task(pool.invoke({"id": 5, "sleep_s": 30, "started": str(started)}))
        victim = await started_pid(started)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await eventually(lambda: not alive(victim), "the worker of a cancelled invocation is killed")
        assert (await pool.invoke({"id": 6, "sleep_s": 0})).pid != victim
        assert pool.stats().workers_lost == {"cancelled": 1}


# -- limits and lifecycle -----------------------------------------------------
async def test_pool_runs_at_most_concurrency_invocations_at_once():
    async with pool_of("sleep_then_echo", concurrency=2) as pool:
        results = await asyncio.gather(*(pool.invoke({"id": i, "sleep_s": 0.2}) for i in range(5)))
    events = sorted([(r.reply["began"], 1) for r in results] + [(r.reply["ended"], -1) for r in results])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    assert peak == 2
    assert sorted(r.timings.queue_wait_s > 0.1 for r in results) == [False, False, True, True, True]


async def test_pool_close_with_invocations_in_flight_leaves_no_process(tmp_path):
    pool = pool_of("sleep_then_echo")
    await pool.__aenter__()
    pids = pool.worker_pids()
    tasks = [
        asyncio.create_task(pool.invoke({"id": i, "sleep_s": 60, "started": str(tmp_path / f"s{i}")})) for i in range(3)
    ]  # the third waits for a slot
    busy = {await started_pid(tmp_path / "s0"), await started_pid(tmp_path / "s1")}
    assert busy == set(pids)
    began = time.monotonic()
    await pool.aclose()
    assert time.monotonic() - began < FAST.stop_grace_s + 1.0
    for task in tasks:
        with pytest.raises(PoolClosed, match="closed while request"):
            await task
    assert not any(alive(p) for p in pids)
    assert pool.stats().live_workers == 0 and pool.stats().workers_lost == {"cancelled": 2}
    await pool.aclose()  # idempotent
    with pytest.raises(PoolClosed):
        await pool.invoke({"id": 9})


ORPHAN_SCRIPT = """
import asyncio, sys
from spirtd.clock import SystemClock
from spirtd.workers.pool import WorkerPool
from spirtd.workers.config import PoolConfig

async def main():
    async with WorkerPool(PoolConfig(concurrency=2), "tests.workers.pool_handlers:sleep_then_echo",
                          clock=SystemClock()) as pool:
        print(*pool.worker_pids(), flush=True)
        await pool.invoke({"id": 1, "sleep_s": 60, "started": sys.argv[1]})

asyncio.run(main())
"""


async def test_pool_killed_without_closing_takes_its_workers_along(tmp_path):
    started = tmp_path / "started"
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ORPHAN_SCRIPT, str(started), stdout=asyncio.subprocess.PIPE, env={**os.environ, **ENV}
    )
    try:
        async with asyncio.timeout(WAIT_S):
            pids = [int(p) for p in (await parent.stdout.readline()).split()]
        assert len(pids) == 2 and await started_pid(started) in pids
    finally:
        parent.kill()
        await parent.wait()
    for pid in pids:  # one was busy (PR_SET_PDEATHSIG), one idle (EOF on stdin)
        await eventually(lambda pid=pid: not alive(pid), f"worker {pid} dies with its pool")


async def test_pool_start_timeout_is_a_clear_error_and_leaves_no_process():
    config = dataclasses.replace(FAST, start_timeout_s=0.5, concurrency=1)
    pool = WorkerPool(config, "tests.workers.pool_slow_import:echo", clock=SystemClock(), env=ENV)
    with pytest.raises(WorkerStartFailed, match=r"not ready within start_timeout_s \(0.5 s\) while importing"):
        async with pool:
            pass
    assert pool.stats().live_workers == 0 and pool.stats().workers_lost == {"start_failed": 1}


@pytest.mark.parametrize(
    ("handler", "words"),
    [
        ("tests.jobs.no_such_module:echo", "ModuleNotFoundError"),
        ("tests.workers.pool_handlers:no_such_function", "has no function 'no_such_function'"),
    ],
)
async def test_pool_handler_that_cannot_load_fails_the_start(handler, words):
    pool = WorkerPool(dataclasses.replace(FAST, concurrency=1), handler, clock=SystemClock(), env=ENV)
    with pytest.raises(WorkerStartFailed, match=words):
        await pool.__aenter__()
    assert pool.stats().live_workers == 0


async def test_pool_missing_interpreter_fails_the_start(tmp_path):
    with pytest.raises(WorkerStartFailed, match="cannot start a worker with"):
        async with pool_of("echo", python=str(tmp_path / "no-python")):
            pass


async def test_pool_refuses_bad_handlers_and_requests():
    with pytest.raises(ConfigError, match="package.module:function"):
        WorkerPool(FAST, "no_colon", clock=SystemClock())
    with pytest.raises(PoolClosed, match="inside `async with`"):
        await pool_of("echo").invoke({})
    async with pool_of("echo", concurrency=1) as pool:
        with pytest.raises(ConfigError, match="cannot be sent to a worker"):
            await pool.invoke({"id": 1, "data": b"bytes"})
        with pytest.raises(ConfigError, match="a request is a dict"):
            await pool.invoke([1])  # type: ignore[arg-type]
        assert isinstance(await pool.invoke({"id": 2}), InvocationResult)


# -- the pieces -----------------------------------------------------------------
def test_config_presets_are_valid():
    assert PoolConfig.default() == PoolConfig()
    assert PoolConfig.cold().mode is PoolMode.COLD
    assert PoolConfig(mode="cold").mode is PoolMode.COLD
    assert PoolConfig(memory_limit_mb=512).data_limit_mb == 2048
    assert PoolConfig(memory_limit_mb=None).data_limit_mb is None


BAD_CONFIGS = [
    ({"mode": "lukewarm"}, '"warm" or "cold"'),
    ({"concurrency": 0}, "at least 1"),
    ({"concurrency": 1.5}, "integer"),
    ({"max_attempts": True}, "integer"),
    ({"invocation_timeout_s": 0}, "positive"),
    ({"start_timeout_s": float("inf")}, "finite"),
    ({"stop_grace_s": "1"}, "number of seconds"),
    ({"memory_limit_mb": 0}, "at least 1"),
    ({"data_limit_mult": 1.0}, "above 1"),
    ({"memory_poll_s": 5.0, "invocation_timeout_s": 5.0}, "watchdog samples"),
    ({"retry_handler_errors": 1}, "true or false"),
    ({"python": ""}, "interpreter"),
]


@pytest.mark.parametrize(("changes", "words"), BAD_CONFIGS)
def test_config_bad_settings_are_refused(changes, words):
    with pytest.raises(ConfigError, match=words):
        PoolConfig(**changes)


MESSAGES = [
    protocol.Ready(pid=12, import_s=0.5),
    protocol.Fatal(error="ImportError: no"),
    protocol.Invoke(seq=3, request={"id": 1, "x": [1.5, None, "a\nb"]}),
    protocol.Reply(seq=3, ok=True, reply={"loss": float("nan")}, run_s=0.25),
    protocol.Reply(seq=4, ok=False, error_type="ValueError", error="boom", traceback="Traceback..."),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_protocol_round_trip_is_one_line(message):
    line = protocol.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    decoded = protocol.decode(line)
    assert type(decoded) is type(message)
    assert repr(decoded) == repr(message)  # nan != nan, but prints the same


@pytest.mark.parametrize(
    "line",
    [b"hello\n", b"[1]\n", b'{"type": "nope"}\n', b'{"type": "ready", "v": 99, "pid": 1, "import_s": 0}\n',
     b'{"type": "reply", "seq": "1", "ok": true, "reply": {}, "run_s": 0}\n', b'{"type": "invoke", "seq": 1}\n',
     b'{"type": "reply", "seq": 1, "ok": 1, "reply": {}, "run_s": 0}\n', b"\xff\xfe\n"],
)  # fmt: skip
def test_protocol_bad_lines_are_protocol_errors(line):
    with pytest.raises(ProtocolError):
        protocol.decode(line)


def test_protocol_unencodable_request_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="JSON"):
        protocol.encode(protocol.Invoke(seq=1, request={"t": object()}))


def test_memwatch_reads_vmrss():
    status = "Name:\tpython\nVmPeak:\t  100 kB\nVmRSS:\t   20480 kB\nThreads:\t1\n"
    assert parse_vmrss_kb(status) == 20480
    assert parse_vmrss_kb("Name:\tkthreadd\nState:\tS\n") is None
    own = rss_mb(os.getpid())
    assert own is not None and own > 1
    assert rss_mb(2**22 + 1) is None  # above pid_max: never a process
