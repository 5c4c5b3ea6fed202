"""What the peers of a job say to agree on a round, and the key of one
attempt of a round. Frozen records; the transport encodes them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class AttemptKey:
    """One attempt of round r: its number and its ranked participants. Every
    message of the attempt carries it; work of different keys never mixes."""

    round: int
    attempt: int
    participants: tuple[str, ...]

    @property
    def digest(self) -> str:
        """A short hash of the key, for headers and logs."""
        text = f"{self.round}:{self.attempt}:{','.join(self.participants)}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Propose:
    """sender, at round `key.round` with state digest `state`, proposes to
    run attempt `key` with these participants."""

    sender: str
    job: str
    key: AttemptKey
    state: str


@dataclass(frozen=True)
class Report:
    """sender finished attempt `key` and holds version round+1 with digest
    `state`. again: said once more because no majority was heard in time;
    peers that know more answer it with the reports they hold."""

    sender: str
    job: str
    key: AttemptKey
    state: str
    again: bool = False


@dataclass(frozen=True)
class Partial:
    """sender, the owner of shard `shard` in attempt `key`, computed the
    partial whole-vector statistic `statistic` (spirtd.aggregation.Statistic)
    of its shard's parts: n x n float64, little-endian, row-major. Summed
    over every shard, it is the statistic of the whole contributions."""

    sender: str
    job: str
    key: AttemptKey
    shard: int
    statistic: str
    data: bytes


Message = Propose | Report | Partial
