"""Parameter versions that readers hold.

A reader (JobStatus's digest, GetModel's stream) pins the version it reads;
the runner retires a version once the next one is committed. A retired
version is deleted at once if nobody holds it, else when its last reader
lets go. Pinning takes no await, so a reader that takes the committed round
and pins it in one step can never see its version disappear.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import AsyncIterator, Awaitable, Callable

Version = tuple[str, int]  # (job id, round)


class VersionPins:
    def __init__(self, delete: Callable[[str, int], Awaitable[None]]) -> None:
        self._delete = delete
        self._held: Counter[Version] = Counter()
        self._retired: set[Version] = set()

    def held(self, job_id: str, version: int) -> bool:
        return self._held[(job_id, version)] > 0

    @contextlib.asynccontextmanager
    async def pin(self, job_id: str, version: int) -> AsyncIterator[None]:
        key = (job_id, version)
        self._held[key] += 1
        try:
            yield
        finally:
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]
                if key in self._retired:
                    self._retired.discard(key)
                    await self._delete(job_id, version)

    async def retire(self, job_id: str, version: int) -> None:
        key = (job_id, version)
        if self._held[key] > 0:
            self._retired.add(key)
            return
        self._held.pop(key, None)
        await self._delete(job_id, version)

    def forget(self, job_id: str) -> None:
        """The job is gone: nothing of it is to be deleted later."""
        self._retired = {v for v in self._retired if v[0] != job_id}
