"""Warm workers kept between jobs: the next job with the same settings
takes the same processes; other settings, an error or idle() stop them
(real worker processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spirtd.clock import SystemClock
from spirtd.errors import SpirtError
from spirtd.workers.config import PoolConfig, PoolMode
from spirtd.workers.pool import PoolPhase
from spirtd.workers.warm import WarmPools

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
