"""The jobs this peer knows, by id, and the one place a job's phase changes.

A change of phase is checked (jobstate.advance) and written to the job's
record in DATA_DIR/jobs/ (records.py, fsynced); a job's end also copies its
last committed round into the record and is published to its watchers as
an event, so that the record, the events and a status agree.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path

from spirtd.clock import Clock
from spirtd.errors import JobNotFound
from spirtd.jobs import records
from spirtd.jobs import spec as specs
from spirtd.jobs.jobstate import JobPhase, RoundReport, advance
from spirtd.jobs.records import JobRecord
from spirtd.jobs.views import JobView

_log = logging.getLogger("spirtd.jobs")
NEVER_STARTED = "cancelled before it started"


class JobBook:
    def __init__(self, folder: Path, clock: Clock, event_history: int) -> None:
        self.folder = folder
        self.views: dict[str, JobView] = {}
        self._clock = clock
        self._event_history = event_history

    def add(self, record: JobRecord, spec: specs.JobSpec | None) -> JobView:
        job = JobView(record, spec, events=deque(maxlen=self._event_history))
        self.views[record.id] = job
        return job

    def view(self, job_id: str) -> JobView:
        try:
            return self.views[job_id]
        except KeyError:
            raise JobNotFound(f"no job {job_id[:80]!r} on this peer") from None

    def jobs(self) -> list[JobView]:
        """Every job, oldest first."""
        return sorted(self.views.values(), key=lambda job: (job.record.submitted_unix, job.record.id))

    def elapsed_s(self, job: JobView) -> float:
        if job.record.job_phase.terminal or not job.record.submitted_unix:
            return job.record.elapsed_s
        return self._clock.wall() - job.record.submitted_unix

    # ---- transitions ----

    def set_phase(self, job: JobView, phase: JobPhase) -> None:
        job.record.phase = advance(job.record.job_phase, phase).value
        records.write_record(self.folder, job.record)

    def finish(self, job: JobView, phase: JobPhase, error: str, elapsed_s: float = 0.0) -> None:
        p, record = job.progress, job.record
        record.error, record.elapsed_s, record.finished_unix = error, elapsed_s, self._clock.wall()
        record.round, record.accuracy, record.val_loss = p.round, p.accuracy, p.val_loss
        record.retried, record.dropped = p.retried, p.dropped
        record.loss = p.loss if p.loss == p.loss else None
        self.set_phase(job, phase)
        words = {JobPhase.SUCCEEDED: "finished", JobPhase.STOPPED_EARLY: "stopped early (no improvement)",
                 JobPhase.FAILED: f"failed: {error}", JobPhase.CANCELLED: "was cancelled"}  # fmt: skip
        _log.info("job %s %s after %d rounds", record.id, words[phase], p.round,
                  extra={"job": record.id, "phase": phase.value})  # fmt: skip
        self.note(job, error or words[phase])

    def finish_cancelled(self, job: JobView, elapsed_s: float = 0.0) -> None:
        """Records a cancel, unless the job has ended. One that never ran
        (still QUEUED) keeps no model; one resumed after a restart keeps the
        model of the rounds it ran before."""
        if job.record.job_phase.terminal:
            return
        never_ran = job.record.job_phase is JobPhase.QUEUED
        job.record.model_kept = job.record.model_kept and not never_ran
        self.finish(job, JobPhase.CANCELLED, NEVER_STARTED if never_ran else "cancelled", elapsed_s)

    # ---- events ----

    def note(self, job: JobView, message: str) -> None:
        """An event that is no round: something happened to the job."""
        p = job.progress
        self.publish(job, RoundReport(round=p.round, total_rounds=job.total_rounds, loss=p.loss,
                                      phase=job.record.job_phase, accuracy=p.accuracy, val_loss=p.val_loss,
                                      message=message))  # fmt: skip

    def publish(self, job: JobView, report: RoundReport) -> None:
        job.events.append(report)
        for queue in job.watchers:
            queue.put_nowait(report)
