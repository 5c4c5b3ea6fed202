"""What the job manager keeps of each job and hands out: a job's view (its
record, spec, progress, events and watchers), a status snapshot, the
running job and why it was stopped, and what the manager needs from the
training computation."""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from spirtd.jobs import spec as specs
from spirtd.jobs.jobstate import Progress, RoundReport
from spirtd.jobs.records import JobRecord
from spirtd.ml.tasks import DataShape


@dataclass
class JobView:
    """A job as this peer knows it: its record, its spec (None for a
    quarantined record), the last round committed in the store, the newest
    round events, and who watches them."""

    record: JobRecord
    spec: specs.JobSpec | None
    progress: Progress = field(default_factory=Progress)
    events: deque[RoundReport] = field(default_factory=deque)
    watchers: list[asyncio.Queue] = field(default_factory=list)
    quarantined: Path | None = None

    @property
    def total_rounds(self) -> int:
        return self.record.total_rounds

    @property
    def readable_version(self) -> int | None:
        """The round whose parameters a reader may read now, or None."""
        if self.record.job_phase.terminal:
            return self.record.round if self.record.model_kept and self.spec is not None else None
        return self.progress.round


@dataclass(frozen=True)
class JobSnapshot:
    """What a status call shows: every number from one committed round."""

    view: JobView
    round: int
    loss: float | None
    accuracy: float | None
    val_loss: float | None
    retried: int
    dropped: int
    digest: str
    elapsed_s: float


@dataclass(frozen=True)
class Training:
    """What the manager needs from the training computation (the daemon
    builds it from spirtd.ml and the worker pool):
    describe(spec) checks a spec against its model and data and returns
    the data's shape and the model's size (raises ConfigError);
    initial_parameters(spec) builds version 0; invoker(spec) opens the
    worker pool for a job (an async context manager yielding an Invoker);
    idle() lets go of workers kept warm between jobs (no job is waiting;
    also called when the manager closes)."""

    describe: Callable[[specs.JobSpec], DataShape]
    initial_parameters: Callable[[specs.JobSpec], Any]
    invoker: Callable[[specs.JobSpec], Any]
    idle: Callable[[], Awaitable[None]] = field(default=lambda: _nothing())


async def _nothing() -> None:
    return None


class JobStop(enum.Enum):
    """Why the running job's task was cancelled."""

    CANCEL = "cancel"  # a client cancelled the job: it ends CANCELLED
    SHUTDOWN = "shutdown"  # the peer is stopping: the job stays RUNNING and resumes after the restart


@dataclass
class RunningJob:
    job_id: str
    task: asyncio.Task
    stopped_by: JobStop | None = None

    def stop(self, why: JobStop) -> None:
        if self.stopped_by is None:
            self.stopped_by = why
        self.task.cancel()
