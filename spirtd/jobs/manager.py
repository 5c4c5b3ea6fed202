"""The peer's training jobs: accepted, queued, run one at a time, watched,
cancelled, deleted, and picked up again after a restart of the daemon or of
its store.

A job is acknowledged only once its record (spec, owner, phase) is fsynced
in DATA_DIR/jobs/ (records.py), so a crash loses no accepted job; a submit
that fails leaves no record. Its progress lives in the store (runner.py):
after the daemon restarts, or the store crashes and comes back, the job
goes on from the newest round the store holds. Readers (status, model)
pin the version they read (pins.py), so they always see one consistent
round. What an ended job keeps is bounded (JobsConfig): the last
parameters of the newest keep_models jobs, the records of the newest
keep_jobs; tidying deletes the rest, and whatever the store holds of jobs
that have no record.

The manager owns accepting jobs (a submit here, or one another member
recorded), their cancel and delete, and picking them up after a restart;
the rest is in the parts it wires together: book.py (the jobs and their
phase transitions), running.py (the queue and the running job),
reading.py (status, parameters, versions, events) and cleanup.py
(deletions, by retention.py's choices).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from pathlib import Path
from typing import Any, AsyncIterator, Protocol

from redis.exceptions import RedisError

from spirtd.clock import Clock
from spirtd.errors import JobBusy, JobNotReplicated, StoreError
from spirtd.jobs import footprint, records
from spirtd.jobs import spec as specs
from spirtd.jobs.book import JobBook
from spirtd.jobs.cleanup import JobCleanup
from spirtd.jobs.config import JobsConfig
from spirtd.jobs.jobstate import JobPhase, Progress, RoundReport
from spirtd.jobs.keys import JobKeys
from spirtd.jobs.peers import RoundPeers
from spirtd.jobs.pins import VersionPins
from spirtd.jobs.reading import JobReader
from spirtd.jobs.records import JobRecord
from spirtd.jobs.running import JobQueue
from spirtd.jobs.runner import delete_version
from spirtd.jobs.views import JobSnapshot, JobStop, JobView, Training
from spirtd.store.api import TensorStore

_log = logging.getLogger("spirtd.jobs")


class JobReplicas(Protocol):
    """The other members, as the jobs see them: a submit reaches them all."""

    async def offer(self, record: JobRecord) -> dict[str, str]:
        """Gives every live member the job (fsynced there before it answers);
        returns the members that did not take it, with why."""
        ...

    async def cancel(self, job_id: str) -> None:
        """Cancels the job on every live member (best effort)."""
        ...

    def members(self) -> list[str]:
        """The live members' ids, this peer's included."""
        ...


JOBS_DIR = records.JOBS_DIR


class JobManager:
    def __init__(
        self,
        data_dir: Path,
        store: TensorStore,
        training: Training,
        clock: Clock,
        config: JobsConfig | None = None,
        *,
        store_memory_bytes: int | None = None,
        peers: RoundPeers | None = None,
        replicas: JobReplicas | None = None,
        serve_chunk_bytes: int = 1 << 20,
    ) -> None:
        config = config or JobsConfig()
        self._store = store
        self._training = training
        self._clock = clock
        self._store_memory_bytes = store_memory_bytes
        self._replicas = replicas
        self._book = JobBook(Path(data_dir) / JOBS_DIR, clock, config.event_history)
        pins = VersionPins(lambda job_id, version: delete_version(store, JobKeys(job_id), version))
        self._cleanup = JobCleanup(self._book, store, pins, config)
        self._queue = JobQueue(self._book, store, training, clock, config, pins, peers, self._cleanup.tidy)
        self._reader = JobReader(self._book, store, pins, serve_chunk_bytes)
        self._group: asyncio.TaskGroup | None = None
        self._stack = contextlib.AsyncExitStack()
        self._adopting: set[str] = set()  # job ids offered by members, being recorded

    # ---- lifecycle ----

    async def __aenter__(self) -> "JobManager":
        await self._load_records()
        await self._cleanup.tidy()
        self._group = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._loop_task = self._group.create_task(self._queue.serve(self._group), name="jobs")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stops the job in progress where it is (it resumes after a restart)."""
        if self._group is None:
            return
        self._loop_task.cancel()
        self._queue.stop_current(JobStop.SHUTDOWN)
        try:
            await self._stack.aclose()
        finally:
            self._group = None
            await self._training.idle()

    async def _load_records(self) -> None:
        good, bad = await asyncio.to_thread(records.load_all, self._book.folder)
        for record, path in bad:
            self._book.views[record.id] = JobView(record, None, quarantined=path)
        for record, spec in good:
            job = self._book.add(record, spec)
            if not record.job_phase.terminal:
                job.progress = await self._stored_progress(record.id)
                self._queue.put(record.id)
                _log.info("job %s will resume (it was %s)", record.id, record.phase, extra={"job": record.id})

    async def _stored_progress(self, job_id: str) -> Progress:
        """The job's last committed round as the store has it (zero if none)."""
        try:
            stored = await self._store.read_fields(JobKeys(job_id).state)
            return Progress.from_hash(stored) if stored else Progress()
        except (StoreError, RedisError, ValueError) as exc:
            _log.warning("cannot read job %s's progress from the store yet: %s", job_id, exc)
            return Progress()

    # ---- Control ----

    async def submit(self, text: str, fmt: str = "", owner: str = "") -> str:
        """Checks a spec against its model, data and this peer's limits,
        records it, queues it. Raises ConfigError (LimitExceeded for what
        does not fit) saying what is wrong; then nothing is recorded."""
        spec = specs.parse(text, fmt)
        shape = await asyncio.to_thread(self._training.describe, spec)
        total_rounds = spec.check_length(shape.batches_per_epoch)
        footprint.check_fits(shape.n_params, spec, self._store_memory_bytes)
        job_id = "j" + secrets.token_hex(5)
        members = self._replicas.members() if self._replicas is not None else []
        record = JobRecord(job_id, spec.to_dict(), submitted_unix=self._clock.wall(), total_rounds=total_rounds,
                           owner=owner, members=members)  # fmt: skip
        await asyncio.to_thread(records.write_record, self._book.folder, record)
        self._book.add(record, spec)
        self._queue.put(job_id)
        _log.info("accepted job %s from %s: %s on %s, %d rounds", job_id, owner or "anyone", spec.model.name,
                  spec.dataset.name, total_rounds, extra={"job": job_id, "owner": owner})  # fmt: skip
        if self._replicas is not None:
            missing = await self._replicas.offer(record)
            if missing:
                why = "; ".join(f"{peer}: {reason}" for peer, reason in sorted(missing.items()))
                raise JobNotReplicated(f"job {job_id} is recorded on this peer, but these members did not take it: "
                                       f"{why}", job_id)  # fmt: skip
        return job_id

    async def adopt(self, text: str) -> bool:
        """Takes a job another member recorded (its record as JSON), fsynced
        before the answer; True if this peer had it already. ConfigError
        (RecordError) for a record that cannot be read."""
        record, spec = records.record_from_json(text)
        if record.id in self._book.views or record.id in self._adopting:  # offered twice at once: a submit, a join
            return True
        self._adopting.add(record.id)
        try:
            await asyncio.to_thread(self._training.describe, spec)  # the model and data exist here too
            record.phase = JobPhase.QUEUED.value
            await asyncio.to_thread(records.write_record, self._book.folder, record)
        finally:
            self._adopting.discard(record.id)
        self._book.add(record, spec)
        self._queue.put(record.id)
        _log.info("took job %s from the cluster: %s on %s", record.id, spec.model.name, spec.dataset.name,
                  extra={"job": record.id})  # fmt: skip
        return False

    def unfinished(self) -> list[JobRecord]:
        """The running and queued jobs' records, oldest first (for members that join)."""
        return [job.record for job in self.jobs() if job.spec is not None and not job.record.job_phase.terminal]

    async def cancel(self, job_id: str, *, everywhere: bool = True) -> JobPhase:
        """Cancels the job here and (everywhere) on every member."""
        job = self.view(job_id)
        if everywhere and self._replicas is not None:
            await self._replicas.cancel(job_id)
        if job.record.job_phase.terminal:
            return job.record.job_phase
        await self._queue.cancel(job_id)
        # A job whose task did not run: still queued, or its task cancelled
        # before it first ran (so never reached the code that records a cancel).
        self._book.finish_cancelled(job)
        return job.record.job_phase

    async def delete(self, job_id: str) -> None:
        """Deletes an ended job: its record and everything it has in the store."""
        job = self.view(job_id)
        if not job.record.job_phase.terminal:
            raise JobBusy(f"job {job_id} is {job.record.phase}; cancel it before deleting it")
        await self._cleanup.forget(job)
        _log.info("deleted job %s", job_id, extra={"job": job_id})

    # ---- reads (reading.py), and versions for members that resync (VersionSource) ----

    def view(self, job_id: str) -> JobView:
        return self._book.view(job_id)

    def jobs(self) -> list[JobView]:
        """Every job, oldest first."""
        return self._book.jobs()

    def elapsed_s(self, job: JobView) -> float:
        return self._book.elapsed_s(job)

    async def status(self, job_id: str) -> JobSnapshot:
        return await self._reader.status(job_id)

    async def parameters(self, job_id: str) -> tuple[specs.JobSpec, Any, str, int]:
        return await self._reader.parameters(job_id)

    def watch(self, job_id: str) -> AsyncIterator[RoundReport]:
        return self._reader.watch(job_id)

    async def version(self, job_id: str) -> tuple[int, str, dict[str, str], list[str]]:
        return await self._reader.version(job_id)

    def read(self, job_id: str, version: int, name: str) -> AsyncIterator[tuple[str, tuple[int, ...], int, bytes]]:
        return self._reader.read(job_id, version, name)
