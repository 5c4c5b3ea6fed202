"""A worker's end: one value, recorded once, counted once by the fleet."""

from __future__ import annotations

import logging
import signal

import pytest

from spirtd.clock import FakeClock
from spirtd.workers.config import PoolConfig
from spirtd.workers.failures import FailureKind
from spirtd.workers.fleet import WorkerFleet
from spirtd.workers.process import EndKind, Worker, WorkerEnd, exit_end


class FakeProcess:
    """What Worker reads of an asyncio process, for tests that run none."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stdin = self.stdout = None
        self.killed = 0

    def kill(self) -> None:
        self.killed += 1


def make_worker(pid: int = 101) -> Worker:
    return Worker(FakeProcess(pid), max_message_bytes=1024)  # type: ignore[arg-type]


def make_fleet() -> WorkerFleet:
    def spawn(coro):  # the reaper would wait for a process that does not exist
        coro.close()

    return WorkerFleet(PoolConfig(), ["python"], {}, handler="m:f", clock=FakeClock(),
                       log=logging.getLogger("test"), spawn=spawn)  # fmt: skip


def test_worker_end_first_recorded_wins():
    worker = make_worker()
    assert worker.end is None and worker.usable
    first = WorkerEnd(EndKind.OVER_MEMORY, "worker 101 used 900 MB, over the limit of 512 MB: killed")
    assert worker.record_end(first)
    assert not worker.record_end(WorkerEnd(EndKind.CRASHED, "worker 101 crashed"))
    assert worker.end is first and not worker.usable


@pytest.mark.parametrize(
    "kind, failure",
    [
        (EndKind.TIMED_OUT, FailureKind.TIMED_OUT),
        (EndKind.OVER_MEMORY, FailureKind.OVER_MEMORY),
        (EndKind.PROTOCOL_ERROR, FailureKind.PROTOCOL_ERROR),
        (EndKind.START_FAILED, FailureKind.START_FAILED),
        (EndKind.CRASHED, FailureKind.CRASHED),
        (EndKind.CANCELLED, FailureKind.CRASHED),
        (EndKind.STOP_GRACE_EXPIRED, FailureKind.CRASHED),
    ],
)
def test_worker_end_as_an_attempt_sees_it(kind, failure):
    assert WorkerEnd(kind, "why").failure_kind is failure


@pytest.mark.parametrize(
    "code, kind, words",
    [(0, EndKind.STOPPED, "worker 7 exited when asked"),
     (3, EndKind.CRASHED, "worker 7 exited with code 3 when asked to stop"),
     (-signal.SIGSEGV, EndKind.CRASHED, "worker 7 was killed by signal SIGSEGV (11) when asked to stop")],
)  # fmt: skip
def test_worker_end_of_an_exit(code, kind, words):
    assert exit_end(7, code) == WorkerEnd(kind, words)


def test_worker_end_fleet_counts_a_killed_worker_once_by_its_first_end():
    process = FakeProcess(101)
    fleet, worker = make_fleet(), Worker(process, max_message_bytes=1024)  # type: ignore[arg-type]
    fleet.kill(worker, WorkerEnd(EndKind.TIMED_OUT, "worker 101 timed out after 2 s: killed"))
    fleet.kill(worker, WorkerEnd(EndKind.CANCELLED, "worker 101: its invocation was cancelled: killed"))
    assert dict(fleet.lost) == {"timed_out": 1} and fleet.stopped == 0
    assert worker.end.kind is EndKind.TIMED_OUT
    assert process.killed == 2  # every kill sends SIGKILL: the first may come before the exit
