"""Warm workers kept between jobs: the next job with the same settings
takes the same processes; other settings, an error or idle() stop them
(real worker processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spirtd.clock import SystemClock
from spirtd.errors import SpirtError
from spirtd.train.pool import PoolPhase
from spirtd.train.spec import from_dict
from spirtd.train.warm_pools import WarmPools

ROOT = Path(__file__).resolve().parents[2]
SPEC = {"model": "mlp", "dataset": "digits", "batch_size": 8, "minibatches_per_round": 2, "rounds": 1,
        "workers": {"mode": "warm", "concurrency": 1}}


def spec(**workers):
    return from_dict({**SPEC, "workers": {**SPEC["workers"], **workers}})


async def pid_of(invoke) -> int:
    reply, _ = await invoke({"value": 1})
    return reply["pid"]


async def test_a_job_with_the_same_settings_takes_the_warm_workers():
    pools = WarmPools("tests.train.pool_handlers:echo", {"PYTHONPATH": str(ROOT)}, SystemClock())
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
