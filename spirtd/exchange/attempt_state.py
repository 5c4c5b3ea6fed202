"""What one attempt's exchange at one peer knows: who owns which shard,
where the attempt's tensors are in the store, what has arrived (parts,
results, partial statistics), who died, and why the attempt failed if it
did. No I/O: the receive side (receiving.py), the send side (sending.py)
and the exchange itself (attempt.py) all work on it, and wait on its
events for a change.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from spirtd.aggregation import Statistic
from spirtd.errors import AttemptFailed
from spirtd.exchange.formulas import shard_bounds
from spirtd.exchange.messages import AttemptKey
from spirtd.exchange.streams import ContributionCheck, ContributionHeader, Refusal, RefusalKind, Stage


@dataclass
class _Waiter:
    """Wakes whoever waits for a change of the attempt."""

    event: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self.event.set()
        self.event = asyncio.Event()

    async def until(self, ready) -> None:
        while not ready():
            await self.event.wait()


class AttemptState:
    """needs: the whole-vector statistics the rule needs (Krum's
    distances), of which each owner computes a partial one."""

    def __init__(self, me: str, job: str, key: AttemptKey, n_elements: int, scratch: str,
                 needs: Sequence[Statistic], wire_dtype: str, started_at: float) -> None:  # fmt: skip
        self.me, self.job, self.key = me, job, key
        self.n_elements = n_elements
        self.scratch = f"{scratch}a{key.attempt}:"
        self.needs = needs
        self.wire_dtype = wire_dtype
        self.bounds = tuple(shard_bounds(n_elements, len(key.participants)))
        self.owners = key.participants
        self.mine = key.participants.index(me)
        self.check = ContributionCheck(me, job, key, owned={self.mine: self.bounds[self.mine]}, owners=self.owners,
                                       bounds=self.bounds)  # fmt: skip
        self.parts: dict[str, ContributionHeader] = {}
        self.gathered: dict[int, ContributionHeader] = {}
        # Each owner's partial statistic, by (statistic, shard), summed in shard order.
        self.partials: dict[tuple[str, int], np.ndarray] = {}
        self.arrivals_s: list[float] = []
        self.refused: list[Refusal] = []
        self.dead: set[str] = set()
        self.failure: str | None = None
        self.started_at = started_at
        self.sent_bytes = self.received_bytes = 0
        self.changed = _Waiter()
        self.ready = asyncio.Event()  # the global aggregate's tensor is made, or the attempt failed
        self.aggregated = False  # parts arriving from then on are late

    @property
    def global_key(self) -> str:
        return f"{self.scratch}global"

    def part_key(self, sender: str) -> str:
        return f"{self.scratch}part:{sender}"

    @property
    def result_key(self) -> str:
        return f"{self.scratch}result"

    def member_dead(self, peer: str) -> None:
        if peer not in self.key.participants or peer == self.me:
            return
        self.dead.add(peer)
        shard = self.owners.index(peer)
        if shard not in self.gathered:
            self.fail(f"{peer}, the owner of shard {shard}, died before its aggregate arrived")
        self.changed.notify()

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self.ready.set()  # whoever waits for the aggregate's tensor learns of the failure instead
        self.changed.notify()

    def given_up(self) -> Refusal | None:
        if self.failure is None:
            return None
        return Refusal(RefusalKind.WRONG_ATTEMPT, f"this attempt was given up: {self.failure}")

    def raise_if_failed(self) -> None:
        if self.failure is not None:
            raise AttemptFailed(f"round {self.key.round} attempt {self.key.attempt}: {self.failure}")

    def header(self, stage: Stage, shard: int, data: bytes, samples: float, loss: float,
               contributors: tuple[str, ...], *, digest: bool = True) -> ContributionHeader:  # fmt: skip
        start, stop = self.bounds[shard]
        return ContributionHeader(job=self.job, key=self.key, sender=self.me, shard=shard, start=start,
                                  n_elements=stop - start, dtype=self.wire_dtype, nbytes=len(data),
                                  sha256=hashlib.sha256(data).hexdigest() if digest else "", stage=stage,
                                  samples=samples, loss=loss, contributors=contributors)  # fmt: skip
