"""Warm workers kept between jobs: the next job with the same settings
takes the same processes; other settings, an error or idle() stop them
(real worker processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spirtd.clock import SystemClock
from spirtd.errors import InvocationFailed, SpirtError
from spirtd.workers.config import PoolConfig, PoolMode
from spirtd.workers.pool import PoolPhase
from spirtd.workers.warm import WarmPools, WorkerTotals

ROOT = Path(__file__).resolve().parents[2]


def spec(concurrency: int = 1) -> PoolConfig:
    return PoolConfig(mode=PoolMode.WARM, concurrency=concurrency)


async def pid_of(invoke) -> int:
    reply, _ = await invoke({"value": 1})
    return reply["pid"]


async def test_a_job_with_the_same_settings_takes_the_warm_workers():
    pools = WarmPools("tests.workers.pool_handlers:echo", {"PYTHONPATH": str(ROOT)}, SystemClock())
    try:
        async with pools.invoker(spec()) as invoke:
            first = await pid_of(invoke)
        async with pools.invoker(spec()) as invoke:
            assert await pid_of(invoke) == first  # no process started
        async with pools.invoker(spec(concurrency=2)) as invoke:
            other = await pid_of(invoke)
            assert other != first
        kept = pools._kept[1]
        with pytest.raises(SpirtError):
            async with pools.invoker(spec(concurrency=2)) as invoke:
                assert await pid_of(invoke) in (other, *kept.worker_pids())
                raise SpirtError("the job failed")
        assert kept.phase is PoolPhase.CLOSED and pools._kept is None  # not kept after a failure
        async with pools.invoker(spec()) as invoke:
            await pid_of(invoke)
        kept = pools._kept[1]
        await pools.idle()
        assert kept.phase is PoolPhase.CLOSED and pools._kept is None
    finally:
        await pools.aclose()


async def test_totals_sum_up_every_pool_closed_ones_included():
    pools = WarmPools("tests.workers.pool_handlers:echo", {"PYTHONPATH": str(ROOT)}, SystemClock())
    try:
        async with pools.invoker(spec()) as invoke:
            await invoke({"value": 1})
            await invoke({"value": 2})
        async with pools.invoker(PoolConfig(mode=PoolMode.COLD, concurrency=1)) as invoke:  # closes the warm one
            await invoke({"value": 3})
            assert pools.totals() == WorkerTotals(invocations=3, cold_starts=1, warm_starts=1)
            await invoke({"value": 4})
        await pools.idle()
        assert pools.totals() == WorkerTotals(invocations=4, cold_starts=2, warm_starts=1)
    finally:
        await pools.aclose()


async def test_totals_count_retries_and_failed_invocations():
    pools = WarmPools("tests.workers.pool_handlers:raise_error", {"PYTHONPATH": str(ROOT)}, SystemClock())
    try:
        async with pools.invoker(PoolConfig(mode=PoolMode.WARM, concurrency=1, max_attempts=2)) as invoke:
            with pytest.raises(InvocationFailed):
                await invoke({"id": 7})
        totals = pools.totals()
        assert (totals.invocations, totals.failures, totals.retries) == (0, 1, 1)
    finally:
        await pools.aclose()
