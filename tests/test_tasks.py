"""TaskSet: an owner's background tasks in its TaskGroup, all cancelled at close."""

from __future__ import annotations

import asyncio

import pytest

from spirtd.tasks import TaskSet


async def test_tasks_spawn_before_open_runs_nothing():
    ran = []

    async def job() -> None:
        ran.append(1)

    coro = job()
    assert TaskSet().spawn(coro) is None
    assert coro.cr_frame is None  # closed, not left to warn "never awaited"
    assert ran == []


async def test_tasks_spawned_run_in_the_group_and_are_forgotten_when_done():
    tasks = TaskSet()
    async with asyncio.TaskGroup() as group:
        tasks.open(group)
        task = tasks.spawn(asyncio.sleep(0, result="done"), name="quick")
        assert task is not None and task.get_name() == "quick" and len(tasks) == 1
        assert await task == "done"
        await asyncio.sleep(0)  # done callbacks run on the next turn
        assert len(tasks) == 0


async def test_tasks_close_cancels_those_in_flight_and_refuses_new_ones():
    tasks = TaskSet()
    group = asyncio.TaskGroup()
    await group.__aenter__()
    tasks.open(group)
    sleepers = [tasks.spawn(asyncio.sleep(3600)) for _ in range(3)]
    tasks.close()
    late = asyncio.sleep(0)
    assert tasks.spawn(late) is None and late.cr_frame is None
    await group.__aexit__(None, None, None)
    assert all(task.cancelled() for task in sleepers)
    tasks.close()  # idempotent


async def test_tasks_open_once():
    tasks = TaskSet()
    async with asyncio.TaskGroup() as group:
        tasks.open(group)
        with pytest.raises(RuntimeError):
            tasks.open(group)


async def test_tasks_aclose_returns_once_every_task_has_ended():
    tasks = TaskSet()
    ended = []

    async def sleeper() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)  # cleanup that takes a turn of the loop
            ended.append(1)

    async with asyncio.TaskGroup() as group:
        tasks.open(group)
        for _ in range(2):
            tasks.spawn(sleeper())
        await asyncio.sleep(0)
        await tasks.aclose()
        assert ended == [1, 1] and len(tasks) == 0
