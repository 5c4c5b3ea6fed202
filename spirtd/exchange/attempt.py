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
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

import numpy as np
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spirtd.aggregation import Statistic, find_rule, validate_call, with_weights
from spirtd.clock import Clock, clock_timeout
from spirtd.errors import AggregationError, AttemptFailed, ContributionRefused, SpirtError, TransportError
from spirtd.exchange.config import ExchangeConfig
from spirtd.exchange.formulas import FLOAT32_BYTES, quorum, shard_bounds
from spirtd.exchange.messages import AttemptKey, Partial
from spirtd.exchange.streams import (
    WIRE_DTYPES,
    ChunkCheck,
    ContributionCheck,
    ContributionHeader,
    Refusal,
    RefusalKind,
    Stage,
)
from spirtd.exchange.transport import Chunks, ExchangeTransport
from spirtd.store.api import DType, TensorStore

_log = logging.getLogger("spirtd.exchange")


def to_wire(data: bytes, dtype: str) -> bytes:
    """float32 bytes as they travel (HALF: rounded to float16)."""
    return data if dtype == "FLOAT" else np.frombuffer(data, "<f4").astype("<f2").tobytes()


def from_wire(data: bytes, dtype: str) -> bytes:
    """Bytes as they travelled, as the float32 the store aggregates in."""
    return data if dtype == "FLOAT" else np.frombuffer(data, "<f2").astype("<f4").tobytes()


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


class AttemptExchange:
    def __init__(self, me: str, job: str, key: AttemptKey, n_elements: int, store: TensorStore, scratch: str,
                 rule: str, options: Mapping[str, Any], quorum_fraction: float, clock: Clock,
                 config: ExchangeConfig) -> None:  # fmt: skip
        self.me, self.job, self.key = me, job, key
        self.n_elements = n_elements
        self._store = store
        self._scratch = f"{scratch}a{key.attempt}:"
        self._rule, self._options = rule, dict(options)
        self._quorum = quorum(len(key.participants), quorum_fraction)
        self._clock = clock
        self._config = config
        self.bounds = tuple(shard_bounds(n_elements, len(key.participants)))
        self.owners = key.participants
        self.mine = key.participants.index(me)
        self.check = ContributionCheck(me, job, key, owned={self.mine: self.bounds[self.mine]}, owners=self.owners,
                                       bounds=self.bounds)  # fmt: skip
        self.parts: dict[str, ContributionHeader] = {}
        self.gathered: dict[int, ContributionHeader] = {}
        self.arrivals_s: list[float] = []
        self.refused: list[Refusal] = []
        self.dead: set[str] = set()
        self.failure: str | None = None
        self.started_at = clock.monotonic()
        self.sent_bytes = self.received_bytes = 0
        self._changed = _Waiter()
        self._ready = asyncio.Event()
        self._aggregated = False  # parts arriving from then on are late
        self._own_result = b""
        # Whole-vector statistics the rule needs (Krum's distances): each
        # owner's partial one, by (statistic, shard), summed in shard order.
        needs = find_rule(rule).needs if len(key.participants) > 1 else frozenset()
        self._needs = sorted(needs, key=lambda stat: stat.value)
        self.partials: dict[tuple[str, int], np.ndarray] = {}

    @property
    def global_key(self) -> str:
        return f"{self._scratch}global"

    def part_key(self, sender: str) -> str:
        return f"{self._scratch}part:{sender}"

    @property
    def result_key(self) -> str:
        return f"{self._scratch}result"

    async def prepare(self) -> None:
        """The global aggregate's tensor, before any result may land in it."""
        if len(self.owners) > 1:
            await self._store.create(self.global_key, DType.FLOAT, (self.n_elements,))
        self._ready.set()

    async def discard(self) -> None:
        await self._store.delete_matching(f"{self._scratch}*")

    # ---- news ----

    def member_dead(self, peer: str) -> None:
        if peer not in self.key.participants or peer == self.me:
            return
        self.dead.add(peer)
        shard = self.owners.index(peer)
        if shard not in self.gathered:
            self.fail(f"{peer}, the owner of shard {shard}, died before its aggregate arrived")
        self._changed.notify()

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self._ready.set()  # whoever waits for the aggregate's tensor learns of the failure instead
        self._changed.notify()

    # ---- receiving ----

    async def receive(self, caller: str, header: ContributionHeader, chunks: Chunks) -> Refusal | None:
        refusal = self.check.header(header, caller)
        if refusal is None:
            refusal = self._given_up()
        if refusal is None and header.stage is Stage.SCATTER and self._aggregated:
            refusal = Refusal(RefusalKind.LATE, f"shard {header.shard} was aggregated already; the part came late")
        if refusal is None:
            await self._ready.wait()
            refusal = self._given_up() or await self._land(header, chunks)
        if refusal is not None:
            self.refused.append(refusal)
            return refusal
        self.check.accepted(header)
        self.received_bytes += header.nbytes
        if header.stage is Stage.SCATTER:
            self.parts[header.sender] = header
            self.arrivals_s.append(self._clock.monotonic() - self.started_at)
        else:
            self.gathered[header.shard] = header
        self._changed.notify()
        return None

    def _given_up(self) -> Refusal | None:
        if self.failure is None:
            return None
        return Refusal(RefusalKind.WRONG_ATTEMPT, f"this attempt was given up: {self.failure}")

    async def _land(self, header: ContributionHeader, chunks: Chunks) -> Refusal | None:
        check = ChunkCheck(header)
        if header.stage is Stage.SCATTER:
            try:
                async with self._store.writer(self.part_key(header.sender), DType.FLOAT, (header.n_elements,)) as w:
                    async for offset, data in chunks:
                        refusal = check.chunk(offset, data)
                        if refusal is not None:
                            raise _Refused(refusal)
                        await w.write(self._f32_offset(offset, header.dtype), from_wire(data, header.dtype))
                    refusal = check.finish()
                    if refusal is not None:
                        raise _Refused(refusal)
            except _Refused as refused:
                return refused.refusal
            return None
        # A result lands in place; a refused one fails the attempt, whose
        # keys all go (the global aggregate with them).
        base = header.start * FLOAT32_BYTES
        async for offset, data in chunks:
            refusal = check.chunk(offset, data)
            if refusal is not None:
                break
            await self._store.write_chunk(self.global_key, base + self._f32_offset(offset, header.dtype),
                                          from_wire(data, header.dtype))  # fmt: skip
        else:
            refusal = check.finish()
        if refusal is not None:
            self.fail(f"the aggregate of shard {header.shard} from {header.sender} was refused: {refusal.reason}")
        return refusal

    # ---- the exchange ----

    async def run(self, local: LocalAggregate, transport: ExchangeTransport, deadline_s: float) -> GlobalAggregate:
        """Sends this peer's parts, aggregates its shard, sends the result,
        and returns once every shard's result is in; AttemptFailed if not.
        Alone, its local aggregate is the global one."""
        if len(self.owners) == 1:
            return GlobalAggregate(local.key, local.samples, local.loss, ((self.me,),), 0, 0)
        await self._ready.wait()
        self._raise_if_failed()
        work = asyncio.create_task(self._work(transport, local, deadline_s))
        watch = asyncio.create_task(self._changed.until(lambda: self.failure is not None))
        try:
            # A failure (a death, a refused result) ends the attempt at once,
            # whatever is still on its way (a push into a black hole).
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, watch):
                task.cancel()
            await asyncio.gather(work, watch, return_exceptions=True)
        self._raise_if_failed()
        work.result()
        first = self.gathered[0]
        return GlobalAggregate(self.global_key, first.samples, first.loss,
                               tuple(self.gathered[i].contributors for i in range(len(self.owners))),
                               self.sent_bytes, self.received_bytes)  # fmt: skip

    async def _work(self, transport: ExchangeTransport, local: LocalAggregate, deadline_s: float) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for shard, owner in enumerate(self.owners):
                    if owner != self.me:
                        group.create_task(self._send_part(transport, local, shard, owner))
                group.create_task(self._own_shard(transport, local, deadline_s))
                group.create_task(self._gather())
        except* AttemptFailed as failed:
            raise failed.exceptions[0] from None

    async def _push(self, transport: ExchangeTransport, to: str, header: ContributionHeader, data: bytes) -> None:
        """One stream, bounded: a peer behind a cut link never answers, and
        one declared dead is given up on at once."""
        push = asyncio.ensure_future(transport.push(to, header, self._chunks(data)))
        dead = asyncio.ensure_future(self._changed.until(lambda: to in self.dead))
        try:
            async with clock_timeout(self._clock, self._config.gather_timeout_s):
                await asyncio.wait({push, dead}, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            pass
        finally:
            for task in (push, dead):
                task.cancel()
            await asyncio.gather(push, dead, return_exceptions=True)
        if push.done() and not push.cancelled():
            push.result()
            return
        why = "it was declared dead" if to in self.dead else f"no answer within {self._config.gather_timeout_s:g} s"
        raise TransportError(f"{to}: {why}")

    async def _send_part(self, transport: ExchangeTransport, local: LocalAggregate, shard: int, owner: str) -> None:
        start, stop = self.bounds[shard]
        data = await self._store.read_chunk(local.key, start * FLOAT32_BYTES, (stop - start) * FLOAT32_BYTES)
        data = to_wire(data, self._config.wire_dtype)
        header = self._header(Stage.SCATTER, shard, data, local.samples, local.loss, ())
        try:
            await self._push(transport, owner, header, data)
            self.sent_bytes += len(data)
        except SpirtError as exc:
            if isinstance(exc, ContributionRefused) and exc.kind == RefusalKind.WRONG_ATTEMPT.value:
                # The owner runs no such attempt (it went on without this
                # peer): its shard's result will never come.
                self.fail(f"{owner}, the owner of shard {shard}, refused this peer's part: {exc}")
                return
            # The owner goes on without this part (if it has a quorum); a
            # dead owner fails the attempt through member_dead.
            _log.warning("job %s round %d: the part of shard %d did not reach %s: %s", self.job, self.key.round,
                         shard, owner, exc, extra={"job": self.job, "round": self.key.round})  # fmt: skip

    async def _own_shard(self, transport: ExchangeTransport, local: LocalAggregate, deadline_s: float) -> None:
        start, stop = self.bounds[self.mine]
        mine = await self._store.read_chunk(local.key, start * FLOAT32_BYTES, (stop - start) * FLOAT32_BYTES)
        mine = to_wire(mine, self._config.wire_dtype)  # this peer's part counts as the others' do
        async with self._store.writer(self.part_key(self.me), DType.FLOAT, (stop - start,)) as w:
            await w.write(0, from_wire(mine, self._config.wire_dtype))
        # Its header never travels: no SHA-256 (nothing would check it).
        self.parts[self.me] = self._header(Stage.SCATTER, self.mine, mine, local.samples, local.loss, (), digest=False)
        waiting = lambda: self.failure is not None or set(self.parts) | self.dead >= set(self.key.participants)  # noqa: E731
        try:
            async with clock_timeout(self._clock, max(0.0, deadline_s - (self._clock.monotonic() - self.started_at))):
                await self._changed.until(waiting)
        except TimeoutError:
            pass  # the deadline: go on with the parts that came
        self._raise_if_failed()
        header, self._own_result = await self._aggregate_shard(transport)
        self.gathered[self.mine] = header
        self._changed.notify()
        others = [p for p in self.owners if p != self.me]
        await asyncio.gather(*(self._send_result(transport, p, header, self._own_result) for p in others))

    async def _aggregate_shard(self, transport: ExchangeTransport) -> tuple[ContributionHeader, bytes]:
        self._aggregated = True
        senders = sorted(self.parts)
        if self._needs and len(senders) < len(self.key.participants):
            missing = sorted(set(self.key.participants) - set(senders))
            self.fail(f"rule {self._rule} compares whole contributions, so every shard needs every participant's "
                      f"part; shard {self.mine} has none from {', '.join(missing)}")  # fmt: skip
            self._raise_if_failed()
        if len(senders) < self._quorum:
            missing = sorted(set(self.key.participants) - set(senders))
            self.fail(f"shard {self.mine} has parts from {len(senders)} of {len(self.key.participants)} participants "
                      f"(none from {', '.join(missing)}); a quorum is {self._quorum}")  # fmt: skip
            self._raise_if_failed()
        weights = [self.parts[s].samples for s in senders]
        options = with_weights(self._rule, self._options, weights)
        keys = [self.part_key(s) for s in senders]
        try:
            validate_call(self._rule, len(senders), options)
            given = await self._whole_statistics(transport, keys) if self._needs else None
            await self._store.aggregate(self.result_key, self._rule, keys, given=given, **options)
        except AggregationError as exc:
            self.fail(f"shard {self.mine}: {exc}")
            self._raise_if_failed()
        start, stop = self.bounds[self.mine]
        data = await self._store.read_chunk(self.result_key, 0, (stop - start) * FLOAT32_BYTES)
        data = to_wire(data, self._config.wire_dtype)
        samples = sum(weights)
        loss = sum(self.parts[s].loss * self.parts[s].samples for s in senders) / samples if samples else 0.0
        return self._header(Stage.GATHER, self.mine, data, samples, loss, tuple(senders)), data

    async def _whole_statistics(self, transport: ExchangeTransport, keys: list[str]) -> dict[Statistic, np.ndarray]:
        """Each statistic the rule needs, of the whole contributions: this
        owner's partial one, sent to every participant, plus every other
        owner's, summed in shard order (the same sum everywhere)."""
        n = len(self.owners)
        for stat in self._needs:
            mine = np.ascontiguousarray(await self._store.statistic(stat, keys), dtype="<f8")
            self.partials[(stat.value, self.mine)] = mine
            message = Partial(self.me, self.job, self.key, self.mine, stat.value, mine.tobytes())
            await asyncio.gather(*(self._say(transport, p, message) for p in self.owners if p != self.me))
        everything = lambda: self.failure is not None or len(self.partials) == n * len(self._needs)  # noqa: E731
        try:
            async with clock_timeout(self._clock, self._config.gather_timeout_s):
                await self._changed.until(everything)
        except TimeoutError:
            self.fail(f"the other owners' partial statistics did not arrive within {self._config.gather_timeout_s:g} s")
        self._raise_if_failed()
        summed = {}
        for stat in self._needs:
            total = np.zeros((n, n))
            for shard in range(n):
                total = total + self.partials[(stat.value, shard)]
            summed[stat] = total
        return summed

    def receive_partial(self, m: Partial) -> Refusal | None:
        """Another owner's partial statistic, or why it is refused."""
        n = len(self.owners)
        if m.key != self.key or not 0 <= m.shard < n or self.owners[m.shard] != m.sender or m.shard == self.mine:
            return Refusal(RefusalKind.WRONG_SHARD, f"{m.sender} does not own shard {m.shard} in this attempt")
        if m.statistic not in {stat.value for stat in self._needs} or len(m.data) != n * n * 8:
            return Refusal(RefusalKind.BAD_SIZE, f"a statistic {m.statistic[:40]!r} of {len(m.data)} bytes; this "
                           f"attempt needs {n} x {n} float64 of {', '.join(s.value for s in self._needs) or 'none'}")  # fmt: skip
        values = np.frombuffer(m.data, "<f8").reshape(n, n)
        if not np.isfinite(values).all():
            return Refusal(RefusalKind.BAD_CHECKSUM, "a statistic that is not finite")
        self.partials[(m.statistic, m.shard)] = values
        self._changed.notify()
        return None

    async def _say(self, transport: ExchangeTransport, to: str, message: Partial) -> None:
        if to in self.dead:
            return
        try:
            await transport.send(to, message)
        except SpirtError as exc:  # that owner cannot aggregate then: its result will not come
            _log.warning("job %s round %d: the partial statistic did not reach %s: %s", self.job, self.key.round, to,
                         exc, extra={"job": self.job, "round": self.key.round})  # fmt: skip

    async def _send_result(self, transport: ExchangeTransport, to: str, header: ContributionHeader,
                           data: bytes) -> None:  # fmt: skip
        if to in self.dead:
            return
        try:
            await self._push(transport, to, header, data)
            self.sent_bytes += len(data)
        except SpirtError as exc:
            _log.warning("job %s round %d: the aggregate of shard %d did not reach %s: %s", self.job, self.key.round,
                         self.mine, to, exc, extra={"job": self.job, "round": self.key.round})  # fmt: skip

    async def _gather(self) -> None:
        everything = lambda: self.failure is not None or len(self.gathered) == len(self.owners)  # noqa: E731
        try:
            async with clock_timeout(self._clock, self._config.gather_timeout_s):
                await self._changed.until(everything)
        except TimeoutError:
            missing = [i for i in range(len(self.owners)) if i not in self.gathered]
            self.fail(f"the aggregates of shards {missing} did not arrive within gather_timeout_s = "
                      f"{self._config.gather_timeout_s:g} s")  # fmt: skip
        self._raise_if_failed()
        # The result as the others received it, so that every peer holds the same bits.
        start = self.bounds[self.mine][0] * FLOAT32_BYTES
        async for offset, data in self._chunks(self._own_result):
            dtype = self._config.wire_dtype
            await self._store.write_chunk(self.global_key, start + self._f32_offset(offset, dtype),
                                          from_wire(data, dtype))  # fmt: skip

    def _raise_if_failed(self) -> None:
        if self.failure is not None:
            raise AttemptFailed(f"round {self.key.round} attempt {self.key.attempt}: {self.failure}")

    def _header(self, stage: Stage, shard: int, data: bytes, samples: float, loss: float,
                contributors: tuple[str, ...], *, digest: bool = True) -> ContributionHeader:  # fmt: skip
        start, stop = self.bounds[shard]
        return ContributionHeader(job=self.job, key=self.key, sender=self.me, shard=shard, start=start,
                                  n_elements=stop - start, dtype=self._config.wire_dtype, nbytes=len(data),
                                  sha256=hashlib.sha256(data).hexdigest() if digest else "", stage=stage,
                                  samples=samples, loss=loss, contributors=contributors)  # fmt: skip

    @staticmethod
    def _f32_offset(offset: int, dtype: str) -> int:
        return offset * FLOAT32_BYTES // WIRE_DTYPES[dtype]

    async def _chunks(self, data: bytes) -> Chunks:
        """Views of data (read-only bytes): the transport copies each once, into its message."""
        view, size = memoryview(data), self._config.chunk_bytes
        for offset in range(0, len(data), size):
            yield offset, view[offset : offset + size]


class _Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal
