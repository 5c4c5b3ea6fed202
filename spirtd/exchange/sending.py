"""The send side of one attempt's exchange: this peer's parts to the
shards' owners, its shard's result to every other participant, its
partial statistics to the other owners.

Every stream is bounded (gather_timeout_s) and given up on at once when
its peer is declared dead. What does not arrive is logged, not raised:
the owner goes on without a part (if it has a quorum), and a result or a
statistic that never comes fails the attempt where it is awaited; only a
part refused because its owner runs no such attempt fails it here.
"""

from __future__ import annotations

import asyncio
import logging

from spirtd.clock import Clock, clock_timeout
from spirtd.errors import ContributionRefused, SpirtError, TransportError
from spirtd.exchange.attempt_state import AttemptState
from spirtd.exchange.config import ExchangeConfig
from spirtd.exchange.messages import Partial
from spirtd.exchange.payload import chunks
from spirtd.exchange.streams import ContributionHeader, RefusalKind
from spirtd.exchange.transport import ExchangeTransport

_log = logging.getLogger("spirtd.exchange")


class AttemptSender:
    def __init__(self, state: AttemptState, transport: ExchangeTransport, clock: Clock,
                 config: ExchangeConfig) -> None:  # fmt: skip
        self._state = state
        self._transport = transport
        self._clock = clock
        self._config = config

    async def _push(self, to: str, header: ContributionHeader, data: bytes) -> None:
        """One stream, bounded: a peer behind a cut link never answers, and
        one declared dead is given up on at once."""
        push = asyncio.ensure_future(self._transport.push(to, header, chunks(data, self._config.chunk_bytes)))
        dead = asyncio.ensure_future(self._state.changed.until(lambda: to in self._state.dead))
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
        timeout_s = self._config.gather_timeout_s
        why = "it was declared dead" if to in self._state.dead else f"no answer within {timeout_s:g} s"
        raise TransportError(f"{to}: {why}")

    async def send_part(self, owner: str, header: ContributionHeader, data: bytes) -> None:
        s = self._state
        try:
            await self._push(owner, header, data)
            s.sent_bytes += len(data)
        except SpirtError as exc:
            if isinstance(exc, ContributionRefused) and exc.kind == RefusalKind.WRONG_ATTEMPT.value:
                # The owner runs no such attempt (it went on without this
                # peer): its shard's result will never come.
                s.fail(f"{owner}, the owner of shard {header.shard}, refused this peer's part: {exc}")
                return
            # The owner goes on without this part (if it has a quorum); a
            # dead owner fails the attempt through member_dead.
            _log.warning("job %s round %d: the part of shard %d did not reach %s: %s", s.job, s.key.round,
                         header.shard, owner, exc, extra={"job": s.job, "round": s.key.round})  # fmt: skip

    async def send_result(self, to: str, header: ContributionHeader, data: bytes) -> None:
        s = self._state
        if to in s.dead:
            return
        try:
            await self._push(to, header, data)
            s.sent_bytes += len(data)
        except SpirtError as exc:
            _log.warning("job %s round %d: the aggregate of shard %d did not reach %s: %s", s.job, s.key.round,
                         s.mine, to, exc, extra={"job": s.job, "round": s.key.round})  # fmt: skip

    async def say(self, to: str, message: Partial) -> None:
        s = self._state
        if to in s.dead:
            return
        try:
            await self._transport.send(to, message)
        except SpirtError as exc:  # that owner cannot aggregate then: its result will not come
            _log.warning("job %s round %d: the partial statistic did not reach %s: %s", s.job, s.key.round, to,
                         exc, extra={"job": s.job, "round": s.key.round})  # fmt: skip
