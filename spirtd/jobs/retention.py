"""What an ended job keeps, by the retention settings ([jobs] keep_jobs,
keep_models): pure choices over the manager's job views; the manager
carries them out."""

from __future__ import annotations

from collections.abc import Iterable

from spirtd.jobs.config import JobsConfig
from spirtd.jobs.views import JobView


def plan(jobs: Iterable[JobView], config: JobsConfig) -> tuple[list[JobView], list[JobView]]:
    """(the ended jobs whose records go, those whose kept models go): the
    newest keep_jobs ended jobs keep their records, the newest keep_models
    of them their last parameters."""
    ended = sorted((j for j in jobs if j.record.job_phase.terminal),
                   key=lambda j: (j.record.finished_unix, j.record.submitted_unix), reverse=True)  # fmt: skip
    drop_models = [j for j in ended[config.keep_models : config.keep_jobs] if j.record.model_kept]
    return ended[config.keep_jobs :], drop_models
