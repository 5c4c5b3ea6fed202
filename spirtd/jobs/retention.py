"""What an ended job keeps, by the retention settings ([jobs] keep_jobs,
keep_models), and which of the jobs' store keys are still needed: pure
choices over the manager's job views; cleanup.py carries them out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from spirtd.jobs.config import JobsConfig
from spirtd.jobs.keys import JobKeys, job_of_key
from spirtd.jobs.views import JobView


def plan(jobs: Iterable[JobView], config: JobsConfig) -> tuple[list[JobView], list[JobView]]:
    """(the ended jobs whose records go, those whose kept models go): the
    newest keep_jobs ended jobs keep their records, the newest keep_models
    of them their last parameters."""
    ended = sorted((j for j in jobs if j.record.job_phase.terminal),
                   key=lambda j: (j.record.finished_unix, j.record.submitted_unix), reverse=True)  # fmt: skip
    drop_models = [j for j in ended[config.keep_models : config.keep_jobs] if j.record.model_kept]
    return ended[config.keep_jobs :], drop_models


def key_needed(key: str, jobs: Mapping[str, JobView], held: Callable[[str, int], bool]) -> bool:
    """Whether a job's store key stays: every key of a running or queued job
    (its runner's); of an ended one, the parameters a reader may read, and
    those of its last round while a reader holds them (held(job, round))."""
    job = jobs.get(job_of_key(key) or "")
    if job is None:
        return False
    if not job.record.job_phase.terminal:
        return True
    keys, version, last = JobKeys(job.record.id), job.readable_version, job.record.round
    kept = version is not None and key == keys.params(version)
    return kept or (key == keys.params(last) and held(job.record.id, last))
