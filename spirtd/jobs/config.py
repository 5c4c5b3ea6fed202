"""Settings of the peer's jobs: how much of finished jobs is kept."""

from __future__ import annotations

from dataclasses import dataclass

from spirtd.errors import ConfigError

MAX_KEEP = 10**6


@dataclass(frozen=True)
class JobsConfig:
    """What ended jobs keep, and how long a job waits for its store (the
    [jobs] table of the daemon's settings; see docs/settings.md)."""

    keep_models: int = 10
    """Ended jobs (succeeded, stopped early, failed, cancelled) whose last
    parameters stay in the store, newest first; an older one's are deleted
    (its record stays, saying so). Each kept model takes its size in the
    store's memory."""

    keep_jobs: int = 1000
    """Ended jobs whose records are kept, newest first; older records are
    deleted with whatever the job still had."""

    event_history: int = 1000
    """Round events kept per job, the newest, for a watcher that comes late."""

    store_restart_wait_s: float = 120.0
    """How long a running job waits for its store to come back after the
    store crashed, before the job fails."""

    warm_idle_s: float = 60.0
    """A job's warm workers stay up this long after it ends, for the next
    job with the same [workers] and [limits] to start at once; then they
    are stopped (they hold memory: a process with torch each)."""

    def __post_init__(self) -> None:
        for name, minimum in (("keep_models", 0), ("keep_jobs", 1), ("event_history", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_KEEP:
                raise ConfigError(f"jobs {name} must be an integer from {minimum} to {MAX_KEEP}, not {value!r}")
        for name in ("store_restart_wait_s", "warm_idle_s"):
            wait = getattr(self, name)
            if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 < wait < float("inf"):
                raise ConfigError(f"jobs {name} must be a positive number of seconds, not {wait!r}")
        if self.keep_models > self.keep_jobs:
            raise ConfigError(f"jobs keep_models ({self.keep_models}) must not exceed keep_jobs ({self.keep_jobs})")
