"""Control's job calls: SubmitJob, JobStatus, WatchJob, GetModel, CancelJob,
ListJobs, DeleteJob.

A job belongs to the client certificate that submitted it. Anyone may see
that it exists and how it goes (status, watch, list); reading its model,
cancelling and deleting it are for its owner, an operator certificate, or a
peer (with --insecure there are no identities and no owners).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, Callable

import grpc
import numpy as np
from redis.exceptions import ConnectionError as RedisConnectionError

from spirtd.api.spirt.v1 import control_pb2
from spirtd.errors import (
    ConfigError,
    DatasetFileError,
    JobBusy,
    JobNotFound,
    JobNotReplicated,
    LimitExceeded,
    StoreFull,
    StoreUnavailable,
)
from spirtd.jobs.jobstate import JobPhase, RoundReport
from spirtd.jobs.manager import JobManager
from spirtd.jobs.spec import JobSpec
from spirtd.jobs.views import JobView
from spirtd.rpc.counters import Counters
from spirtd.rpc.guard import caller
from spirtd.security.identity import Identity

_log = logging.getLogger("spirtd.control")
MODEL_CHUNK_BYTES = 1 << 20
PHASE_TO_WIRE = {
    JobPhase.QUEUED: control_pb2.QUEUED,
    JobPhase.RUNNING: control_pb2.RUNNING,
    JobPhase.SUCCEEDED: control_pb2.SUCCEEDED,
    JobPhase.STOPPED_EARLY: control_pb2.STOPPED_EARLY,
    JobPhase.FAILED: control_pb2.FAILED,
    JobPhase.CANCELLED: control_pb2.CANCELLED,
}
STORE_RESTARTING = "the store is restarting; try again in a moment"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def may_act_on(identity: Identity | None, owner: str) -> bool:
    """Whether the caller may read the model of, cancel or delete a job of owner."""
    return identity is None or identity.role.acts_on_any_job or identity.name == owner


def round_event(job_id: str, r: RoundReport) -> control_pb2.RoundEvent:
    event = control_pb2.RoundEvent(
        job_id=job_id, round=r.round, total_rounds=r.total_rounds, phase_s=r.phase_s,
        minibatches=r.minibatches, retried=r.retried, dropped=r.dropped, state=PHASE_TO_WIRE[r.phase],
        message=r.message, participants=list(r.participants), excluded=r.excluded, sent_bytes=r.sent_bytes,
        received_bytes=r.received_bytes, digest=r.digest, participant_digests=r.digests,
    )  # fmt: skip
    for name, value in (("loss", r.loss), ("accuracy", r.accuracy), ("val_loss", r.val_loss)):
        if _finite(value) is not None:
            setattr(event, name, value)
    return event


def job_summary(job: JobView) -> control_pb2.JobSummary:
    record = job.record
    terminal = record.job_phase.terminal
    return control_pb2.JobSummary(
        job_id=record.id, state=PHASE_TO_WIRE[record.job_phase], name=job.spec.name if job.spec else "",
        model=job.spec.model.name if job.spec else "", dataset=job.spec.dataset.name if job.spec else "",
        round=record.round if terminal else job.progress.round, total_rounds=record.total_rounds,
        owner=record.owner, submitted_unix=record.submitted_unix, model_kept=terminal and record.model_kept,
        error=record.error,
    )  # fmt: skip


class JobControl:
    """Mixed into ControlService; _jobs is the JobManager (None: no
    training on this peer), layout(spec) the model's (name, shape) list and
    model_inputs(spec) its (input shape, number of classes); _node.id is
    this peer's id (the one participant until rounds span peers)."""

    _jobs: JobManager | None
    _layout: Callable[[JobSpec], list[tuple[str, tuple[int, ...]]]]
    _model_inputs: Callable[[JobSpec], tuple[tuple[int, ...], int]]
    _counters: Counters
    _node: Any
    _chunk_bytes: int

    async def _manager(self, context: grpc.aio.ServicerContext) -> JobManager:
        manager = self._jobs
        if manager is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this peer does not run training jobs")
        return manager  # type: ignore[return-value]

    async def _guarded(self, context: grpc.aio.ServicerContext, work: Any) -> Any:
        """Runs work; the errors a client can act on become statuses with words."""
        try:
            return await work
        except JobNotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except JobBusy as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except JobNotReplicated as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except (LimitExceeded, StoreFull) as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except DatasetFileError as exc:
            _log.warning("refused a job spec whose dataset files cannot be used: %s", exc)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, self._dataset_refusal(exc))
        except ConfigError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except (StoreUnavailable, RedisConnectionError) as exc:
            _log.warning("a call found the store unavailable: %s", exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, STORE_RESTARTING)

    def _dataset_refusal(self, exc: DatasetFileError) -> str:
        # Whether a path exists, and what is in it, is the peer's business.
        return (f"the dataset of this spec cannot be used on peer {self._node.id}: its files are missing, "
                "unreadable or malformed there (the peer's log has the details)")  # fmt: skip

    async def _owned(self, context: grpc.aio.ServicerContext, job: JobView, action: str) -> None:
        identity = caller()
        if may_act_on(identity, job.record.owner):
            return
        self._counters.inc("refused.not_owner")
        _log.warning("refused %s: %s may not %s job %s of %r", context.peer(), identity, action, job.record.id,
                     job.record.owner, extra={"peer": context.peer(), "reason": "not_owner"})  # fmt: skip
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"job {job.record.id} belongs to {job.record.owner!r}: only its owner or an operator may {action} it",
        )

    async def SubmitJob(self, request, context):
        manager = await self._manager(context)
        identity = caller()
        owner = identity.name if identity is not None else ""
        job_id = await self._guarded(context, manager.submit(request.spec, request.format, owner=owner))
        return control_pb2.SubmitJobResponse(job_id=job_id)

    async def JobStatus(self, request, context):
        manager = await self._manager(context)
        snap = await self._guarded(context, manager.status(request.job_id))
        job, record = snap.view, snap.view.record
        reply = control_pb2.JobStatusResponse(
            job_id=record.id, state=PHASE_TO_WIRE[record.job_phase], round=snap.round,
            total_rounds=record.total_rounds, digest=snap.digest, error=record.error, elapsed_s=snap.elapsed_s,
            model=job.spec.model.name if job.spec else "", dataset=job.spec.dataset.name if job.spec else "",
            minibatches_retried=snap.retried, minibatches_dropped=snap.dropped, owner=record.owner,
            participants=list(job.progress.participants) or [self._node.id], name=job.spec.name if job.spec else "",
            participant_digests=job.progress.digests,
        )  # fmt: skip
        for name, value in (("loss", snap.loss), ("accuracy", snap.accuracy), ("val_loss", snap.val_loss),
                            ("test_accuracy", record.test_accuracy)):  # fmt: skip
            if _finite(value) is not None:
                setattr(reply, name, value)
        return reply

    async def WatchJob(self, request, context):
        manager = await self._manager(context)
        job = await self._guarded(context, _found(manager, request.job_id))
        if request.history_only:
            for report in list(job.events):
                yield round_event(request.job_id, report)
            return
        async for report in manager.watch(request.job_id):
            yield round_event(request.job_id, report)

    async def ListJobs(self, request, context):
        manager = await self._manager(context)
        return control_pb2.ListJobsResponse(jobs=[job_summary(job) for job in manager.jobs()])

    async def GetModel(self, request, context):
        manager = await self._manager(context)
        job = await self._guarded(context, _found(manager, request.job_id))
        await self._owned(context, job, "read the model of")
        spec, flat, digest, version = await self._guarded(context, manager.parameters(request.job_id))
        input_shape, num_classes = self._model_inputs(spec)
        flat = np.ascontiguousarray(flat, dtype=np.float32)
        offset, first = 0, True
        for name, shape in self._layout(spec):
            size = int(np.prod(shape, dtype=np.int64))
            raw = flat[offset : offset + size].tobytes()
            offset += size
            for start in range(0, max(len(raw), 1), self._chunk_bytes):
                chunk = control_pb2.ModelChunk(name=name, dtype="float32", shape=shape, offset=start,
                                               data=raw[start : start + self._chunk_bytes])  # fmt: skip
                if first:
                    chunk.digest, chunk.spec_json = digest, json.dumps(spec.to_dict(), sort_keys=True)
                    chunk.input_shape.extend(input_shape)
                    chunk.num_classes, chunk.round = num_classes, version
                    first = False
                yield chunk

    async def CancelJob(self, request, context):
        manager = await self._manager(context)
        job = await self._guarded(context, _found(manager, request.job_id))
        await self._owned(context, job, "cancel")
        phase = await self._guarded(context, manager.cancel(request.job_id))
        return control_pb2.CancelJobResponse(state=PHASE_TO_WIRE[phase])

    async def DeleteJob(self, request, context):
        manager = await self._manager(context)
        job = await self._guarded(context, _found(manager, request.job_id))
        await self._owned(context, job, "delete")
        await self._guarded(context, manager.delete(request.job_id))
        return control_pb2.DeleteJobResponse()


async def _found(manager: JobManager, job_id: str) -> JobView:
    return manager.view(job_id)
