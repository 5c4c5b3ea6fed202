"""How the job manager stops a job: a client's cancel (also while the job
is still loading its data) and the peer's shutdown, alone and together.
A real store, a stand-in for the training computation."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading

import numpy as np

from spirtd.clock import SystemClock
from spirtd.jobs.jobstate import JobPhase
from spirtd.jobs.book import NEVER_STARTED
from spirtd.jobs.manager import JobManager
from spirtd.jobs.views import Training
from spirtd.ml.tasks import DataShape

SPEC = 'model = "mlp"\ndataset = "digits"\nbatch_size = 8\nminibatches_per_round = 2\nrounds = 3\n'
BOUND_S = 10.0


class StandIn:
    """describe() blocks while `loading` is set (after the submit's own
    call); every invocation hangs; leaving a job's pool takes a while."""

    def __init__(self) -> None:
        self.loading = threading.Event()
        self.release = threading.Event()
        self.invoking = asyncio.Event()

    def training(self) -> Training:
        def describe(spec):
            if self.loading.is_set():
                self.release.wait(BOUND_S)
            return DataShape(n_train=80, batches_per_epoch=10, n_params=4)

        @contextlib.asynccontextmanager
        async def invoker(spec):
            async def invoke(task):
                self.invoking.set()
                await asyncio.Event().wait()

            try:
                yield invoke
            finally:
                await asyncio.sleep(0.5)  # like a pool stopping its workers

        return Training(describe=describe, initial_parameters=lambda spec: np.zeros(4, np.float32), invoker=invoker)


async def test_a_shutdown_while_a_cancelled_job_unwinds_still_stops_the_manager(store, tmp_path):
    stand_in = StandIn()
    manager = JobManager(tmp_path, store, stand_in.training(), SystemClock())
    await manager.__aenter__()
    job_id = await manager.submit(SPEC)
    await asyncio.wait_for(stand_in.invoking.wait(), BOUND_S)
    cancelling = asyncio.create_task(manager.cancel(job_id))
    await asyncio.sleep(0.1)  # the job is leaving its pool
    await asyncio.wait_for(manager.aclose(), BOUND_S)  # hung forever before
    await asyncio.wait_for(asyncio.gather(cancelling, return_exceptions=True), BOUND_S)
    assert manager.view(job_id).record.job_phase is JobPhase.CANCELLED


async def test_a_job_cancelled_while_it_loads_its_data_ends_cancelled(store, tmp_path):
    stand_in = StandIn()
    manager = JobManager(tmp_path, store, stand_in.training(), SystemClock())
    async with manager:
        job_id = await manager.submit(SPEC)
        stand_in.loading.set()  # the run's describe() now blocks
        await asyncio.sleep(0.2)
        cancelled = asyncio.create_task(manager.cancel(job_id))
        await asyncio.sleep(0.1)
        stand_in.release.set()
        assert await asyncio.wait_for(cancelled, BOUND_S) is JobPhase.CANCELLED
        record = manager.view(job_id).record
        assert record.job_phase is JobPhase.CANCELLED and record.error == NEVER_STARTED and not record.model_kept
        second = await manager.submit(SPEC)  # the manager goes on serving
        stand_in.loading.clear()
        await asyncio.wait_for(stand_in.invoking.wait(), BOUND_S)
        assert manager.view(second).record.job_phase is JobPhase.RUNNING


async def test_a_store_that_refuses_writes_does_not_stop_the_manager_from_starting(store, tmp_path, caplog):
    """Tidying deletes stale keys; a store refusing writes (disk full,
    read-only, here: no replicas to write to) leaves them for later."""
    await store.set("job:jgone:params:0", np.zeros(2, np.float32))
    await store.client.config_set("min-replicas-to-write", 1)
    try:
        async with JobManager(tmp_path, store, StandIn().training(), SystemClock()):
            pass
    finally:
        await store.client.config_set("min-replicas-to-write", 0)
    assert "could not tidy the store yet" in caplog.text and await store.exists("job:jgone:params:0")


async def test_a_job_cancelled_the_moment_the_manager_takes_it_off_the_queue_ends_cancelled(store, tmp_path):
    """The cancel comes after the manager made the job's task and before
    that task first ran: cancelled before it began, the task never reached
    the code that records a cancel (the job stayed queued for ever)."""
    manager = JobManager(tmp_path, store, StandIn().training(), SystemClock())
    async with manager:
        job_id = await manager.submit(SPEC)
        for _ in range(1000):  # a step of the loop at a time, until the manager has taken the job
            if manager._queue.current is not None:
                break
            await asyncio.sleep(0)
        assert manager._queue.current is not None and manager._queue.current.job_id == job_id
        assert inspect.getcoroutinestate(manager._queue.current.task.get_coro()) == inspect.CORO_CREATED
        # awaited here, not in a task of its own (wait_for's), which would run after the job's first step
        assert await manager.cancel(job_id) is JobPhase.CANCELLED
        record = manager.view(job_id).record
        assert record.job_phase is JobPhase.CANCELLED and record.error == NEVER_STARTED and not record.model_kept


async def test_a_cancel_whose_caller_gives_up_while_the_job_unwinds_leaves_a_cancelled_job_and_a_running_manager(
        store, tmp_path):  # fmt: skip
    """The client's deadline passes (or a member's Cancel call is cancelled)
    while the cancelled job leaves its pool: the cancel was taken for one
    of a job that never started (its model forgotten), and the job's own
    record of its cancel then raised inside the manager's task group."""
    stand_in = StandIn()
    manager = JobManager(tmp_path, store, stand_in.training(), SystemClock())
    async with manager:
        job_id = await manager.submit(SPEC)
        await asyncio.wait_for(stand_in.invoking.wait(), BOUND_S)
        cancelling = asyncio.create_task(manager.cancel(job_id))
        await asyncio.sleep(0.1)  # the job is leaving its pool (0.5 s)
        cancelling.cancel()  # the caller gives up
        await asyncio.gather(cancelling, return_exceptions=True)

        async def ended():
            while not manager.view(job_id).record.job_phase.terminal:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(ended(), BOUND_S)
        record = manager.view(job_id).record
        assert record.job_phase is JobPhase.CANCELLED and record.error == "cancelled", record.error
        stand_in.invoking.clear()
        second = await manager.submit(SPEC)  # the manager goes on serving: the next job runs
        await asyncio.wait_for(stand_in.invoking.wait(), BOUND_S)
        assert manager.view(second).record.job_phase is JobPhase.RUNNING


async def test_a_resumed_job_cancelled_before_it_runs_again_keeps_its_model(store, tmp_path):
    """A job a restart left RUNNING is queued again; cancelled before it
    runs, it is no job that never started: the rounds it ran stay."""
    from spirtd.jobs import records
    from spirtd.jobs import spec as specs

    spec = specs.parse(SPEC)
    records.write_record(tmp_path / records.JOBS_DIR, records.JobRecord("jresumed01", spec.to_dict(),
                                                                          phase=JobPhase.RUNNING.value))  # fmt: skip
    manager = JobManager(tmp_path, store, StandIn().training(), SystemClock())
    async with manager:
        assert await manager.cancel("jresumed01", everywhere=False) is JobPhase.CANCELLED
        record = manager.view("jresumed01").record
        assert record.error == "cancelled" and record.model_kept
