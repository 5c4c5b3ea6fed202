"""What Control's answers say, as frozen dataclasses (never protobuf
messages): each has from_proto() and to_dict() (JSON-ready: states are
strings, lists are lists, an unset number is None)."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

from spirtd.api.spirt.v1 import control_pb2, membership_pb2


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every round done
    STOPPED_EARLY = "stopped_early"  # the patience rule ended it
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self not in (JobState.QUEUED, JobState.RUNNING)

    @property
    def succeeded(self) -> bool:
        """It trained to its end: every round, or until the patience rule stopped it."""
        return self in (JobState.SUCCEEDED, JobState.STOPPED_EARLY)

    @classmethod
    def from_proto(cls, value: int) -> JobState:
        return cls(control_pb2.JobState.Name(value).lower())


class MemberState(enum.StrEnum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"

    @classmethod
    def from_proto(cls, value: int) -> MemberState:
        return cls(membership_pb2.MemberState.Name(value).lower())


class _Result:
    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _optional(message: Any, name: str) -> float | None:
    return getattr(message, name) if message.HasField(name) else None


@dataclass(frozen=True)
class Status(_Result):
    """A peer: its id, version, uptime, store backend, members it knows
    (itself included) and its counters (e.g. refused.no_certificate)."""

    id: str
    version: str
    address: str
    uptime_s: float
    store_backend: str
    member_count: int
    alive_count: int
    incarnation: int
    counters: dict[str, int]

    @classmethod
    def from_proto(cls, s: control_pb2.StatusResponse) -> Status:
        return cls(id=s.id, version=s.version, address=s.address, uptime_s=s.uptime_s, store_backend=s.store_backend,
                   member_count=s.member_count, alive_count=s.alive_count, incarnation=s.incarnation,
                   counters=dict(s.counters))  # fmt: skip


@dataclass(frozen=True)
class Member(_Result):
    """A member as the peer asked knows it; rtt_ms is 0 before its first probe."""

    id: str
    address: str
    state: MemberState
    incarnation: int
    rtt_ms: float
    state_age_s: float

    @classmethod
    def from_proto(cls, m: control_pb2.MemberInfo) -> Member:
        return cls(id=m.id, address=m.address, state=MemberState.from_proto(m.state), incarnation=m.incarnation,
                   rtt_ms=m.rtt_ms, state_age_s=m.state_age_s)  # fmt: skip


@dataclass(frozen=True)
class MemberEvent(_Result):
    """A change of a member's state: kind is join, suspect, alive, dead or leave."""

    kind: str
    member: Member
    time_unix: float

    @classmethod
    def from_proto(cls, e: control_pb2.MembershipEvent) -> MemberEvent:
        kind = control_pb2.MembershipEvent.Kind.Name(e.kind).lower()
        return cls(kind=kind, member=Member.from_proto(e.member), time_unix=e.time_unix)


@dataclass(frozen=True)
class JobStatus(_Result):
    """A job as the peer asked sees it: round is the rounds done; loss,
    accuracy and val_loss those of the last round and evaluation (None before
    any); test_accuracy once it ended; participants the last round's peers
    and participant_digests the digest each reported for it."""

    job_id: str
    name: str
    state: JobState
    round: int
    total_rounds: int
    loss: float | None
    accuracy: float | None
    val_loss: float | None
    test_accuracy: float | None
    digest: str
    error: str
    elapsed_s: float
    model: str
    dataset: str
    minibatches_retried: int
    minibatches_dropped: int
    owner: str
    participants: tuple[str, ...]
    participant_digests: dict[str, str]

    @classmethod
    def from_proto(cls, s: control_pb2.JobStatusResponse) -> JobStatus:
        return cls(
            job_id=s.job_id, name=s.name, state=JobState.from_proto(s.state), round=s.round,
            total_rounds=s.total_rounds, loss=_optional(s, "loss"), accuracy=_optional(s, "accuracy"),
            val_loss=_optional(s, "val_loss"), test_accuracy=_optional(s, "test_accuracy"), digest=s.digest,
            error=s.error, elapsed_s=s.elapsed_s, model=s.model, dataset=s.dataset,
            minibatches_retried=s.minibatches_retried, minibatches_dropped=s.minibatches_dropped, owner=s.owner,
            participants=tuple(s.participants), participant_digests=dict(s.participant_digests),
        )  # fmt: skip


@dataclass(frozen=True)
class JobSummary(_Result):
    """One line of the peer's job list."""

    job_id: str
    name: str
    state: JobState
    model: str
    dataset: str
    round: int
    total_rounds: int
    owner: str
    submitted_unix: float
    model_kept: bool
    error: str

    @classmethod
    def from_proto(cls, j: control_pb2.JobSummary) -> JobSummary:
        return cls(job_id=j.job_id, name=j.name, state=JobState.from_proto(j.state), model=j.model,
                   dataset=j.dataset, round=j.round, total_rounds=j.total_rounds, owner=j.owner,
                   submitted_unix=j.submitted_unix, model_kept=j.model_kept, error=j.error)  # fmt: skip


@dataclass(frozen=True)
class RoundEvent(_Result):
    """One round done, or the job's end (state ended, message why). phase_s:
    seconds in each phase (propose, compute, aggregate, exchange, update,
    agree, evaluate); participants: the peers of the round's committed
    attempt, excluded those left out and why; sent_bytes and received_bytes:
    this peer's payload in the round's exchange."""

    job_id: str
    round: int
    total_rounds: int
    state: JobState
    loss: float | None
    accuracy: float | None
    val_loss: float | None
    phase_s: dict[str, float]
    minibatches: int
    retried: int
    dropped: int
    message: str
    participants: tuple[str, ...]
    excluded: dict[str, str]
    sent_bytes: int
    received_bytes: int
    digest: str
    participant_digests: dict[str, str]

    @classmethod
    def from_proto(cls, e: control_pb2.RoundEvent) -> RoundEvent:
        return cls(
            job_id=e.job_id, round=e.round, total_rounds=e.total_rounds, state=JobState.from_proto(e.state),
            loss=_optional(e, "loss"), accuracy=_optional(e, "accuracy"), val_loss=_optional(e, "val_loss"),
            phase_s=dict(e.phase_s), minibatches=e.minibatches, retried=e.retried, dropped=e.dropped,
            message=e.message, participants=tuple(e.participants), excluded=dict(e.excluded),
            sent_bytes=e.sent_bytes, received_bytes=e.received_bytes, digest=e.digest,
            participant_digests=dict(e.participant_digests),
        )  # fmt: skip
