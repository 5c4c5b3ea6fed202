"""The queue of jobs and the one that runs from it at a time.

A job's task loads its data, runs its rounds (runner.py) and records how
it ended in the book. When the store crashes and comes back mid-job, the
job goes on from the newest round the store holds. A cancel ends the
running job CANCELLED; a shutdown leaves it RUNNING, to resume after the
restart. Workers kept warm are let go once no job has come for
warm_idle_s.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from redis.exceptions import RedisError

from spirtd.clock import Clock, clock_timeout
from spirtd.errors import SpirtError, StoreUnavailable
from spirtd.jobs.book import JobBook
from spirtd.jobs.config import JobsConfig
from spirtd.jobs.jobstate import JobPhase, Progress
from spirtd.jobs.peers import RoundPeers
from spirtd.jobs.pins import VersionPins
from spirtd.jobs.runner import Invoker, JobRunner
from spirtd.jobs.views import JobStop, JobView, RunningJob, Training
from spirtd.ml.tasks import DataShape
from spirtd.store.api import TensorStore

_log = logging.getLogger("spirtd.jobs")
# How often a job whose store crashed asks whether it is back.
STORE_POLL_S = 0.1


class JobQueue:
    """tidy() is awaited after each job that ran."""

    def __init__(self, book: JobBook, store: TensorStore, training: Training, clock: Clock, config: JobsConfig,
                 pins: VersionPins, peers: RoundPeers | None, tidy: Callable[[], Awaitable[None]]) -> None:  # fmt: skip
        self._book = book
        self._store = store
        self._training = training
        self._clock = clock
        self._config = config
        self._pins = pins
        self._peers = peers
        self._tidy = tidy
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self.current: RunningJob | None = None

    def put(self, job_id: str) -> None:
        self._queue.put_nowait(job_id)

    def stop_current(self, why: JobStop) -> None:
        if self.current is not None:
            self.current.stop(why)

    async def cancel(self, job_id: str) -> None:
        """Cancels the job if it is the one running, and waits for its task
        to end (the task records the cancel)."""
        if self.current is None or self.current.job_id != job_id:
            return
        running = self.current
        running.stop(JobStop.CANCEL)
        try:
            await asyncio.shield(running.task)
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise  # this caller gave up; the job's task records the cancel as it ends

    async def _next_job(self) -> str:
        """The next job id; warm workers are let go after warm_idle_s with none."""
        try:
            async with clock_timeout(self._clock, self._config.warm_idle_s):
                return await self._queue.get()
        except TimeoutError:
            await self._training.idle()
        return await self._queue.get()

    async def serve(self, group: asyncio.TaskGroup) -> None:
        """Runs the queued jobs, one at a time, each in a task of group."""
        while True:
            job_id = await self._next_job()
            job = self._book.views.get(job_id)
            if job is None or job.record.job_phase.terminal:
                continue
            running = RunningJob(job_id, group.create_task(self._run(job), name=f"job {job_id}"))
            self.current = running
            try:
                await running.task
            except asyncio.CancelledError:
                # A cancelled job ends here; the manager closing (even while
                # a cancelled job unwinds) ends the loop.
                if running.stopped_by is not JobStop.CANCEL or asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise
                self._book.finish_cancelled(job)  # its task was cancelled before it first ran
            finally:
                self.current = None
            await self._tidy()

    async def _run(self, job: JobView) -> None:
        start = self._clock.monotonic()
        try:
            shape = await asyncio.to_thread(self._training.describe, job.spec)
            job.record.total_rounds = job.spec.check_length(shape.batches_per_epoch)  # type: ignore[union-attr]
            if job.record.job_phase is JobPhase.QUEUED:
                self._book.set_phase(job, JobPhase.RUNNING)
            async with self._training.invoker(job.spec) as invoke:
                phase, test_accuracy, digest = await self._train(job, shape, invoke)
            job.record.test_accuracy, job.record.digest = test_accuracy, digest
            await self._store.flush_to_disk()  # the model is durable before the job is reported done
            self._book.finish(job, phase, "", self._clock.monotonic() - start)
        except asyncio.CancelledError:
            # Stopped by a shutdown, the job stays as it is and resumes after the restart.
            stopped_by = self.current.stopped_by if self.current is not None else None
            if stopped_by is JobStop.CANCEL:  # still QUEUED if cancelled while its data loaded
                self._book.finish_cancelled(job, self._clock.monotonic() - start)
            raise
        except (SpirtError, RedisError) as exc:
            why = str(exc) if isinstance(exc, SpirtError) else f"the store refused an operation: {exc}"
            _log.error("job %s failed: %s", job.record.id, why, extra={"job": job.record.id})
            self._book.finish(job, JobPhase.FAILED, why, self._clock.monotonic() - start)
        except Exception as exc:  # noqa: BLE001 - a bug in one job must not take the peer down
            _log.exception("job %s failed on an internal error", job.record.id, extra={"job": job.record.id})
            self._book.finish(job, JobPhase.FAILED, f"internal error ({type(exc).__name__}: {exc}); the peer's "
                              "log has the details", self._clock.monotonic() - start)  # fmt: skip

    async def _train(self, job: JobView, shape: DataShape, invoke: Invoker) -> tuple[JobPhase, float, str]:
        """Runs the job to its end; when the store crashes and comes back,
        goes on from the newest round it holds (from round 0, saying so,
        when it holds none of the job)."""
        while True:
            run_id = await self._store.run_id()
            runner = self._runner(job, shape, invoke)
            try:
                before = job.progress.round
                _, found = await runner.load_or_start()
                if not found and before > 0:
                    self._book.note(job, f"the store holds none of this job (it lost its data); the job starts over "
                                    f"from round 0 (it was at round {before})")  # fmt: skip
                phase = await runner.run()
                test = await runner.evaluate(runner.params_key, "test")
                return phase, test.accuracy, await self._store.digest(runner.params_key)
            except (SpirtError, RedisError, OSError) as exc:
                if not await self._store_restarted(run_id):
                    raise
                _log.warning("job %s: the store restarted (%s); going on from the newest round it holds",
                             job.record.id, exc, extra={"job": job.record.id})  # fmt: skip
                self._book.note(job, "the store restarted; the job goes on from the newest round it holds")

    async def _store_restarted(self, run_id: str) -> bool:
        """Whether the store is another run than run_id, waiting (up to
        store_restart_wait_s) while it does not answer."""
        waited = 0.0
        while True:
            try:
                return await self._store.run_id() != run_id
            except StoreUnavailable:
                if waited >= self._config.store_restart_wait_s:
                    raise StoreUnavailable(
                        f"the store did not come back within {self._config.store_restart_wait_s:g} s "
                        "([jobs] store_restart_wait_s)"
                    ) from None
            await self._clock.sleep(STORE_POLL_S)
            waited += STORE_POLL_S

    def _runner(self, job: JobView, shape: DataShape, invoke: Invoker) -> JobRunner:
        async def initial() -> Any:
            return await asyncio.to_thread(self._training.initial_parameters, job.spec)

        def committed(progress: Progress) -> None:
            job.progress = progress

        return JobRunner(job.record.id, job.spec, self._store, invoke, self._clock, shape, initial,  # type: ignore[arg-type]
                         lambda report: self._book.publish(job, report), on_commit=committed,
                         retire=lambda version: self._pins.retire(job.record.id, version),
                         peers=self._peers, settings=job.spec.round_settings(),  # type: ignore[union-attr]
                         first_participants=tuple(job.record.members))  # fmt: skip
