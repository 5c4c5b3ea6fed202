"""clock_timeout: asyncio.timeout counted on an injected (fake) clock."""

from __future__ import annotations

import asyncio

import pytest

from spirtd.clock import FakeClock, clock_timeout


async def _spin(times: int = 5) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


async def test_timeouts_expire_on_the_fake_clock():
    clock = FakeClock()
    scope = clock_timeout(clock, 0.5)

    async def body():
        async with scope:
            await asyncio.Event().wait()

    task = asyncio.ensure_future(body())
    await _spin()
    clock.advance(0.49)
    await _spin()
    assert not task.done()
    clock.advance(0.01)
    await _spin()
    with pytest.raises(TimeoutError):
        await task
    assert scope.expired()


async def test_timeouts_body_that_finishes_in_time():
    clock = FakeClock()
    async with clock_timeout(clock, 1.0) as scope:
        await clock.sleep(0)
    assert not scope.expired()
    clock.advance(5.0)
    await _spin()  # nothing left to fire


async def test_timeouts_none_means_no_limit():
    clock = FakeClock()
    done = asyncio.Event()

    async def body():
        async with clock_timeout(clock, None):
            await done.wait()

    task = asyncio.ensure_future(body())
    clock.advance(1e6)
    await _spin()
    assert not task.done()
    done.set()
    await task


async def test_timeouts_nest_inner_fires_outer_goes_on():
    clock = FakeClock()
    events = []

    async def body():
        async with clock_timeout(clock, 2.0):
            try:
                async with clock_timeout(clock, 0.5):
                    await asyncio.Event().wait()
            except TimeoutError:
                events.append("inner")
            await clock.sleep(0.2)
            events.append("after")

    task = asyncio.ensure_future(body())
    await _spin()
    clock.advance(0.5)
    await _spin()
    clock.advance(0.2)
    await _spin()
    await task
    assert events == ["inner", "after"]


async def test_timeouts_outside_cancellation_is_not_a_timeout():
    clock = FakeClock()

    async def body():
        async with clock_timeout(clock, 10.0):
            await asyncio.Event().wait()

    task = asyncio.ensure_future(body())
    await _spin()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
