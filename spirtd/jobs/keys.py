"""Where a job keeps its things in the store. Parameters and optimizer state
are versioned by round, so a round that dies half-way is simply done again
from the previous version (see runner.py)."""

from __future__ import annotations

from dataclasses import dataclass

# Optimizer state tensors a version may have: SGD's momentum buffer, Adam's moments and step.
SGD_STATE = ("buf",)
ADAM_STATE = ("exp_avg", "exp_avg_sq", "step")
OPTIMIZER_STATE = SGD_STATE + ADAM_STATE
# The tensors of a version by name, in JobKeys.version's order (as peers fetch them).
VERSION_TENSORS = ("params", *OPTIMIZER_STATE)


JOB_KEY_PREFIX = "job:"


def job_of_key(key: str) -> str | None:
    """The job id a store key belongs to, or None if it is no job's."""
    if not key.startswith(JOB_KEY_PREFIX):
        return None
    job_id, sep, _ = key[len(JOB_KEY_PREFIX) :].partition(":")
    return job_id if sep and job_id else None


@dataclass(frozen=True)
class JobKeys:
    job_id: str

    @staticmethod
    def all_jobs() -> str:
        """The pattern of every job's keys."""
        return f"{JOB_KEY_PREFIX}*"

    @property
    def prefix(self) -> str:
        return f"{JOB_KEY_PREFIX}{self.job_id}"

    @property
    def state(self) -> str:
        return f"{self.prefix}:state"

    def params(self, version: int) -> str:
        return f"{self.prefix}:params:{version}"

    def optimizer(self, name: str, version: int) -> str:
        return f"{self.prefix}:opt:{name}:{version}"

    def version(self, version: int) -> tuple[str, ...]:
        """Every key of one version: the parameters and each optimizer state."""
        return (self.params(version), *(self.optimizer(name, version) for name in OPTIMIZER_STATE))

    def gradient(self, round_index: int, minibatch: int) -> str:
        return f"{self.prefix}:round:{round_index}:grad:{minibatch}"

    def aggregate(self, round_index: int) -> str:
        return f"{self.prefix}:round:{round_index}:agg"

    def scratch(self, round_index: int) -> str:
        """The prefix of the exchange's keys of a round (gone with the round)."""
        return f"{self.prefix}:round:{round_index}:x"

    def round_pattern(self, round_index: int) -> str:
        return f"{self.prefix}:round:{round_index}:*"

    def everything(self) -> str:
        return f"{self.prefix}:*"
