"""A job's life as pure data: its phases and their transitions, the round
schedule, and the early-stopping rule. No I/O, no clock."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from spirtd.errors import SpirtError


class JobPhase(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    STOPPED_EARLY = "stopped_early"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({JobPhase.SUCCEEDED, JobPhase.STOPPED_EARLY, JobPhase.FAILED, JobPhase.CANCELLED})
_NEXT = {
    JobPhase.QUEUED: frozenset({JobPhase.RUNNING, JobPhase.CANCELLED, JobPhase.FAILED}),
    JobPhase.RUNNING: frozenset({JobPhase.SUCCEEDED, JobPhase.STOPPED_EARLY, JobPhase.FAILED,
                                 JobPhase.CANCELLED}),  # fmt: skip
}


class JobTransitionError(SpirtError):
    """A job was asked to move to a phase it cannot reach from where it is."""


def advance(current: JobPhase, new: JobPhase) -> JobPhase:
    """The one place phase changes are checked."""
    if new not in _NEXT.get(current, frozenset()):
        raise JobTransitionError(f"a {current.value} job cannot become {new.value}")
    return new


def minibatches_of_round(round_index: int, per_round: int, batches_per_epoch: int) -> list[tuple[int, int]]:
    """(epoch, index within the epoch) of each minibatch of a round: rounds
    walk through the epochs' batches in order, across epoch boundaries."""
    first = round_index * per_round
    return [divmod(k, batches_per_epoch) for k in range(first, first + per_round)]


@dataclass(frozen=True)
class Patience:
    """Early stopping: the best validation loss so far, and how many
    evaluations in a row did not improve on it by more than min_delta."""

    best: float = math.inf
    bad_evaluations: int = 0

    def after(self, val_loss: float, min_delta: float) -> "Patience":
        if val_loss < self.best - min_delta:
            return Patience(val_loss, 0)
        return Patience(self.best, self.bad_evaluations + 1)

    def exhausted(self, patience: int) -> bool:
        return patience > 0 and self.bad_evaluations >= patience


def evaluation_due(round_done: int, total_rounds: int, eval_every: int) -> bool:
    """Evaluate after every eval_every-th round and after the last."""
    return round_done % eval_every == 0 or round_done == total_rounds
