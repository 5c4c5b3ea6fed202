"""What readers get of a job: its status, its parameters, its committed
version for members that resync (the daemon's VersionSource), and its
round events as they come.

A read takes the job's readable version and pins it (pins.py) with no
await in between, so it sees one round whole while the job goes on and
the runner retires older versions.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Awaitable, Callable

from redis.exceptions import ConnectionError as RedisConnectionError

from spirtd.errors import JobNotFound, StoreUnavailable
from spirtd.jobs import spec as specs
from spirtd.jobs.book import NEVER_STARTED, JobBook
from spirtd.jobs.jobstate import RoundReport
from spirtd.jobs.keys import VERSION_TENSORS, JobKeys
from spirtd.jobs.pins import VersionPins
from spirtd.jobs.views import JobSnapshot, JobView
from spirtd.store.api import TensorStore


class JobReader:
    def __init__(self, book: JobBook, store: TensorStore, pins: VersionPins, serve_chunk_bytes: int) -> None:
        self._book = book
        self._store = store
        self._pins = pins
        self._serve_chunk_bytes = serve_chunk_bytes

    async def _read_pinned(self, job: JobView, read: Callable[[str], Awaitable[Any]]) -> tuple[int, Any]:
        version = job.readable_version  # taken and pinned with no await in between
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
        job = self._book.view(job_id)
        record = job.record
        if record.job_phase.terminal:
            return JobSnapshot(job, record.round, record.loss, record.accuracy, record.val_loss, record.retried,
                               record.dropped, record.digest, self._book.elapsed_s(job))  # fmt: skip
        progress = job.progress  # and, with no await in between, the version _read_pinned pins
        digest = ""
        # No digest before the first version, or while the store restarts:
        # the rest of the status needs no store.
        with contextlib.suppress(JobNotFound, StoreUnavailable, RedisConnectionError):
            _, digest = await self._read_pinned(job, self._store.digest)
        loss = progress.loss if progress.loss == progress.loss else None
        return JobSnapshot(job, progress.round, loss, progress.accuracy, progress.val_loss, progress.retried,
                           progress.dropped, digest, self._book.elapsed_s(job))  # fmt: skip

    async def parameters(self, job_id: str) -> tuple[specs.JobSpec, Any, str, int]:
        """The job's spec, its flat parameters, their digest and the round
        they are of, all of one round."""
        job = self._book.view(job_id)

        async def read(key: str) -> tuple[Any, str]:
            return await self._store.get(key), await self._store.digest(key)

        version, (flat, digest) = await self._read_pinned(job, read)
        return job.spec, flat, digest, version

    # ---- versions, for members that resync (VersionSource) ----

    async def version(self, job_id: str) -> tuple[int, str, dict[str, str], list[str]]:
        """The job's committed version here: its round, digest, progress and
        tensor names. JobNotFound when there is none to give."""
        job = self._book.view(job_id)
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
        self._book.view(job_id)
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
        job = self._book.view(job_id)
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
