"""What a job's rounds need of the other peers (the runner's side of the
exchange; spirtd.exchange.driver.ExchangeDriver is the cluster's), and the
one-peer case, which needs nobody.

    key = await peers.agree(job, r, state, previous, n_elements, scratch, settings, on_note)
    glob = await peers.exchange(job, key, local)          # AttemptFailed: agree again
    digests = await peers.commit(job, key, new_state)     # ResyncNeeded: fetch the majority's version
    fields = await peers.fetch(job, source, round, land)  # that version's tensors, landed in the store
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Awaitable, Callable, Protocol

from spirtd.errors import RoundFailed
from spirtd.exchange.attempt import GlobalAggregate, LocalAggregate
from spirtd.exchange.config import RoundSettings
from spirtd.exchange.messages import AttemptKey

class RoundPeers(Protocol):
    me: str
    solo: bool  # no other peer can ever take part (no exchange phases)

    async def agree(self, job: str, round_number: int, state: str, previous: Collection[str], n_elements: int,
                    scratch: str, settings: RoundSettings, on_note: Callable[[str], None], *,
                    fresh: bool = False) -> AttemptKey: ...  # fmt: skip

    async def exchange(self, job: str, key: AttemptKey, local: LocalAggregate) -> GlobalAggregate: ...

    async def commit(self, job: str, key: AttemptKey, state: str) -> dict[str, str]:
        """Each participant's digest of the new version, as heard."""

    async def fetch(self, job: str, source: str, round_number: int,
                    land: Callable[[str], Awaitable[str]]) -> dict[str, str]: ...  # fmt: skip

    def end(self, job: str) -> None: ...


class SoloPeers:
    """A peer on its own: every round has one participant, its local
    aggregate is the global one, its digest the majority's."""

    solo = True

    def __init__(self, me: str = "self") -> None:
        self.me = me

    async def agree(self, job, round_number, state, previous, n_elements, scratch, settings, on_note, *,
                    fresh=False) -> AttemptKey:  # fmt: skip
        return AttemptKey(round_number, 0, (self.me,))

    async def exchange(self, job: str, key: AttemptKey, local: LocalAggregate) -> GlobalAggregate:
        return GlobalAggregate(local.key, local.samples, local.loss, ((self.me,),), 0, 0)

    async def commit(self, job: str, key: AttemptKey, state: str) -> dict[str, str]:
        return {self.me: state}

    async def fetch(self, job, source, round_number, land) -> dict[str, str]:
        raise RoundFailed("a peer on its own has nobody to fetch a version from")  # never asked: it never resyncs

    def end(self, job: str) -> None:
        pass
