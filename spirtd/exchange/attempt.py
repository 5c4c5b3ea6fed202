"""One agreed attempt's exchange at one peer, through its store:
reduce-scatter, then all-gather.

Shard i of the flat vector (shard_bounds) belongs to participant i (ranked).
Each participant sends shard i of its local aggregate to shard i's owner
(SCATTER). An owner keeps every part that checks out (streamed into the
store through a staging key: a refused stream leaves nothing), waits for
the parts of every live participant up to its deadline, and aggregates
those it has, if they make a quorum, with the job's rule inside the store.
It sends the result to every other participant (GATHER), whose chunks land
at their offsets in the attempt's global aggregate. When every shard is in,
every participant holds the same global aggregate. Nothing is ever filled
in for a missing shard: an owner that dies or a result that does not
arrive in time fails the attempt (AttemptFailed), and the next attempt,
with new owners, starts over.

This module runs the exchange; attempt_state.py holds what the attempt
knows, receiving.py and sending.py its two sides, payload.py the bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from spirtd.aggregation import Statistic, find_rule, validate_call, with_weights
from spirtd.clock import Clock, clock_timeout
from spirtd.errors import AggregationError, AttemptFailed
from spirtd.exchange.attempt_state import AttemptState
from spirtd.exchange.config import ExchangeConfig
from spirtd.exchange.formulas import FLOAT32_BYTES, quorum
from spirtd.exchange.messages import AttemptKey, Partial
from spirtd.exchange.payload import chunks, f32_offset, from_wire, to_wire
from spirtd.exchange.receiving import AttemptReceiver
from spirtd.exchange.sending import AttemptSender
from spirtd.exchange.streams import ContributionHeader, Refusal, Stage
from spirtd.exchange.transport import Chunks, ExchangeTransport
from spirtd.store.api import DType, TensorStore


@dataclass(frozen=True)
class LocalAggregate:
    """A participant's aggregate of its own minibatches, in its store."""

    key: str
    samples: float
    loss: float


@dataclass(frozen=True)
class GlobalAggregate:
    """The attempt's global aggregate, in the store at key; samples and loss
    of the contributors shard 0's owner aggregated; contributors of each
    shard; payload bytes this peer sent and received."""

    key: str
    samples: float
    loss: float
    contributors: tuple[tuple[str, ...], ...]
    sent_bytes: int
    received_bytes: int


class AttemptExchange:
    def __init__(self, me: str, job: str, key: AttemptKey, n_elements: int, store: TensorStore, scratch: str,
                 rule: str, options: Mapping[str, Any], quorum_fraction: float, clock: Clock,
                 config: ExchangeConfig) -> None:  # fmt: skip
        needs = find_rule(rule).needs if len(key.participants) > 1 else frozenset()
        self.state = AttemptState(me, job, key, n_elements, scratch, sorted(needs, key=lambda stat: stat.value),
                                  config.wire_dtype, clock.monotonic())  # fmt: skip
        self._store = store
        self._rule, self._options = rule, dict(options)
        self._quorum = quorum(len(key.participants), quorum_fraction)
        self._clock = clock
        self._config = config
        self._receiver = AttemptReceiver(self.state, store, clock)
        self._own_result = b""

    async def prepare(self) -> None:
        """The global aggregate's tensor, before any result may land in it."""
        s = self.state
        if len(s.owners) > 1:
            await self._store.create(s.global_key, DType.FLOAT, (s.n_elements,))
        s.ready.set()

    async def discard(self) -> None:
        await self._store.delete_matching(f"{self.state.scratch}*")

    # ---- news ----

    @property
    def arrivals_s(self) -> list[float]:
        """When each part arrived, in seconds since the attempt began."""
        return self.state.arrivals_s

    @property
    def refused(self) -> list[Refusal]:
        return self.state.refused

    def member_dead(self, peer: str) -> None:
        self.state.member_dead(peer)

    def fail(self, reason: str) -> None:
        self.state.fail(reason)

    async def receive(self, caller: str, header: ContributionHeader, chunks: Chunks) -> Refusal | None:
        return await self._receiver.receive(caller, header, chunks)

    def receive_partial(self, m: Partial) -> Refusal | None:
        """Another owner's partial statistic, or why it is refused."""
        return self._receiver.receive_partial(m)

    # ---- the exchange ----

    async def run(self, local: LocalAggregate, transport: ExchangeTransport, deadline_s: float) -> GlobalAggregate:
        """Sends this peer's parts, aggregates its shard, sends the result,
        and returns once every shard's result is in; AttemptFailed if not.
        Alone, its local aggregate is the global one."""
        s = self.state
        if len(s.owners) == 1:
            return GlobalAggregate(local.key, local.samples, local.loss, ((s.me,),), 0, 0)
        await s.ready.wait()
        s.raise_if_failed()
        sender = AttemptSender(s, transport, self._clock, self._config)
        work = asyncio.create_task(self._work(sender, local, deadline_s))
        watch = asyncio.create_task(s.changed.until(lambda: s.failure is not None))
        try:
            # A failure (a death, a refused result) ends the attempt at once,
            # whatever is still on its way (a push into a black hole).
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, watch):
                task.cancel()
            await asyncio.gather(work, watch, return_exceptions=True)
        s.raise_if_failed()
        work.result()
        first = s.gathered[0]
        return GlobalAggregate(s.global_key, first.samples, first.loss,
                               tuple(s.gathered[i].contributors for i in range(len(s.owners))),
                               s.sent_bytes, s.received_bytes)  # fmt: skip

    async def _work(self, sender: AttemptSender, local: LocalAggregate, deadline_s: float) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for shard, owner in enumerate(self.state.owners):
                    if owner != self.state.me:
                        group.create_task(self._send_part(sender, local, shard, owner))
                group.create_task(self._own_shard(sender, local, deadline_s))
                group.create_task(self._gather())
        except* AttemptFailed as failed:
            raise failed.exceptions[0] from None

    async def _wire_shard(self, local: LocalAggregate, shard: int) -> bytes:
        """Shard of the local aggregate, as it travels."""
        start, stop = self.state.bounds[shard]
        data = await self._store.read_chunk(local.key, start * FLOAT32_BYTES, (stop - start) * FLOAT32_BYTES)
        return to_wire(data, self._config.wire_dtype)

    async def _send_part(self, sender: AttemptSender, local: LocalAggregate, shard: int, owner: str) -> None:
        data = await self._wire_shard(local, shard)
        await sender.send_part(owner, self.state.header(Stage.SCATTER, shard, data, local.samples, local.loss, ()),
                               data)  # fmt: skip

    async def _own_shard(self, sender: AttemptSender, local: LocalAggregate, deadline_s: float) -> None:
        s = self.state
        start, stop = s.bounds[s.mine]
        mine = await self._wire_shard(local, s.mine)  # this peer's part counts as the others' do
        async with self._store.writer(s.part_key(s.me), DType.FLOAT, (stop - start,)) as w:
            await w.write(0, from_wire(mine, self._config.wire_dtype))
        # Its header never travels: no SHA-256 (nothing would check it).
        s.parts[s.me] = s.header(Stage.SCATTER, s.mine, mine, local.samples, local.loss, (), digest=False)
        waiting = lambda: s.failure is not None or set(s.parts) | s.dead >= set(s.key.participants)  # noqa: E731
        try:
            async with clock_timeout(self._clock, max(0.0, deadline_s - (self._clock.monotonic() - s.started_at))):
                await s.changed.until(waiting)
        except TimeoutError:
            pass  # the deadline: go on with the parts that came
        s.raise_if_failed()
        header, self._own_result = await self._aggregate_shard(sender)
        s.gathered[s.mine] = header
        s.changed.notify()
        others = [p for p in s.owners if p != s.me]
        await asyncio.gather(*(sender.send_result(p, header, self._own_result) for p in others))

    async def _aggregate_shard(self, sender: AttemptSender) -> tuple[ContributionHeader, bytes]:
        s = self.state
        s.aggregated = True
        senders = sorted(s.parts)
        if s.needs and len(senders) < len(s.key.participants):
            missing = sorted(set(s.key.participants) - set(senders))
            s.fail(f"rule {self._rule} compares whole contributions, so every shard needs every participant's "
                   f"part; shard {s.mine} has none from {', '.join(missing)}")  # fmt: skip
            s.raise_if_failed()
        if len(senders) < self._quorum:
            missing = sorted(set(s.key.participants) - set(senders))
            s.fail(f"shard {s.mine} has parts from {len(senders)} of {len(s.key.participants)} participants "
                   f"(none from {', '.join(missing)}); a quorum is {self._quorum}")  # fmt: skip
            s.raise_if_failed()
        weights = [s.parts[p].samples for p in senders]
        options = with_weights(self._rule, self._options, weights)
        keys = [s.part_key(p) for p in senders]
        try:
            validate_call(self._rule, len(senders), options)
            given = await self._whole_statistics(sender, keys) if s.needs else None
            await self._store.aggregate(s.result_key, self._rule, keys, given=given, **options)
        except AggregationError as exc:
            s.fail(f"shard {s.mine}: {exc}")
            s.raise_if_failed()
        start, stop = s.bounds[s.mine]
        data = await self._store.read_chunk(s.result_key, 0, (stop - start) * FLOAT32_BYTES)
        data = to_wire(data, self._config.wire_dtype)
        samples = sum(weights)
        loss = sum(s.parts[p].loss * s.parts[p].samples for p in senders) / samples if samples else 0.0
        return s.header(Stage.GATHER, s.mine, data, samples, loss, tuple(senders)), data

    async def _whole_statistics(self, sender: AttemptSender, keys: list[str]) -> dict[Statistic, np.ndarray]:
        """Each statistic the rule needs, of the whole contributions: this
        owner's partial one, sent to every participant, plus every other
        owner's, summed in shard order (the same sum everywhere)."""
        s = self.state
        n = len(s.owners)
        for stat in s.needs:
            mine = np.ascontiguousarray(await self._store.statistic(stat, keys), dtype="<f8")
            s.partials[(stat.value, s.mine)] = mine
            message = Partial(s.me, s.job, s.key, s.mine, stat.value, mine.tobytes())
            await asyncio.gather(*(sender.say(p, message) for p in s.owners if p != s.me))
        everything = lambda: s.failure is not None or len(s.partials) == n * len(s.needs)  # noqa: E731
        try:
            async with clock_timeout(self._clock, self._config.gather_timeout_s):
                await s.changed.until(everything)
        except TimeoutError:
            s.fail(f"the other owners' partial statistics did not arrive within {self._config.gather_timeout_s:g} s")
        s.raise_if_failed()
        summed = {}
        for stat in s.needs:
            total = np.zeros((n, n))
            for shard in range(n):
                total = total + s.partials[(stat.value, shard)]
            summed[stat] = total
        return summed

    async def _gather(self) -> None:
        s = self.state
        everything = lambda: s.failure is not None or len(s.gathered) == len(s.owners)  # noqa: E731
        try:
            async with clock_timeout(self._clock, self._config.gather_timeout_s):
                await s.changed.until(everything)
        except TimeoutError:
            missing = [i for i in range(len(s.owners)) if i not in s.gathered]
            s.fail(f"the aggregates of shards {missing} did not arrive within gather_timeout_s = "
                   f"{self._config.gather_timeout_s:g} s")  # fmt: skip
        s.raise_if_failed()
        # The result as the others received it, so that every peer holds the same bits.
        start = s.bounds[s.mine][0] * FLOAT32_BYTES
        dtype = self._config.wire_dtype
        async for offset, data in chunks(self._own_result, self._config.chunk_bytes):
            await self._store.write_chunk(s.global_key, start + f32_offset(offset, dtype), from_wire(data, dtype))
