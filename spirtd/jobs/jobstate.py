"""A job's life as pure data: its phases and their transitions, the round
schedule, the early-stopping rule, its progress (as the store keeps it) and
its round events. No I/O, no clock."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field

from spirtd.errors import JobTransitionError


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


@dataclass
class Progress:
    """A job's last committed round, as its state hash in the store holds it."""

    round: int = 0
    loss: float = math.nan
    accuracy: float | None = None
    val_loss: float | None = None
    patience: Patience = field(default_factory=Patience)
    retried: int = 0
    dropped: int = 0
    # Minibatches of the job used so far (None: round x minibatches_per_round,
    # as before peers), the participants of the round, the version's digest.
    position: int | None = None
    participants: tuple[str, ...] = ()
    state: str = ""
    proof: str = ""  # what state is the SHA-256 of (runner.state_proof)
    digests: dict[str, str] = field(default_factory=dict)  # participant -> its digest of the version, as heard

    def at(self, per_round: int) -> int:
        """The global minibatch position the next round starts at."""
        return self.position if self.position is not None else self.round * per_round

    def to_hash(self) -> dict[str, str]:
        out = {"round": str(self.round), "loss": repr(self.loss), "best_val_loss": repr(self.patience.best),
               "bad_evaluations": str(self.patience.bad_evaluations), "retried": str(self.retried),
               "dropped": str(self.dropped), "participants": ",".join(self.participants),
               "state": self.state, "proof": self.proof, "digests": json.dumps(self.digests, sort_keys=True)}  # fmt: skip
        if self.position is not None:
            out["position"] = str(self.position)
        if self.accuracy is not None:
            out["accuracy"] = repr(self.accuracy)
        if self.val_loss is not None:
            out["val_loss"] = repr(self.val_loss)
        return out

    @classmethod
    def from_hash(cls, get: dict[str, str]) -> "Progress":
        """The inverse of to_hash; ValueError for a damaged hash."""
        opt = lambda k: float(get[k]) if k in get else None  # noqa: E731
        return cls(
            round=int(get.get("round", 0)),
            loss=float(get.get("loss", "nan")),
            accuracy=opt("accuracy"),
            val_loss=opt("val_loss"),
            patience=Patience(float(get.get("best_val_loss", "inf")), int(get.get("bad_evaluations", 0))),
            retried=int(get.get("retried", 0)),
            dropped=int(get.get("dropped", 0)),
            position=int(get["position"]) if "position" in get else None,
            participants=tuple(p for p in get.get("participants", "").split(",") if p),
            state=get.get("state", ""),
            proof=get.get("proof", ""),
            digests=_digests(get.get("digests", "{}")),
        )


def _digests(text: str) -> dict[str, str]:
    """ValueError unless text is a JSON object of strings."""
    found = json.loads(text)
    if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
        raise ValueError(f"digests is not an object of strings: {text[:60]!r}")
    return found


@dataclass
class RoundReport:
    """One event of a job: a round done (with its phases' seconds and its
    minibatches) or, with a message, something that happened to the job."""

    round: int
    total_rounds: int
    loss: float
    phase: JobPhase
    accuracy: float | None = None
    val_loss: float | None = None
    phase_s: dict[str, float] = field(default_factory=dict)
    minibatches: int = 0
    retried: int = 0
    dropped: int = 0
    message: str = ""
    participants: tuple[str, ...] = ()
    excluded: dict[str, str] = field(default_factory=dict)  # peer -> why it is not in the round
    sent_bytes: int = 0
    received_bytes: int = 0
    digest: str = ""
    digests: dict[str, str] = field(default_factory=dict)  # participant -> its digest, as heard
