"""Deleting what jobs leave behind: a deleted job's record and store keys,
those retention.py lets go of, and whatever the store holds of jobs that
have no record. A store that cannot delete now (unreachable, refusing
writes) is tidied on a later pass."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.exceptions import RedisError

from spirtd.errors import StoreError
from spirtd.jobs import records, retention
from spirtd.jobs.book import JobBook
from spirtd.jobs.config import JobsConfig
from spirtd.jobs.keys import JobKeys
from spirtd.jobs.pins import VersionPins
from spirtd.jobs.views import JobView
from spirtd.store.api import TensorStore

_log = logging.getLogger("spirtd.jobs")


class JobCleanup:
    def __init__(self, book: JobBook, store: TensorStore, pins: VersionPins, config: JobsConfig) -> None:
        self._book = book
        self._store = store
        self._pins = pins
        self._config = config

    async def forget(self, job: JobView) -> None:
        """Deletes the job's record and everything it has in the store."""
        self._book.views.pop(job.record.id, None)
        self._pins.forget(job.record.id)
        path = job.quarantined or records.record_path(self._book.folder, job.record.id)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        with contextlib.suppress(StoreError, RedisError):  # tidy deletes what is left later
            await self._store.delete_matching(JobKeys(job.record.id).everything())

    async def tidy(self) -> None:
        """Applies the retention settings to ended jobs, and deletes what the
        store holds of jobs that have no record (or no longer need it)."""
        forget, drop_models = retention.plan(self._book.views.values(), self._config)
        for job in forget:
            await self.forget(job)
            _log.info("deleted the record of job %s (retention: [jobs] keep_jobs = %d)", job.record.id,
                      self._config.keep_jobs, extra={"job": job.record.id})  # fmt: skip
        for job in drop_models:
            job.record.model_kept = False
            await asyncio.to_thread(records.write_record, self._book.folder, job.record)
        try:
            # Running and queued jobs' keys are their runner's.
            await self._store.delete_matching(JobKeys.all_jobs(), keep=self._key_needed)
        except (StoreError, RedisError) as exc:  # unreachable, or refusing writes (disk full, read-only)
            _log.warning("could not tidy the store yet: %s", exc)

    def _key_needed(self, key: str) -> bool:
        return retention.key_needed(key, self._book.views, self._pins.held)
