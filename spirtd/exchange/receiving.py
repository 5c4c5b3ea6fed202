"""The receive side of one attempt's exchange: parts of the shard this peer
owns (SCATTER), other owners' results (GATHER) and their partial
statistics.

A part streams into the store through a staging key, so a refused stream
leaves nothing; a result lands in place in the global aggregate, and a
refused one fails the attempt. Every refusal is kept, and says why.
"""

from __future__ import annotations

import numpy as np

from spirtd.clock import Clock
from spirtd.exchange.attempt_state import AttemptState
from spirtd.exchange.formulas import FLOAT32_BYTES
from spirtd.exchange.messages import Partial
from spirtd.exchange.payload import f32_offset, from_wire
from spirtd.exchange.streams import ChunkCheck, ContributionHeader, Refusal, RefusalKind, Stage
from spirtd.exchange.transport import Chunks
from spirtd.store.api import DType, TensorStore


class AttemptReceiver:
    def __init__(self, state: AttemptState, store: TensorStore, clock: Clock) -> None:
        self._state = state
        self._store = store
        self._clock = clock

    async def receive(self, caller: str, header: ContributionHeader, chunks: Chunks) -> Refusal | None:
        s = self._state
        refusal = s.check.header(header, caller)
        if refusal is None:
            refusal = s.given_up()
        if refusal is None and header.stage is Stage.SCATTER and s.aggregated:
            refusal = Refusal(RefusalKind.LATE, f"shard {header.shard} was aggregated already; the part came late")
        if refusal is None:
            await s.ready.wait()
            refusal = s.given_up() or await self._land(header, chunks)
        if refusal is not None:
            s.refused.append(refusal)
            return refusal
        s.check.accepted(header)
        s.received_bytes += header.nbytes
        if header.stage is Stage.SCATTER:
            s.parts[header.sender] = header
            s.arrivals_s.append(self._clock.monotonic() - s.started_at)
        else:
            s.gathered[header.shard] = header
        s.changed.notify()
        return None

    async def _land(self, header: ContributionHeader, chunks: Chunks) -> Refusal | None:
        check = ChunkCheck(header)
        if header.stage is Stage.SCATTER:
            try:
                async with self._store.writer(self._state.part_key(header.sender), DType.FLOAT,
                                              (header.n_elements,)) as w:  # fmt: skip
                    async for offset, data in chunks:
                        refusal = check.chunk(offset, data)
                        if refusal is not None:
                            raise _Refused(refusal)
                        await w.write(f32_offset(offset, header.dtype), from_wire(data, header.dtype))
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
            await self._store.write_chunk(self._state.global_key, base + f32_offset(offset, header.dtype),
                                          from_wire(data, header.dtype))  # fmt: skip
        else:
            refusal = check.finish()
        if refusal is not None:
            self._state.fail(f"the aggregate of shard {header.shard} from {header.sender} was refused: "
                             f"{refusal.reason}")  # fmt: skip
        return refusal

    def receive_partial(self, m: Partial) -> Refusal | None:
        """Another owner's partial statistic, or why it is refused."""
        s = self._state
        n = len(s.owners)
        if m.key != s.key or not 0 <= m.shard < n or s.owners[m.shard] != m.sender or m.shard == s.mine:
            return Refusal(RefusalKind.WRONG_SHARD, f"{m.sender} does not own shard {m.shard} in this attempt")
        if m.statistic not in {stat.value for stat in s.needs} or len(m.data) != n * n * 8:
            return Refusal(RefusalKind.BAD_SIZE, f"a statistic {m.statistic[:40]!r} of {len(m.data)} bytes; this "
                           f"attempt needs {n} x {n} float64 of {', '.join(stat.value for stat in s.needs) or 'none'}")  # fmt: skip
        values = np.frombuffer(m.data, "<f8").reshape(n, n)
        if not np.isfinite(values).all():
            return Refusal(RefusalKind.BAD_CHECKSUM, "a statistic that is not finite")
        s.partials[(m.statistic, m.shard)] = values
        s.changed.notify()
        return None


class _Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal
