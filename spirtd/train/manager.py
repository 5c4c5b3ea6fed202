"""The peer's training jobs: accepted, queued, run one at a time, watched,
cancelled, and picked up again after a restart.

A job is acknowledged only once its record (spec and phase) is fsynced in
DATA_DIR/jobs/, so a crash loses no accepted job; its progress lives in the
store (runner.py), which the runner resumes from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from spirtd.clock import Clock
from spirtd.errors import ConfigError, SpirtError
from spirtd.files import write_atomically
from spirtd.store.api import TensorStore
from spirtd.train import spec as specs
from spirtd.train.jobstate import JobPhase, advance
from spirtd.train.runner import DataShape, Invoker, JobRunner, RoundReport

_log = logging.getLogger("spirtd.train")
JOBS_DIR = "jobs"
EVENT_HISTORY_MAX = 10_000


class JobNotFound(SpirtError):
    """No job with that id on this peer."""


@dataclass
class JobRecord:
    """What is kept on disk for each job (fsynced)."""

    id: str
    spec: dict[str, Any]
    phase: str = JobPhase.QUEUED.value
    submitted_unix: float = 0.0
    error: str = ""
    test_accuracy: float | None = None
    digest: str = ""
    elapsed_s: float = 0.0

    @property
    def job_phase(self) -> JobPhase:
        return JobPhase(self.phase)


@dataclass
class JobView:
    """A job as Control shows it."""

    record: JobRecord
    spec: specs.JobSpec
    total_rounds: int = 0
    round: int = 0
    loss: float = float("nan")
    accuracy: float | None = None
    val_loss: float | None = None
    retried: int = 0
    dropped: int = 0
    events: list[RoundReport] = field(default_factory=list)
    watchers: list[asyncio.Queue] = field(default_factory=list)


@dataclass(frozen=True)
class Training:
    """What the manager needs from the training computation (compute.py):
    describe(spec) checks a spec against its model and data and returns
    the data's shape (raises ConfigError); initial_parameters(spec) builds
    version 0; invoker(spec) opens the worker pool for a job (an async
    context manager yielding an Invoker)."""

    describe: Callable[[specs.JobSpec], DataShape]
    initial_parameters: Callable[[specs.JobSpec], Any]
    invoker: Callable[[specs.JobSpec], Any]


def _write_record(folder: Path, record: JobRecord) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record.id}.json"
    write_atomically(path, json.dumps(asdict(record)).encode())


class JobManager:
    def __init__(self, data_dir: Path, store: TensorStore, training: Training, clock: Clock) -> None:
        self._folder = Path(data_dir) / JOBS_DIR
        self._store = store
        self._training = training
        self._clock = clock
        self._jobs: dict[str, JobView] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._current: tuple[str, asyncio.Task] | None = None
        self._group: asyncio.TaskGroup | None = None
        self._stack = contextlib.AsyncExitStack()

    # ---- lifecycle ----

    async def __aenter__(self) -> "JobManager":
        self._load_records()
        self._group = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._loop_task = self._group.create_task(self._serve(), name="jobs")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stops the job in progress where it is (it resumes after a restart)."""
        if self._group is None:
            return
        self._loop_task.cancel()
        if self._current is not None:
            self._current[1].cancel()
        await self._stack.aclose()
        self._group = None

    def _load_records(self) -> None:
        if not self._folder.is_dir():
            return
        records = []
        for path in self._folder.glob("*.json"):
            try:
                record = JobRecord(**json.loads(path.read_text()))
                spec = specs.from_dict(record.spec)
            except (ValueError, TypeError, ConfigError) as exc:
                _log.warning("ignoring the damaged job record %s: %s", path, exc)
                continue
            records.append((record.submitted_unix, record, spec))
        for _, record, spec in sorted(records, key=lambda x: x[0]):
            self._jobs[record.id] = JobView(record, spec)
            if not record.job_phase.terminal:
                self._queue.put_nowait(record.id)
                _log.info("job %s will resume (it was %s)", record.id, record.phase, extra={"job": record.id})

    # ---- Control ----

    async def submit(self, text: str, fmt: str = "") -> str:
        """Checks a spec against its model and data, records it, queues it.
        Raises ConfigError saying what is wrong; then nothing is recorded."""
        spec = specs.parse(text, fmt)
        shape = await asyncio.to_thread(self._training.describe, spec)
        job_id = "j" + secrets.token_hex(5)
        record = JobRecord(job_id, spec.to_dict(), submitted_unix=self._clock.wall())
        _write_record(self._folder, record)
        self._jobs[job_id] = JobView(record, spec, total_rounds=spec.total_rounds(shape.batches_per_epoch))
        self._queue.put_nowait(job_id)
        _log.info("accepted job %s: %s on %s, %d rounds", job_id, spec.model.name, spec.dataset.name,
                  self._jobs[job_id].total_rounds, extra={"job": job_id})  # fmt: skip
        return job_id

    def view(self, job_id: str) -> JobView:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFound(f"no job {job_id!r} on this peer") from None

    def elapsed_s(self, job: JobView) -> float:
        if job.record.job_phase.terminal or not job.record.submitted_unix:
            return job.record.elapsed_s
        return self._clock.wall() - job.record.submitted_unix

    async def digest(self, job_id: str) -> str:
        job = self.view(job_id)
        if job.record.digest:
            return job.record.digest
        key = self._params_key(job)
        return await self._store.digest(key) if await self._store.exists(key) else ""

    def _params_key(self, job: JobView) -> str:
        from spirtd.train.keys import JobKeys

        return JobKeys(job.record.id).params(job.round)

    async def parameters(self, job_id: str) -> tuple[specs.JobSpec, Any, str]:
        """The job's spec, its current flat parameters and their digest."""
        job = self.view(job_id)
        key = self._params_key(job)
        if not await self._store.exists(key):
            raise JobNotFound(f"job {job_id} has no parameters in the store yet")
        return job.spec, await self._store.get(key), await self._store.digest(key)

    async def watch(self, job_id: str) -> AsyncIterator[RoundReport]:
        """Every round event so far, then new ones until the job ends."""
        job = self.view(job_id)
        queue: asyncio.Queue = asyncio.Queue()
        job.watchers.append(queue)
        try:
            for event in list(job.events):
                yield event
            if job.record.job_phase.terminal:
                return
            while True:
                event = await queue.get()
                yield event
                if event.phase.terminal:
                    return
        finally:
            job.watchers.remove(queue)

    async def cancel(self, job_id: str) -> JobPhase:
        job = self.view(job_id)
        if job.record.job_phase.terminal:
            return job.record.job_phase
        if self._current is not None and self._current[0] == job_id:
            self._current[1].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._current[1])
            return job.record.job_phase
        self._finish(job, JobPhase.CANCELLED, "cancelled before it started")
        return JobPhase.CANCELLED

    # ---- running ----

    async def _serve(self) -> None:
        while True:
            job_id = await self._queue.get()
            job = self._jobs[job_id]
            if job.record.job_phase.terminal:
                continue
            task = self._group.create_task(self._run(job), name=f"job {job_id}")  # type: ignore[union-attr]
            self._current = (job_id, task)
            try:
                await task
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise  # the manager is closing
            finally:
                self._current = None

    async def _run(self, job: JobView) -> None:
        start = self._clock.monotonic()
        try:
            shape = await asyncio.to_thread(self._training.describe, job.spec)
            if job.record.job_phase is JobPhase.QUEUED:
                self._set_phase(job, JobPhase.RUNNING)
            async with self._training.invoker(job.spec) as invoke:
                runner = self._runner(job, shape, invoke)
                progress = await runner.load_or_start()
                self._take(job, progress)
                phase = await runner.run()
                test = await runner.evaluate(runner.params_key, "test")
                job.record.test_accuracy = float(test["accuracy"])
                job.record.digest = await self._store.digest(runner.params_key)
            self._finish(job, phase, "", self._clock.monotonic() - start)
        except asyncio.CancelledError:
            if job.record.job_phase is JobPhase.RUNNING and self._cancel_requested(job):
                self._finish(job, JobPhase.CANCELLED, "cancelled", self._clock.monotonic() - start)
            raise
        except SpirtError as exc:
            _log.error("job %s failed: %s", job.record.id, exc, extra={"job": job.record.id})
            self._finish(job, JobPhase.FAILED, str(exc), self._clock.monotonic() - start)

    def _cancel_requested(self, job: JobView) -> bool:
        # The loop task is cancelled too when the daemon stops: then the job
        # stays RUNNING and resumes after the restart.
        return not self._loop_task.cancelling()

    def _runner(self, job: JobView, shape: DataShape, invoke: Invoker) -> JobRunner:
        async def initial() -> Any:
            return await asyncio.to_thread(self._training.initial_parameters, job.spec)

        runner = JobRunner(job.record.id, job.spec, self._store, invoke, self._clock, shape, initial,
                           lambda report: self._on_round(job, report))  # fmt: skip
        job.total_rounds = runner.total_rounds
        return runner

    def _take(self, job: JobView, progress: Any) -> None:
        job.round, job.loss, job.accuracy, job.val_loss = progress.round, progress.loss, progress.accuracy, progress.val_loss
        job.retried, job.dropped = progress.retried, progress.dropped

    def _on_round(self, job: JobView, report: RoundReport) -> None:
        job.round, job.loss, job.accuracy, job.val_loss = report.round, report.loss, report.accuracy, report.val_loss
        job.retried += report.retried
        job.dropped += report.dropped
        self._publish(job, report)

    def _publish(self, job: JobView, report: RoundReport) -> None:
        if len(job.events) < EVENT_HISTORY_MAX:
            job.events.append(report)
        for queue in job.watchers:
            queue.put_nowait(report)

    def _set_phase(self, job: JobView, phase: JobPhase) -> None:
        job.record.phase = advance(job.record.job_phase, phase).value
        _write_record(self._folder, job.record)

    def _finish(self, job: JobView, phase: JobPhase, error: str, elapsed_s: float = 0.0) -> None:
        job.record.error = error
        job.record.elapsed_s = elapsed_s
        self._set_phase(job, phase)
        words = {JobPhase.SUCCEEDED: "finished", JobPhase.STOPPED_EARLY: "stopped early (no improvement)",
                 JobPhase.FAILED: f"failed: {error}", JobPhase.CANCELLED: "was cancelled"}  # fmt: skip
        _log.info("job %s %s after %d rounds", job.record.id, words[phase], job.round,
                  extra={"job": job.record.id, "phase": phase.value})  # fmt: skip
        self._publish(job, RoundReport(round=job.round, total_rounds=job.total_rounds, loss=job.loss,
                                       phase=phase, accuracy=job.accuracy, val_loss=job.val_loss,
                                       message=error or words[phase]))  # fmt: skip
