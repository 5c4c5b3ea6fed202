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
keep_jobs; _tidy() deletes the rest, and whatever the store holds of jobs
that have no record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from spirtd.clock import Clock, clock_timeout
from spirtd.errors import JobBusy, JobNotFound, JobNotReplicated, SpirtError, StoreError, StoreUnavailable
from spirtd.jobs import footprint, records, retention
from spirtd.jobs import spec as specs
from spirtd.jobs.config import JobsConfig
from spirtd.jobs.jobstate import JobPhase, Progress, RoundReport, advance
from spirtd.jobs.keys import VERSION_TENSORS, JobKeys, job_of_key
from spirtd.jobs.peers import RoundPeers
from spirtd.jobs.pins import VersionPins
from spirtd.jobs.records import JobRecord
from spirtd.jobs.runner import Invoker, JobRunner, delete_version
from spirtd.jobs.views import JobSnapshot, JobStop, JobView, RunningJob, Training
from spirtd.ml.tasks import DataShape
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
# How often a job whose store crashed asks whether it is back.
STORE_POLL_S = 0.1
NEVER_STARTED = "cancelled before it started"


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
        self._folder = Path(data_dir) / JOBS_DIR
        self._store = store
        self._training = training
        self._clock = clock
        self._config = config or JobsConfig()
        self._store_memory_bytes = store_memory_bytes
        self._jobs: dict[str, JobView] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._current: RunningJob | None = None
        self._group: asyncio.TaskGroup | None = None
        self._stack = contextlib.AsyncExitStack()
        self._pins = VersionPins(lambda job_id, version: delete_version(store, JobKeys(job_id), version))
        self._peers = peers
        self._replicas = replicas
        self._serve_chunk_bytes = serve_chunk_bytes
        self._adopting: set[str] = set()  # job ids offered by members, being recorded

    # ---- lifecycle ----

    async def __aenter__(self) -> "JobManager":
        await self._load_records()
        await self._tidy()
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
            self._current.stop(JobStop.SHUTDOWN)
        try:
            await self._stack.aclose()
        finally:
            self._group = None
            await self._training.idle()

    async def _load_records(self) -> None:
        good, bad = await asyncio.to_thread(records.load_all, self._folder)
        for record, path in bad:
            self._jobs[record.id] = JobView(record, None, quarantined=path)
        for record, spec in good:
            job = self._new_view(record, spec)
            self._jobs[record.id] = job
            if not record.job_phase.terminal:
                job.progress = await self._stored_progress(record.id)
                self._queue.put_nowait(record.id)
                _log.info("job %s will resume (it was %s)", record.id, record.phase, extra={"job": record.id})

    def _new_view(self, record: JobRecord, spec: specs.JobSpec | None) -> JobView:
        return JobView(record, spec, events=deque(maxlen=self._config.event_history))

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
        await asyncio.to_thread(records.write_record, self._folder, record)
        self._jobs[job_id] = self._new_view(record, spec)
        self._queue.put_nowait(job_id)
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
        if record.id in self._jobs or record.id in self._adopting:  # offered twice at once: a submit, a join
            return True
        self._adopting.add(record.id)
        try:
            await asyncio.to_thread(self._training.describe, spec)  # the model and data exist here too
            record.phase = JobPhase.QUEUED.value
            await asyncio.to_thread(records.write_record, self._folder, record)
        finally:
            self._adopting.discard(record.id)
        self._jobs[record.id] = self._new_view(record, spec)
        self._queue.put_nowait(record.id)
        _log.info("took job %s from the cluster: %s on %s", record.id, spec.model.name, spec.dataset.name,
                  extra={"job": record.id})  # fmt: skip
        return False

    def unfinished(self) -> list[JobRecord]:
        """The running and queued jobs' records, oldest first (for members that join)."""
        return [job.record for job in self.jobs() if job.spec is not None and not job.record.job_phase.terminal]

    def view(self, job_id: str) -> JobView:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFound(f"no job {job_id[:80]!r} on this peer") from None

    def jobs(self) -> list[JobView]:
        """Every job, oldest first."""
        return sorted(self._jobs.values(), key=lambda job: (job.record.submitted_unix, job.record.id))

    def elapsed_s(self, job: JobView) -> float:
        if job.record.job_phase.terminal or not job.record.submitted_unix:
            return job.record.elapsed_s
        return self._clock.wall() - job.record.submitted_unix

    def _version(self, job: JobView) -> int | None:
        """The round whose parameters a reader may read now, or None."""
        record = job.record
        if record.job_phase.terminal:
            return record.round if record.model_kept and job.spec is not None else None
        return job.progress.round

    async def _read_pinned(self, job: JobView, read: Callable[[str], Awaitable[Any]]) -> tuple[int, Any]:
        version = self._version(job)  # taken and pinned with no await in between
        if version is None:
            if job.spec is None:
                raise JobNotFound(f"job {job.record.id} has no model: {job.record.error}")
            if job.record.error == NEVER_STARTED:
                raise JobNotFound(f"job {job.record.id} has no model: it was cancelled before it started")
            raise JobNotFound(f"the model of job {job.record.id} was not kept (retention: [jobs] keep_models)")
        async with self._pins.pin(job.record.id, version):
            key = JobKeys(job.record.id).params(version)
            if not await self._store.exists(key):
                if job.record.job_phase.terminal:
                    raise JobNotFound(f"the store no longer holds the model of job {job.record.id} (round {version})")
                raise JobNotFound(f"job {job.record.id} has no parameters in the store yet")
            return version, await read(key)

    async def status(self, job_id: str) -> JobSnapshot:
        """The job's state, every number from one round (and the digest of
        that round's parameters)."""
        job = self.view(job_id)
        record = job.record
        if record.job_phase.terminal:
            return JobSnapshot(job, record.round, record.loss, record.accuracy, record.val_loss, record.retried,
                               record.dropped, record.digest, self.elapsed_s(job))  # fmt: skip
        progress = job.progress  # and, with no await in between, the version _read_pinned pins
        digest = ""
        # No digest before the first version, or while the store restarts:
        # the rest of the status needs no store.
        with contextlib.suppress(JobNotFound, StoreUnavailable, RedisConnectionError):
            _, digest = await self._read_pinned(job, self._store.digest)
        loss = progress.loss if progress.loss == progress.loss else None
        return JobSnapshot(job, progress.round, loss, progress.accuracy, progress.val_loss, progress.retried,
                           progress.dropped, digest, self.elapsed_s(job))  # fmt: skip

    async def parameters(self, job_id: str) -> tuple[specs.JobSpec, Any, str, int]:
        """The job's spec, its flat parameters, their digest and the round
        they are of, all of one round."""
        job = self.view(job_id)

        async def read(key: str) -> tuple[Any, str]:
            return await self._store.get(key), await self._store.digest(key)

        version, (flat, digest) = await self._read_pinned(job, read)
        return job.spec, flat, digest, version

    # ---- versions, for members that resync (VersionSource) ----

    async def version(self, job_id: str) -> tuple[int, str, dict[str, str], list[str]]:
        """The job's committed version here: its round, digest, progress and
        tensor names. JobNotFound when there is none to give."""
        job = self.view(job_id)
        progress, ended = job.progress, job.record.job_phase.terminal
        if not progress.state or (ended and (not job.record.model_kept or job.record.round != progress.round)):
            raise JobNotFound(f"job {job_id} has no version to give on this peer (it is {job.record.phase})")
        names = [name for name, key in zip(VERSION_TENSORS, JobKeys(job_id).version(progress.round))
                 if await self._store.exists(key)]  # fmt: skip
        # An ended job keeps its parameters only; "ended" tells the taker so.
        fields = {**progress.to_hash(), **({"ended": job.record.phase} if ended else {})}
        return progress.round, progress.state, fields, names

    async def read(self, job_id: str, version: int, name: str) -> AsyncIterator[tuple[str, tuple[int, ...], int, bytes]]:
        """(dtype, shape, offset, data) pieces of one tensor of a version,
        pinned while it is read."""
        self.view(job_id)
        keys = dict(zip(VERSION_TENSORS, JobKeys(job_id).version(version)))
        if name not in keys:
            raise JobNotFound(f"a version has no tensor {name[:40]!r}")
        async with self._pins.pin(job_id, version):
            if not await self._store.exists(keys[name]):
                raise JobNotFound(f"this peer no longer holds round {version} of job {job_id}")
            meta = await self._store.meta(keys[name])
            step = min(self._store.chunk_bytes, self._serve_chunk_bytes)
            for offset in range(0, max(meta.nbytes, 1), step):
                data = await self._store.read_chunk(keys[name], offset, min(step, meta.nbytes - offset))
                yield meta.dtype.value, meta.shape, offset, data

    async def watch(self, job_id: str) -> AsyncIterator[RoundReport]:
        """The newest round events so far, then new ones until the job ends."""
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

    async def cancel(self, job_id: str, *, everywhere: bool = True) -> JobPhase:
        """Cancels the job here and (everywhere) on every member."""
        job = self.view(job_id)
        if everywhere and self._replicas is not None:
            await self._replicas.cancel(job_id)
        if job.record.job_phase.terminal:
            return job.record.job_phase
        if self._current is not None and self._current.job_id == job_id:
            running = self._current
            running.stop(JobStop.CANCEL)
            try:
                await asyncio.shield(running.task)
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise  # this caller gave up; the job's task records the cancel as it ends
        self._cancelled_before_start(job)
        return job.record.job_phase

    def _cancelled_before_start(self, job: JobView) -> None:
        """Records the cancel of a job whose task did not run: still queued,
        or its task cancelled before it first ran (so never reached the code
        in _run that records a cancel). A job resumed after a restart keeps
        the model of the rounds it ran before."""
        if job.record.job_phase.terminal:
            return
        never_ran = job.record.job_phase is JobPhase.QUEUED
        job.record.model_kept = job.record.model_kept and not never_ran
        self._finish(job, JobPhase.CANCELLED, NEVER_STARTED if never_ran else "cancelled")

    async def delete(self, job_id: str) -> None:
        """Deletes an ended job: its record and everything it has in the store."""
        job = self.view(job_id)
        if not job.record.job_phase.terminal:
            raise JobBusy(f"job {job_id} is {job.record.phase}; cancel it before deleting it")
        await self._forget(job)
        _log.info("deleted job %s", job_id, extra={"job": job_id})

    async def _forget(self, job: JobView) -> None:
        self._jobs.pop(job.record.id, None)
        self._pins.forget(job.record.id)
        path = job.quarantined or records.record_path(self._folder, job.record.id)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        with contextlib.suppress(StoreError, RedisError):  # _tidy deletes what is left later
            await self._store.delete_matching(JobKeys(job.record.id).everything())

    # ---- running ----

    def _running(self) -> JobView | None:
        return self._jobs.get(self._current.job_id) if self._current is not None else None

    async def _next_job(self) -> str:
        """The next job id; warm workers are let go after warm_idle_s with none."""
        try:
            async with clock_timeout(self._clock, self._config.warm_idle_s):
                return await self._queue.get()
        except TimeoutError:
            await self._training.idle()
        return await self._queue.get()

    async def _serve(self) -> None:
        while True:
            job_id = await self._next_job()
            job = self._jobs.get(job_id)
            if job is None or job.record.job_phase.terminal:
                continue
            running = RunningJob(job_id, self._group.create_task(self._run(job), name=f"job {job_id}"))  # type: ignore[union-attr]
            self._current = running
            try:
                await running.task
            except asyncio.CancelledError:
                # A cancelled job ends here; the manager closing (even while
                # a cancelled job unwinds) ends the loop.
                if running.stopped_by is not JobStop.CANCEL or asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise
                self._cancelled_before_start(job)
            finally:
                self._current = None
            await self._tidy()

    async def _run(self, job: JobView) -> None:
        start = self._clock.monotonic()
        try:
            shape = await asyncio.to_thread(self._training.describe, job.spec)
            job.record.total_rounds = job.spec.check_length(shape.batches_per_epoch)  # type: ignore[union-attr]
            if job.record.job_phase is JobPhase.QUEUED:
                self._set_phase(job, JobPhase.RUNNING)
            async with self._training.invoker(job.spec) as invoke:
                phase, test_accuracy, digest = await self._train(job, shape, invoke)
            job.record.test_accuracy, job.record.digest = test_accuracy, digest
            await self._store.flush_to_disk()  # the model is durable before the job is reported done
            self._finish(job, phase, "", self._clock.monotonic() - start)
        except asyncio.CancelledError:
            # Stopped by a shutdown, the job stays as it is and resumes after the restart.
            stopped_by = self._current.stopped_by if self._current is not None else None
            if stopped_by is JobStop.CANCEL and not job.record.job_phase.terminal:
                never_ran = job.record.job_phase is JobPhase.QUEUED  # cancelled while its data loaded
                job.record.model_kept = job.record.model_kept and not never_ran
                self._finish(job, JobPhase.CANCELLED, NEVER_STARTED if never_ran else "cancelled",
                             self._clock.monotonic() - start)  # fmt: skip
            raise
        except (SpirtError, RedisError) as exc:
            why = str(exc) if isinstance(exc, SpirtError) else f"the store refused an operation: {exc}"
            _log.error("job %s failed: %s", job.record.id, why, extra={"job": job.record.id})
            self._finish(job, JobPhase.FAILED, why, self._clock.monotonic() - start)
        except Exception as exc:  # noqa: BLE001 - a bug in one job must not take the peer down
            _log.exception("job %s failed on an internal error", job.record.id, extra={"job": job.record.id})
            self._finish(job, JobPhase.FAILED, f"internal error ({type(exc).__name__}: {exc}); the peer's log "
                         "has the details", self._clock.monotonic() - start)  # fmt: skip

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
                    self._note(job, f"the store holds none of this job (it lost its data); the job starts over from "
                               f"round 0 (it was at round {before})")  # fmt: skip
                phase = await runner.run()
                test = await runner.evaluate(runner.params_key, "test")
                return phase, test.accuracy, await self._store.digest(runner.params_key)
            except (SpirtError, RedisError, OSError) as exc:
                if not await self._store_restarted(run_id):
                    raise
                _log.warning("job %s: the store restarted (%s); going on from the newest round it holds",
                             job.record.id, exc, extra={"job": job.record.id})  # fmt: skip
                self._note(job, "the store restarted; the job goes on from the newest round it holds")

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
                         lambda report: self._publish(job, report), on_commit=committed,
                         retire=lambda version: self._pins.retire(job.record.id, version),
                         peers=self._peers, settings=job.spec.round_settings(),  # type: ignore[union-attr]
                         first_participants=tuple(job.record.members))  # fmt: skip

    def _note(self, job: JobView, message: str) -> None:
        """An event that is no round: something happened to the job."""
        p = job.progress
        self._publish(job, RoundReport(round=p.round, total_rounds=job.total_rounds, loss=p.loss,
                                       phase=job.record.job_phase, accuracy=p.accuracy, val_loss=p.val_loss,
                                       message=message))  # fmt: skip

    def _publish(self, job: JobView, report: RoundReport) -> None:
        job.events.append(report)
        for queue in job.watchers:
            queue.put_nowait(report)

    def _set_phase(self, job: JobView, phase: JobPhase) -> None:
        job.record.phase = advance(job.record.job_phase, phase).value
        records.write_record(self._folder, job.record)

    def _finish(self, job: JobView, phase: JobPhase, error: str, elapsed_s: float = 0.0) -> None:
        p, record = job.progress, job.record
        record.error, record.elapsed_s, record.finished_unix = error, elapsed_s, self._clock.wall()
        record.round, record.accuracy, record.val_loss = p.round, p.accuracy, p.val_loss
        record.retried, record.dropped = p.retried, p.dropped
        record.loss = p.loss if p.loss == p.loss else None
        self._set_phase(job, phase)
        words = {JobPhase.SUCCEEDED: "finished", JobPhase.STOPPED_EARLY: "stopped early (no improvement)",
                 JobPhase.FAILED: f"failed: {error}", JobPhase.CANCELLED: "was cancelled"}  # fmt: skip
        _log.info("job %s %s after %d rounds", record.id, words[phase], p.round,
                  extra={"job": record.id, "phase": phase.value})  # fmt: skip
        self._note(job, error or words[phase])

    # ---- retention ----

    async def _tidy(self) -> None:
        """Applies the retention settings to ended jobs, and deletes what the
        store holds of jobs that have no record (or no longer need it)."""
        forget, drop_models = retention.plan(self._jobs.values(), self._config)
        for job in forget:
            await self._forget(job)
            _log.info("deleted the record of job %s (retention: [jobs] keep_jobs = %d)", job.record.id,
                      self._config.keep_jobs, extra={"job": job.record.id})  # fmt: skip
        for job in drop_models:
            job.record.model_kept = False
            await asyncio.to_thread(records.write_record, self._folder, job.record)
        try:
            # Running and queued jobs' keys are their runner's.
            await self._store.delete_matching(JobKeys.all_jobs(), keep=self._key_needed)
        except (StoreError, RedisError) as exc:  # unreachable, or refusing writes (disk full, read-only)
            _log.warning("could not tidy the store yet: %s", exc)

    def _key_needed(self, key: str) -> bool:
        job = self._jobs.get(job_of_key(key) or "")
        if job is None:
            return False
        if not job.record.job_phase.terminal:
            return True
        keys, version, last = JobKeys(job.record.id), self._version(job), job.record.round
        kept = version is not None and key == keys.params(version)
        return kept or (key == keys.params(last) and self._pins.held(job.record.id, last))
