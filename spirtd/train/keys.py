"""Where a job keeps its things in the store. Parameters and optimizer state
are versioned by round, so a round that dies half-way is simply done again
from the previous version (see runner.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobKeys:
    job_id: str

    @property
    def prefix(self) -> str:
        return f"job:{self.job_id}"

    @property
    def state(self) -> str:
        return f"{self.prefix}:state"

    def params(self, version: int) -> str:
        return f"{self.prefix}:params:{version}"

    def optimizer(self, name: str, version: int) -> str:
        return f"{self.prefix}:opt:{name}:{version}"

    def gradient(self, round_index: int, minibatch: int) -> str:
        return f"{self.prefix}:round:{round_index}:grad:{minibatch}"

    def aggregate(self, round_index: int) -> str:
        return f"{self.prefix}:round:{round_index}:agg"

    def round_pattern(self, round_index: int) -> str:
        return f"{self.prefix}:round:{round_index}:*"

    def everything(self) -> str:
        return f"{self.prefix}:*"
