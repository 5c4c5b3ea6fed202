"""Control's job calls: SubmitJob, JobStatus, WatchJob, GetModel, CancelJob."""

from __future__ import annotations

import math
from typing import Any, Callable

import grpc
import numpy as np

from spirtd.api.spirt.v1 import control_pb2
from spirtd.errors import ConfigError
from spirtd.train.jobstate import JobPhase
from spirtd.train.manager import JobManager, JobNotFound
from spirtd.train.runner import RoundReport
from spirtd.train.spec import JobSpec

MODEL_CHUNK_BYTES = 1 << 20
PHASE_TO_WIRE = {
    JobPhase.QUEUED: control_pb2.QUEUED,
    JobPhase.RUNNING: control_pb2.RUNNING,
    JobPhase.SUCCEEDED: control_pb2.SUCCEEDED,
    JobPhase.STOPPED_EARLY: control_pb2.STOPPED_EARLY,
    JobPhase.FAILED: control_pb2.FAILED,
    JobPhase.CANCELLED: control_pb2.CANCELLED,
}


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def round_event(job_id: str, r: RoundReport) -> control_pb2.RoundEvent:
    event = control_pb2.RoundEvent(
        job_id=job_id, round=r.round, total_rounds=r.total_rounds,
        loss=r.loss if math.isfinite(r.loss) else 0.0, phase_s=r.phase_s, minibatches=r.minibatches,
        retried=r.retried, dropped=r.dropped, state=PHASE_TO_WIRE[r.phase], message=r.message,
    )  # fmt: skip
    if _finite(r.accuracy) is not None:
        event.accuracy = r.accuracy
    if _finite(r.val_loss) is not None:
        event.val_loss = r.val_loss
    return event


class JobControl:
    """Mixed into ControlService; jobs() gives the JobManager (None: no
    training on this peer), layout(spec) the model's (name, shape) list."""

    _jobs: Callable[[], JobManager | None]
    _layout: Callable[[JobSpec], list[tuple[str, tuple[int, ...]]]]

    async def _manager(self, context: grpc.aio.ServicerContext) -> JobManager:
        manager = self._jobs()
        if manager is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this peer does not run training jobs")
        return manager  # type: ignore[return-value]

    async def _guarded(self, context: grpc.aio.ServicerContext, work: Any) -> Any:
        try:
            return await work
        except JobNotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except ConfigError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    async def SubmitJob(self, request, context):
        manager = await self._manager(context)
        job_id = await self._guarded(context, manager.submit(request.spec, request.format))
        return control_pb2.SubmitJobResponse(job_id=job_id)

    async def JobStatus(self, request, context):
        manager = await self._manager(context)
        try:
            job = manager.view(request.job_id)
        except JobNotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        reply = control_pb2.JobStatusResponse(
            job_id=job.record.id, state=PHASE_TO_WIRE[job.record.job_phase], round=job.round,
            total_rounds=job.total_rounds, loss=job.loss if math.isfinite(job.loss) else 0.0,
            digest=await manager.digest(job.record.id), error=job.record.error,
            elapsed_s=manager.elapsed_s(job), model=job.spec.model.name, dataset=job.spec.dataset.name,
            minibatches_retried=job.retried, minibatches_dropped=job.dropped,
        )  # fmt: skip
        for name, value in (("accuracy", job.accuracy), ("val_loss", job.val_loss),
                            ("test_accuracy", job.record.test_accuracy)):  # fmt: skip
            if _finite(value) is not None:
                setattr(reply, name, value)
        return reply

    async def WatchJob(self, request, context):
        manager = await self._manager(context)
        try:
            manager.view(request.job_id)
        except JobNotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        async for report in manager.watch(request.job_id):
            yield round_event(request.job_id, report)

    async def GetModel(self, request, context):
        manager = await self._manager(context)
        spec, flat, digest = await self._guarded(context, manager.parameters(request.job_id))
        flat = np.ascontiguousarray(flat, dtype=np.float32)
        offset, first = 0, True
        for name, shape in self._layout(spec):
            size = int(np.prod(shape, dtype=np.int64))
            raw = flat[offset : offset + size].tobytes()
            offset += size
            for start in range(0, max(len(raw), 1), MODEL_CHUNK_BYTES):
                yield control_pb2.ModelChunk(name=name, dtype="float32", shape=shape, offset=start,
                                             data=raw[start : start + MODEL_CHUNK_BYTES],
                                             digest=digest if first else "")  # fmt: skip
                first = False

    async def CancelJob(self, request, context):
        manager = await self._manager(context)
        phase = await self._guarded(context, manager.cancel(request.job_id))
        return control_pb2.CancelJobResponse(state=PHASE_TO_WIRE[phase])
