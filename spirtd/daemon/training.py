"""The job manager's Training, wired from its rooms: the model and data
descriptions (spirtd.ml.describe), and warm worker pools (spirtd.workers)
serving the gradient handler, with tasks and results typed on this side of
the pipe (spirtd.ml.tasks)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import AsyncIterator

from spirtd.clock import Clock
from spirtd.jobs.spec import JobSpec
from spirtd.jobs.views import Training
from spirtd.ml import describe
from spirtd.ml.tasks import HANDLER, WORKER_ENV, DataShape, over_wire
from spirtd.workers.warm import WarmPools


def warm_pools(store_location: Mapping[str, str], clock: Clock) -> WarmPools:
    """The worker pools serving the gradient handler; store_location is
    store_env(...) of the store the workers use."""
    return WarmPools(HANDLER, {**WORKER_ENV, **store_location}, clock)


def training(pools: WarmPools) -> Training:

    @contextlib.asynccontextmanager
    async def invoker(spec: JobSpec) -> AsyncIterator:
        async with pools.invoker(spec.pool_config()) as invoke:
            yield over_wire(invoke)

    def shape(spec: JobSpec) -> DataShape:
        return describe.describe(spec.work())

    def initial_parameters(spec: JobSpec):
        return describe.initial_parameters(spec.work())

    return Training(describe=shape, initial_parameters=initial_parameters, invoker=invoker, idle=pools.idle)


def layout(spec: JobSpec) -> list[tuple[str, tuple[int, ...]]]:
    return describe.layout(spec.work())


def model_inputs(spec: JobSpec) -> tuple[tuple[int, ...], int]:
    return describe.model_inputs(spec.work())
