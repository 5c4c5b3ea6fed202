"""The exchange's thin async driver: feeds each job's RoundAgreement the
messages that arrive, membership's news and the clock; carries out its
effects (sends, the agreed attempt's exchange); and offers the runner three
calls per round (a JobRunner's RoundPeers):

    key = await peers.agree(job, r, state, previous, n_elements, scratch, settings)
    glob = await peers.exchange(job, key, local)      # AttemptFailed: agree again
    digests = await peers.commit(job, key, new_state)  # ResyncNeeded: fetch the majority's state

Everything the protocol decides is in agreement.py (when an attempt is
agreed, aborted, committed) and attempt.py (what travels, what is kept).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol

from spirtd.clock import Clock, clock_timeout
from spirtd.errors import AttemptFailed, ExchangeError, ResyncNeeded, SpirtError
from spirtd.exchange import agreement as ag
from spirtd.exchange.attempt import AttemptExchange, GlobalAggregate, LocalAggregate
from spirtd.exchange.config import ExchangeConfig, RoundSettings
from spirtd.exchange.formulas import adaptive_deadline_s
from spirtd.exchange.messages import AttemptKey, Message, Partial
from spirtd.exchange.streams import ContributionHeader, Refusal, RefusalKind
from spirtd.exchange.transport import Chunks, ExchangeTransport
from spirtd.store.api import TensorStore
from spirtd.tasks import TaskSet

_log = logging.getLogger("spirtd.exchange")
# How often deadlines are checked and the membership view refreshed.
TICK_S = 0.05
# How long one agreement message may take to deliver before it counts as lost.
SEND_TIMEOUT_S = 5.0
# Messages held for a job this peer has not started yet, and how many such jobs.
MAX_PENDING_MESSAGES = 256
MAX_PENDING_JOBS = 16


class MembershipView(Protocol):
    def alive(self) -> Collection[str]:
        """Ids of the members membership holds alive, this peer's included."""
        ...


@dataclass
class _Session:
    """One job's round in progress at this peer."""

    job: str
    round: int
    machine: ag.RoundAgreement
    settings: RoundSettings
    n_elements: int
    scratch: str
    outcomes: asyncio.Queue = field(default_factory=asyncio.Queue)
    attempts: dict[AttemptKey, AttemptExchange] = field(default_factory=dict)
    arrivals_s: collections.deque = field(default_factory=lambda: collections.deque(maxlen=64))
    notes: list[str] = field(default_factory=list)


class ExchangeDriver:
    def __init__(self, me: str, transport: ExchangeTransport, store: TensorStore, clock: Clock,
                 membership: MembershipView, counters: Callable[[str], None] = lambda name: None,
                 max_chunk_bytes: int | None = None) -> None:  # fmt: skip
        """max_chunk_bytes: the most one message of the transport may carry."""
        self.me = me
        self.max_chunk_bytes = max_chunk_bytes
        self._transport = transport
        self._store = store
        self._clock = clock
        self._membership = membership
        self._count = counters
        self._sessions: dict[str, _Session] = {}
        self._pending: dict[str, list[tuple[str, Message]]] = {}
        self._arrivals: dict[str, collections.deque] = {}
        self._changed = asyncio.Event()
        self._tasks = TaskSet()
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> "ExchangeDriver":
        self._tasks.open(await self._stack.enter_async_context(asyncio.TaskGroup()))
        self._tasks.spawn(self._tick(), name="exchange-ticks")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._tasks.aclose()
        await self._stack.aclose()

    # ---- the runner's calls ----

    async def agree(self, job: str, round_number: int, state: str, previous: Collection[str], n_elements: int,
                    scratch: str, settings: RoundSettings, on_note: Callable[[str], None] = lambda text: None,
                    *, fresh: bool = False) -> AttemptKey:  # fmt: skip
        """The next agreed attempt of the round (starting the round if it is
        new, or afresh: the runner starts it over after its store restarted);
        ResyncNeeded when a majority holds another state."""
        session = self._sessions.get(job)
        if session is None or session.round != round_number or fresh:
            session = self._start(job, round_number, state, previous, n_elements, scratch, settings)
        while True:
            effect = await session.outcomes.get()
            if isinstance(effect, ag.Agreed) and effect.key == session.machine.key and \
                    session.machine.phase is ag.AgreementPhase.WORKING:  # fmt: skip
                return effect.key
            if isinstance(effect, ag.Resync):
                raise self._resync(job, effect)
            if isinstance(effect, ag.WaitingForQuorum):
                on_note(f"round {effect.round} waits: {effect.have} of the last round's participants are here, a "
                        f"quorum is {effect.need}")  # fmt: skip
            if isinstance(effect, ag.Aborted):
                on_note(f"round {effect.key.round} attempt {effect.key.attempt} was given up: {effect.reason}")

    async def exchange(self, job: str, key: AttemptKey, local: LocalAggregate) -> GlobalAggregate:
        session = self._session(job, key)
        attempt = session.attempts.get(key)
        if attempt is None:
            raise AttemptFailed(f"round {key.round} attempt {key.attempt} was given up")
        cfg = session.settings.config
        history = self._arrivals.setdefault(job, collections.deque(maxlen=cfg.arrival_history))
        deadline = adaptive_deadline_s(list(history), cfg.deadline_multiple, cfg.deadline_percentile,
                                       cfg.deadline_floor_s, cfg.deadline_ceiling_s)  # fmt: skip
        try:
            result = await attempt.run(local, self._transport, deadline)
        except AttemptFailed as exc:
            self._apply(session, session.machine.work_failed(str(exc), self._clock.monotonic()))
            raise
        history.extend(attempt.arrivals_s)
        return result

    async def commit(self, job: str, key: AttemptKey, state: str) -> dict[str, str]:
        """Reports the new version's digest; returns each participant's
        digest heard by the time a majority held this one (the others are
        missing). AttemptFailed when the vote was let go, ResyncNeeded when a
        majority holds another."""
        session = self._session(job, key)
        self._apply(session, session.machine.updated(state, self._clock.monotonic()))
        while True:
            effect = await session.outcomes.get()
            if isinstance(effect, ag.Committed) and effect.key == key:
                return dict(effect.heard)
            if isinstance(effect, ag.Resync):
                raise self._resync(job, effect)
            if isinstance(effect, ag.Aborted) and effect.key == key:
                raise AttemptFailed(f"round {key.round} attempt {key.attempt}: {effect.reason}")
            if isinstance(effect, ag.Agreed):
                session.outcomes.put_nowait(effect)  # a later attempt: agree() takes it
                await asyncio.sleep(0)

    def end(self, job: str) -> None:
        """The job stopped on this peer: its round, if any, goes."""
        session = self._sessions.pop(job, None)
        if session is not None:
            for attempt in session.attempts.values():
                attempt.fail("the job stopped on this peer")

    def refusals(self, job: str) -> list[Refusal]:
        session = self._sessions.get(job)
        return [r for a in session.attempts.values() for r in a.refused] if session else []

    # ---- news ----

    def member_dead(self, peer: str) -> None:
        now = self._clock.monotonic()
        for session in list(self._sessions.values()):
            self._apply(session, session.machine.member_dead(peer, now))
            for attempt in session.attempts.values():
                attempt.member_dead(peer)

    # ---- inbound (ExchangeInbound) ----

    async def on_message(self, caller: str, message: Message) -> None:
        if message.sender != caller:
            self._count("exchange.refused.not_sender")
            return
        session = self._sessions.get(message.job)
        if isinstance(message, Partial):
            attempt = session.attempts.get(message.key) if session is not None else None
            refusal = attempt.receive_partial(message) if attempt is not None else None
            if refusal is not None:
                self._count(refusal.counter)
                _log.warning("refused a partial statistic from %s: %s", caller, refusal.reason,
                             extra={"job": message.job, "peer": caller})  # fmt: skip
            return
        if session is None:
            held = self._pending.setdefault(message.job, []) if len(self._pending) < MAX_PENDING_JOBS else None
            if held is not None and len(held) < MAX_PENDING_MESSAGES:
                held.append((caller, message))
            return
        self._apply(session, session.machine.receive(message, self._clock.monotonic()))

    async def on_push(self, caller: str, header: ContributionHeader, chunks: Chunks) -> Refusal | None:
        attempt = await self._attempt_for(header)
        if attempt is None:
            refusal = Refusal(RefusalKind.WRONG_ATTEMPT, f"this peer runs no attempt {header.key.attempt} of round "
                              f"{header.key.round} of job {header.job} with those participants")  # fmt: skip
        else:
            refusal = await attempt.receive(caller, header, chunks)
        if refusal is not None:
            self._count(refusal.counter)
            _log.warning("refused a contribution from %s for job %s round %d: %s", caller, header.job,
                         header.key.round, refusal.reason,
                         extra={"job": header.job, "peer": caller, "refusal": refusal.kind.value})  # fmt: skip
        return refusal

    async def _attempt_for(self, header: ContributionHeader) -> AttemptExchange | None:
        """The attempt a contribution is for; a peer that agreed a moment
        before this one may send first, so it waits a little for it."""
        wait_s = ExchangeConfig().agreement.propose_timeout_s
        session = self._sessions.get(header.job)
        if session is not None:
            wait_s = session.settings.config.agreement.propose_timeout_s

        def found() -> AttemptExchange | None:
            s = self._sessions.get(header.job)
            return s.attempts.get(header.key) if s is not None else None

        with contextlib.suppress(TimeoutError):
            async with clock_timeout(self._clock, wait_s):
                while found() is None:
                    s = self._sessions.get(header.job)
                    if s is not None and (s.round > header.key.round or
                                          (s.round == header.key.round and
                                           (s.machine.key and s.machine.key.attempt > header.key.attempt))):
                        return None  # this peer is past that attempt
                    changed = self._changed
                    await changed.wait()
        return found()

    # ---- effects ----

    def _start(self, job: str, round_number: int, state: str, previous: Collection[str], n_elements: int,
               scratch: str, settings: RoundSettings) -> _Session:  # fmt: skip
        old = self._sessions.get(job)
        if old is not None:
            for attempt in old.attempts.values():
                attempt.fail("the round is over")
        machine = old.machine if old is not None else ag.RoundAgreement(self.me, job, settings.config.agreement)
        session = _Session(job, round_number, machine, settings, n_elements, scratch)
        self._sessions[job] = session
        now = self._clock.monotonic()
        self._apply(session, machine.start(round_number, state, previous, self._membership.alive(), now))
        for caller, message in self._pending.pop(job, []):
            self._apply(session, machine.receive(message, now))
        return session

    def _apply(self, session: _Session, effects: list[ag.Effect]) -> None:
        for effect in effects:
            if isinstance(effect, ag.Send):
                self._tasks.spawn(self._send(effect.to, effect.message), name=f"send {effect.to}")
                continue
            if isinstance(effect, ag.Agreed):
                _log.debug("job %s round %d attempt %d agreed: %s", session.job, effect.key.round, effect.key.attempt,
                           ", ".join(effect.key.participants), extra={"job": session.job, "round": effect.key.round})  # fmt: skip
                config = session.settings.config
                if self.max_chunk_bytes is not None and config.chunk_bytes > self.max_chunk_bytes:
                    config = replace(config, chunk_bytes=self.max_chunk_bytes)
                attempt = AttemptExchange(self.me, session.job, effect.key, session.n_elements, self._store,
                                          session.scratch, session.settings.rule, session.settings.options,
                                          session.machine.config.quorum_fraction, self._clock, config)  # fmt: skip
                session.attempts[effect.key] = attempt
                self._tasks.spawn(self._prepare(attempt), name=f"prepare {effect.key.digest}")
            elif isinstance(effect, ag.Aborted):
                attempt = session.attempts.pop(effect.key, None)
                if attempt is not None:
                    attempt.fail(effect.reason)
                    self._tasks.spawn(self._discard(attempt), name=f"discard {effect.key.digest}")
                # Views that differ for a moment make many short attempts: those say little.
                level = logging.DEBUG if effect.reason.startswith("proposals differ") else logging.INFO
                _log.log(level, "job %s round %d attempt %d given up: %s", session.job, effect.key.round,
                         effect.key.attempt, effect.reason, extra={"job": session.job, "round": effect.key.round})  # fmt: skip
            session.outcomes.put_nowait(effect)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _send(self, to: str, message: Message) -> None:
        _log.debug("job %s: %s to %s: round %d attempt %d of %s", message.job, type(message).__name__, to,
                   message.key.round, message.key.attempt, ", ".join(message.key.participants))  # fmt: skip
        try:
            async with clock_timeout(self._clock, SEND_TIMEOUT_S):  # a cut link never answers
                await self._transport.send(to, message)
        except (SpirtError, TimeoutError) as exc:  # the agreement's deadlines recover a lost message
            _log.debug("a %s to %s was lost: %s", type(message).__name__, to, exc)

    async def _prepare(self, attempt: AttemptExchange) -> None:
        try:
            await attempt.prepare()
        except SpirtError as exc:
            attempt.fail(f"the store could not hold the attempt's aggregate: {exc}")

    async def _discard(self, attempt: AttemptExchange) -> None:
        with contextlib.suppress(SpirtError):
            await attempt.discard()

    async def _tick(self) -> None:
        while True:
            await self._clock.sleep(TICK_S)
            now = self._clock.monotonic()
            alive = self._membership.alive()
            for session in list(self._sessions.values()):
                session.machine.view(alive)
                self._apply(session, session.machine.tick(now))

    def _session(self, job: str, key: AttemptKey) -> _Session:
        session = self._sessions.get(job)
        if session is None or session.round != key.round:
            raise AttemptFailed(f"job {job} is not at round {key.round} on this peer")
        return session

    def _resync(self, job: str, effect: ag.Resync) -> ExchangeError:
        return ResyncNeeded(f"job {job}: a majority ({', '.join(effect.sources)}) holds round {effect.round} with "
                            f"state {effect.state[:16]}, which this peer does not", effect.round, effect.state,
                            effect.sources)  # fmt: skip
