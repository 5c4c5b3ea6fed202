"""One round's phases, as pure data: the order they come in, checked in one
place, and how long each took. No I/O; the runner feeds it the clock.

    COMPUTE -> AGGREGATE -> UPDATE -> [EVALUATE] -> COMMIT -> DONE          (one peer)
    PROPOSE -> COMPUTE -> AGGREGATE -> EXCHANGE -> UPDATE -> AGREE -> [EVALUATE] -> COMMIT -> DONE

With other peers (docs/rounds.md): PROPOSE, the participants agree on the
attempt; EXCHANGE, reduce-scatter and all-gather of the local aggregates
(the owners' global aggregation included); AGREE, the digests of the new
version are compared. An attempt that fails in EXCHANGE or AGREE goes back
to PROPOSE (and from there straight to EXCHANGE when the peer's local
aggregate is still the one to send).

COMPUTE: every minibatch's gradient from a worker invocation; AGGREGATE:
the round's gradients combined in the store by the job's rule; UPDATE: the
optimizer step on a copy of the parameters and optimizer state; EVALUATE
(every eval_every rounds and after the last): loss and accuracy on the
validation split; COMMIT: one store transaction makes the new version
current.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from spirtd.errors import JobTransitionError


class RoundPhase(enum.Enum):
    PROPOSE = "propose"
    COMPUTE = "compute"
    AGGREGATE = "aggregate"
    EXCHANGE = "exchange"
    UPDATE = "update"
    AGREE = "agree"
    EVALUATE = "evaluate"
    COMMIT = "commit"
    DONE = "done"


_NEXT: dict[RoundPhase | None, frozenset[RoundPhase]] = {
    None: frozenset({RoundPhase.COMPUTE, RoundPhase.PROPOSE}),
    RoundPhase.PROPOSE: frozenset({RoundPhase.COMPUTE, RoundPhase.EXCHANGE}),
    RoundPhase.COMPUTE: frozenset({RoundPhase.AGGREGATE}),
    RoundPhase.AGGREGATE: frozenset({RoundPhase.UPDATE, RoundPhase.EXCHANGE}),
    RoundPhase.EXCHANGE: frozenset({RoundPhase.UPDATE, RoundPhase.PROPOSE}),
    RoundPhase.UPDATE: frozenset({RoundPhase.EVALUATE, RoundPhase.COMMIT, RoundPhase.AGREE}),
    RoundPhase.AGREE: frozenset({RoundPhase.EVALUATE, RoundPhase.COMMIT, RoundPhase.PROPOSE}),
    RoundPhase.EVALUATE: frozenset({RoundPhase.COMMIT}),
    RoundPhase.COMMIT: frozenset({RoundPhase.DONE}),
}
# Phases whose time a round's report shows (commit is a single write).
TIMED = (RoundPhase.PROPOSE, RoundPhase.COMPUTE, RoundPhase.AGGREGATE, RoundPhase.EXCHANGE, RoundPhase.UPDATE,
         RoundPhase.AGREE, RoundPhase.EVALUATE)


def next_phase(current: RoundPhase | None, new: RoundPhase) -> RoundPhase:
    """The one place a round's phase changes are checked (None: not started)."""
    if new not in _NEXT.get(current, frozenset()):
        where = current.value if current is not None else "not started"
        raise JobTransitionError(f"a round in phase {where} cannot enter {new.value}")
    return new


@dataclass
class RoundClock:
    """Where a round is, and how long each phase it went through took (a
    phase gone through in several attempts: their sum)."""

    round: int
    phase: RoundPhase | None = None
    entered_at: float = 0.0
    seconds: dict[RoundPhase, float] = field(default_factory=dict)

    def enter(self, phase: RoundPhase, now: float) -> None:
        self.phase, previous = next_phase(self.phase, phase), self.phase
        if previous in TIMED:
            self.seconds[previous] = self.seconds.get(previous, 0.0) + now - self.entered_at
        self.entered_at = now

    def phase_s(self) -> dict[str, float]:
        """The timed phases' seconds by name, as round events show them."""
        return {phase.value: s for phase, s in self.seconds.items()}
