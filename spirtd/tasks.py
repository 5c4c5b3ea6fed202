"""TaskSet: an owner's background tasks, run in the owner's TaskGroup and
tracked so that closing cancels them all at once.

    group = asyncio.TaskGroup()
    await group.__aenter__()
    self._tasks.open(group)
    self._tasks.spawn(self._loop())       # None once closing: nothing runs
    ...
    self._tasks.close()                   # no new tasks; cancels those in flight
    await group.__aexit__(None, None, None)

An owner whose group closes later than its tasks must end (the daemon's,
on its exit stack) awaits aclose() instead: close(), then their end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class TaskSet:
    """Tasks spawned into one TaskGroup, until close()."""

    def __init__(self) -> None:
        self._group: asyncio.TaskGroup | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()

    def open(self, group: asyncio.TaskGroup) -> None:
        """Spawns go into `group` (already entered) from now on."""
        if self._group is not None or self._closed:
            raise RuntimeError("a TaskSet opens once")
        self._group = group

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any] | None:
        """Runs coro in the group; None, and coro closed unrun, when the set
        is not open (before open(), or closing: the owner then cleans up what
        the task would have done itself)."""
        if self._group is None:
            coro.close()
            return None
        task = self._group.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self) -> None:
        """Refuses new tasks and cancels every task in flight; the owner then
        exits its TaskGroup, which waits for them. Idempotent."""
        self._group, self._closed = None, True
        for task in list(self._tasks):
            task.cancel()

    async def aclose(self) -> None:
        """close(), then waits until every task has ended. How they ended
        (an error included) is for the TaskGroup to report as it exits."""
        tasks = list(self._tasks)
        self.close()
        if tasks:
            await asyncio.wait(tasks)

    def __len__(self) -> int:
        return len(self._tasks)
