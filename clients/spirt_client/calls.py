"""Each Control call once: which method, what request, how to read its
answer (or each message of its stream) into a result. The synchronous and
the asyncio client only carry these out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from grpc_health.v1 import health_pb2

from spirt_client.results import JobState, JobStatus, JobSummary, Member, MemberEvent, RoundEvent, Status
from spirt_client.specs import Spec, spec_text
from spirtd.api.spirt.v1 import control_pb2

R = TypeVar("R")
# The services a client calls: Control, and the standard gRPC health check.
CONTROL, HEALTH = "control", "health"
# A submit checks the spec's model and data at the peer (torch's first import
# there), then waits for every member to record it (up to 30 s each, at
# once): seconds on a quiet machine, half a minute on a busy one. A client's
# shorter timeout would give up on a job already recorded, which a retry
# would submit twice.
SUBMIT_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class Ask(Generic[R]):
    """rpc: the service's method (Control's unless service says otherwise);
    read: the answer (or each streamed message) to the result; bounded:
    whether the client's timeout_s applies (a watch lasts as long as the
    job), and min_timeout_s the least it may be for this call."""

    rpc: str
    request: Any
    read: Callable[[Any], R]
    stream: bool = False
    bounded: bool = True
    service: str = CONTROL
    min_timeout_s: float = 0.0  # a bounded call's deadline is at least this, whatever the client's


def status() -> Ask[Status]:
    return Ask("Status", control_pb2.StatusRequest(), Status.from_proto)


def members() -> Ask[list[Member]]:
    return Ask("Members", control_pb2.MembersRequest(), lambda r: [Member.from_proto(m) for m in r.members])


def watch_members(include_current: bool) -> Ask[MemberEvent]:
    request = control_pb2.WatchMembershipRequest(include_current=include_current)
    return Ask("WatchMembership", request, MemberEvent.from_proto, stream=True, bounded=False)


def submit(spec: Spec) -> Ask[str]:
    text, fmt = spec_text(spec)
    return Ask("SubmitJob", control_pb2.SubmitJobRequest(spec=text, format=fmt), lambda r: r.job_id,
               min_timeout_s=SUBMIT_TIMEOUT_S)


def job_status(job_id: str) -> Ask[JobStatus]:
    return Ask("JobStatus", control_pb2.JobStatusRequest(job_id=job_id), JobStatus.from_proto)


def jobs() -> Ask[list[JobSummary]]:
    return Ask("ListJobs", control_pb2.ListJobsRequest(), lambda r: [JobSummary.from_proto(j) for j in r.jobs])


def events(job_id: str) -> Ask[RoundEvent]:
    """The events the peer keeps, then each new one until the job ends."""
    request = control_pb2.WatchJobRequest(job_id=job_id)
    return Ask("WatchJob", request, RoundEvent.from_proto, stream=True, bounded=False)


def history(job_id: str) -> Ask[RoundEvent]:
    """The events the peer keeps so far, and no more."""
    request = control_pb2.WatchJobRequest(job_id=job_id, history_only=True)
    return Ask("WatchJob", request, RoundEvent.from_proto, stream=True)


def model(job_id: str) -> Ask[control_pb2.ModelChunk]:
    return Ask("GetModel", control_pb2.GetModelRequest(job_id=job_id), lambda chunk: chunk, stream=True)


def cancel(job_id: str) -> Ask[JobState]:
    # Like a submit, a cancel waits for every member (30 s each, at once).
    return Ask("CancelJob", control_pb2.CancelJobRequest(job_id=job_id), lambda r: JobState.from_proto(r.state),
               min_timeout_s=SUBMIT_TIMEOUT_S)


def delete(job_id: str) -> Ask[None]:
    return Ask("DeleteJob", control_pb2.DeleteJobRequest(job_id=job_id), lambda r: None)


def health(service: str) -> Ask[str]:
    """grpc.health.v1's answer for service ("" the peer as a whole): SERVING, NOT_SERVING, ..."""
    request = health_pb2.HealthCheckRequest(service=service)
    read = lambda r: health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)  # noqa: E731
    return Ask("Check", request, read, service=HEALTH)
