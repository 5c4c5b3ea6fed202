"""Agreement on one round of a job among its peers, with no coordinator: a
pure state machine fed messages, membership news and `now`, returning
effects (see docs/rounds.md for the whole protocol).

An attempt of round r fixes its participants. A peer proposes the members
it believes alive (from the second attempt on: those that proposed this
round with its own state); the attempt is agreed when every participant
proposed exactly that. The driver then exchanges and updates, and reports
the digest of the new version; the round commits at a peer when a strict
majority of the attempt's participants reported the digest it holds. A peer
reports for one attempt of a round only (its vote), so two attempts of one
round can never both commit. Death of a participant, a deadline, or
disagreeing proposals abort the attempt before the report; the next one
starts at once with the current view.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass, field, replace

from spirtd.exchange.config import AgreementConfig
from spirtd.exchange.formulas import quorum, ranked
from spirtd.exchange.messages import AttemptKey, Message, Partial, Propose, Report


# Later rounds whose early messages are held (a peer that far behind resyncs).
MAX_EARLY_ROUNDS = 4
# Peers behind or astray told where this one is, per round (each once per attempt).
MAX_ANSWERS = 256


class AgreementPhase(enum.Enum):
    IDLE = "idle"  # no round started
    WAITING = "waiting"  # too few of the previous participants: waits, then tries again
    PROPOSING = "proposing"  # waits for every participant's proposal
    WORKING = "working"  # agreed: the driver exchanges and updates
    REPORTING = "reporting"  # reported its digest: waits for a majority
    DONE = "done"  # committed, or told to resync


@dataclass(frozen=True)
class Send:
    to: str
    message: Message


@dataclass(frozen=True)
class Agreed:
    """Run the exchange and the update of this attempt, then call updated()."""

    key: AttemptKey


@dataclass(frozen=True)
class Aborted:
    key: AttemptKey
    reason: str


@dataclass(frozen=True)
class WaitingForQuorum:
    round: int
    have: int
    need: int


@dataclass(frozen=True)
class Committed:
    """The round's new version has digest `state`, and `supporters` (a strict
    majority of the attempt's participants) reported holding it; `heard` is
    each participant's digest as far as this peer heard it by then."""

    key: AttemptKey
    state: str
    supporters: tuple[str, ...]
    heard: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Resync:
    """This peer's state is not the one a majority holds: fetch `state`
    (of round `round`) from one of `sources`."""

    round: int
    state: str
    sources: tuple[str, ...]


Effect = Send | Agreed | Aborted | WaitingForQuorum | Committed | Resync


@dataclass
class _Round:
    number: int
    state: str  # digest of the version the round starts from
    previous: frozenset[str]  # participants of the last committed round (empty: none known)
    attempt: int = 0
    key: AttemptKey | None = None
    proposals: dict[int, dict[str, Propose]] = field(default_factory=dict)
    same_state: set[str] = field(default_factory=set)  # proposed this round with our state
    # Named as participants by those proposals: each proposer's newest only,
    # so that one who gave up on a silent peer stops vouching for it.
    listed: dict[str, tuple[int, frozenset[str]]] = field(default_factory=dict)
    unresponsive: set[str] = field(default_factory=set)  # named, but silent through an attempt
    dead: set[str] = field(default_factory=set)  # declared dead by membership
    reports: dict[AttemptKey, dict[str, Report]] = field(default_factory=dict)
    voted: AttemptKey | None = None  # the one attempt we reported for
    newer: dict[tuple[int, str], set[str]] = field(default_factory=dict)  # later rounds' proposers
    newer_sizes: dict[tuple[int, str], int] = field(default_factory=dict)  # their participant counts
    abandoned: set[tuple[int, str]] = field(default_factory=set)  # (attempt, peer): it proposed a later one
    new_state: str = ""
    recent: frozenset[str] = frozenset()  # proposed with our state in the last round
    committed: bool = False
    expected: dict[str, float] = field(default_factory=dict)  # named, not heard from in its attempt: since when
    answered: set[tuple[str, int, int]] = field(default_factory=set)  # (peer, round, attempt) told where we are
    told: set[str] = field(default_factory=set)  # sent a proposal of this round: each hears of every later one


class RoundAgreement:
    def __init__(self, me: str, job: str, config: AgreementConfig | None = None) -> None:
        self.me = me
        self.job = job
        self.config = config or AgreementConfig()
        self.phase = AgreementPhase.IDLE
        self._alive: set[str] = {me}
        self._round: _Round | None = None
        self._deadline: float | None = None
        # Messages of later rounds, by round and sender: peers that went on
        # first speak before this one starts the round (replayed by start).
        self._early: dict[int, dict[tuple[str, type], Message]] = {}

    # ---- inputs ----

    def start(self, round_number: int, state: str, previous: Collection[str], alive: Collection[str],
              now: float) -> list[Effect]:  # fmt: skip
        """Begins round_number from a version with digest `state`; previous
        holds the last committed round's participants."""
        self._alive = set(alive) | {self.me}
        recent = frozenset(self._round.same_state) if self._round is not None else frozenset()
        self._round = _Round(round_number, state, frozenset(previous), recent=recent)
        effects = self._begin(0, now)
        early = self._early.pop(round_number, {})
        self._early = {n: held for n, held in self._early.items() if n > round_number}
        for message in early.values():
            effects += self.receive(message, now)
        return effects

    def view(self, alive: Collection[str]) -> None:
        """The members membership holds alive now (used by the next attempt).
        One declared dead that is alive again (it rejoined: a false
        suspicion, a healed partition) may take part again."""
        self._alive = set(alive) | {self.me}
        if self._round is not None:
            self._round.dead -= self._alive

    def member_dead(self, member: str, now: float) -> list[Effect]:
        self._alive.discard(member)
        r = self._round
        if r is None or member == self.me:
            return []
        r.same_state.discard(member)
        r.dead.add(member)
        for vouching in r.newer.values():
            vouching.discard(member)
        if self.phase is AgreementPhase.PROPOSING and member in r.key.participants:
            return self._abort(f"participant {member} died", now)
        if self.phase is AgreementPhase.REPORTING:
            return self._maybe_release(r, now)
        # Working: the exchange knows whether it still needs the dead peer
        # (the driver calls work_failed); reporting: the others may still
        # make a majority.
        return []

    def receive(self, message: Message, now: float) -> list[Effect]:
        r = self._round
        if r is None or message.job != self.job or message.sender == self.me or isinstance(message, Partial):
            return []  # a Partial is the attempt's exchange's, not the agreement's
        if message.key.round > r.number and len(self._early) <= MAX_EARLY_ROUNDS:
            self._early.setdefault(message.key.round, {})[(message.sender, type(message))] = message
        if isinstance(message, Propose):
            return self._on_propose(r, message, now)
        return self._on_report(r, message)

    def updated(self, state: str, now: float) -> list[Effect]:
        """The driver finished the agreed attempt: the new version's digest."""
        r = self._round
        if r is None or self.phase is not AgreementPhase.WORKING:
            return []
        r.voted, r.new_state = r.key, state
        self.phase = AgreementPhase.REPORTING
        self._deadline = now + self.config.report_timeout_s
        report = Report(self.me, self.job, r.key, state)
        r.reports.setdefault(r.key, {})[self.me] = report
        sent = self._to_others(r.key, report)
        for early in self._early.get(r.number + 1, {}).values():
            if isinstance(early, Propose) and early.state == state:
                self.phase, self._deadline, r.committed = AgreementPhase.DONE, None, True
                return [*sent, self._committed(r, state, (early.sender,))]
        return [*sent, *self._check_reports(r)]

    def work_failed(self, reason: str, now: float) -> list[Effect]:
        """The exchange of the agreed attempt failed (a stream refused, a
        deadline): the attempt is given up before anyone reported."""
        if self.phase is not AgreementPhase.WORKING:
            return []
        return self._abort(reason, now)

    def tick(self, now: float) -> list[Effect]:
        if self._deadline is None or now < self._deadline:
            return []
        r = self._round
        if self.phase is AgreementPhase.WAITING:
            return self._begin(r.attempt + 1, now)
        if self.phase is AgreementPhase.PROPOSING:
            # Silent for propose_timeout_s since first expected, however many
            # attempts came and went meanwhile (catching up with others'
            # attempts must not keep a silent peer in forever).
            missing = [p for p in r.key.participants if p != self.me and p not in r.proposals.get(r.attempt, {})]
            silent = [p for p in missing if now - r.expected.get(p, now) >= self.config.propose_timeout_s]
            if not silent:
                self._deadline = self._propose_deadline(r, now)
                return []
            r.unresponsive |= set(silent)
            return self._abort(f"no proposal from {', '.join(silent)} within propose_timeout_s", now)
        if self.phase is AgreementPhase.REPORTING:
            # Our vote stands: say it again, so that those who missed it
            # (and their reports) can still make a majority.
            self._deadline = now + self.config.report_timeout_s
            return self._to_others(r.voted, replace(r.reports[r.voted][self.me], again=True))
        return []

    def next_deadline(self) -> float | None:
        return self._deadline

    @property
    def key(self) -> AttemptKey | None:
        return self._round.key if self._round else None

    # ---- proposals ----

    def _begin(self, attempt: int, now: float) -> list[Effect]:
        r = self._round
        r.attempt = attempt
        # First the view (after the first round: those of it that took part
        # in the last one or proposed in it, so that a member not running
        # the job stalls nobody); then those that proposed this round with
        # our state and those they named (news of life the view may not
        # have yet), less the dead and those that stayed silent through an
        # attempt.
        if attempt > 0:  # and the last round's participants alive: the quorum is of them
            named = set().union(*(names for _, names in r.listed.values()))
            candidates = r.same_state | named | (self._alive & r.previous)
        elif r.previous:
            candidates = self._alive & (r.previous | r.recent | r.same_state)
        else:
            candidates = self._alive
        participants = ranked((candidates | {self.me}) - r.dead - r.unresponsive)
        need = quorum(len(r.previous), self.config.quorum_fraction) if r.previous else 1
        have = len(r.previous & set(participants)) if r.previous else len(participants)
        r.key = AttemptKey(r.number, attempt, participants)
        heard = r.proposals.get(attempt, {})
        for p in participants:  # one that proposed an earlier attempt may hang since: expected all the same
            if p != self.me and p not in heard:
                r.expected.setdefault(p, now)
        self._deadline = self._propose_deadline(r, now)
        proposal = Propose(self.me, self.job, r.key, r.state)
        r.proposals.setdefault(attempt, {})[self.me] = proposal
        # Those told of an earlier attempt hear of this one too, named or not:
        # one left out would otherwise keep proposals naming it, and agree
        # alone, on taking the others' state, an attempt nobody runs. The
        # dead too: one declared dead by mistake comes back within the round
        # (a send to a dead address costs only a background task).
        said = [Send(p, proposal) for p in ranked(set(participants) | r.told) if p != self.me]
        r.told |= set(participants) - {self.me}
        if have < need:
            # Said anyway: those who went on answer where they are (this
            # peer resyncs), those at this round take it in.
            self.phase, self._deadline = AgreementPhase.WAITING, now + self.config.propose_timeout_s
            return [WaitingForQuorum(r.number, have, need), *said]
        self.phase = AgreementPhase.PROPOSING
        return [*said, *self._check_proposals(r, now)]

    def _propose_deadline(self, r: _Round, now: float) -> float:
        waits = [r.expected[p] for p in r.key.participants if p in r.expected]
        return min([now, *waits]) + self.config.propose_timeout_s

    def _on_propose(self, r: _Round, m: Propose, now: float) -> list[Effect]:
        if m.key.round > r.number and self.phase is not AgreementPhase.DONE:
            return self._on_newer(r, m)
        if m.key.round < r.number:
            return self._answer(r, m)  # an older round: that peer learns from our proposal
        if m.state != r.state:
            # Same round, another state: not a participant of ours; if most
            # others hold that state, ours is the one to give up.
            resync = self._on_newer(r, m) if self.phase is not AgreementPhase.DONE else []
            return [*self._answer(r, m), *resync]
        r.same_state.add(m.sender)
        if m.key.attempt >= r.listed.get(m.sender, (-1, frozenset()))[0]:
            r.listed[m.sender] = (m.key.attempt, frozenset(m.key.participants))
        r.unresponsive.discard(m.sender)
        r.expected.pop(m.sender, None)
        r.proposals.setdefault(m.key.attempt, {})[m.sender] = m
        relayed = self._our_reports(r, m.sender)
        if m.key.attempt > r.attempt:
            r.abandoned.add((r.attempt, m.sender))  # it proposes again: it did not vote for ours
        if self.phase is AgreementPhase.WORKING and m.key.attempt > r.attempt and m.sender in r.key.participants:
            return [*relayed, Aborted(r.key, f"{m.sender} gave up this attempt"), *self._begin(m.key.attempt, now)]
        if self.phase is AgreementPhase.REPORTING:
            return [*relayed, *self._maybe_release(r, now)]
        if self.phase in (AgreementPhase.PROPOSING, AgreementPhase.WAITING) and m.key.attempt > r.attempt:
            return [*relayed, *self._begin(m.key.attempt, now)]  # catch up with the newest attempt
        if self.phase is AgreementPhase.WAITING and m.sender not in r.key.participants:
            return [*relayed, *self._begin(r.attempt + 1, now)]  # someone new: try with it
        if self.phase is AgreementPhase.PROPOSING:
            return [*relayed, *self._check_proposals(r, now)]
        return relayed

    def _on_newer(self, r: _Round, m: Propose) -> list[Effect]:
        """Peers already propose a later round: once a majority of one such
        proposal's participants vouch for the same state, fetch it. A peer
        proposes the next round only after a majority reported the state it
        starts from, so a proposal of round r+1 from the state this peer
        voted for commits that vote (the reports may still be on their way);
        while this peer works on its attempt it cannot know yet whether it
        will hold that state, so it decides once it does (updated, or the
        attempt's abort) when the proposer is one of its participants."""
        if self.phase is AgreementPhase.REPORTING and m.key.round == r.number + 1 and m.state == r.new_state:
            self.phase, self._deadline, r.committed = AgreementPhase.DONE, None, True
            return [self._committed(r, r.new_state, (m.sender,))]
        r.newer.setdefault((m.key.round, m.state), set()).add(m.sender)
        # This peer never vouches for itself: a majority of the others named.
        r.newer_sizes[(m.key.round, m.state)] = len(set(m.key.participants) - {self.me})
        if self.phase is AgreementPhase.WORKING and m.sender in r.key.participants:
            return []  # it may have committed this very attempt
        return self._resync_if_vouched(r)

    def _answer(self, r: _Round, m: Propose) -> list[Effect]:
        """Our proposal, once per attempt of a peer that proposes from an
        older round or another state: it may not be among our participants,
        and must hear where the others are to resync."""
        mine = r.proposals.get(r.attempt, {}).get(self.me)
        if self.phase is AgreementPhase.DONE:
            # Committed: where it is now is the next round, from the new state.
            mine = Propose(self.me, self.job, AttemptKey(r.number + 1, 0, r.voted.participants), r.new_state) \
                if r.committed else None  # fmt: skip
        asked = (m.sender, m.key.round, m.key.attempt)
        if mine is None or asked in r.answered or len(r.answered) >= MAX_ANSWERS:
            return []
        r.answered.add(asked)
        return [Send(m.sender, mine)]

    def _resync_if_vouched(self, r: _Round) -> list[Effect]:
        for (number, state), vouching in r.newer.items():
            if len(vouching) >= quorum(r.newer_sizes[(number, state)]):
                self.phase, self._deadline = AgreementPhase.DONE, None
                return [Resync(number, state, tuple(sorted(vouching)))]
        return []

    def _our_reports(self, r: _Round, to: str) -> list[Effect]:
        """Our digest reported this round, for a peer that is still proposing
        or says its report again: it may make up a majority it missed. Only
        our own: a receiver takes a message only from the peer whose
        certificate signed the call, so others' reports cannot be vouched for."""
        return [Send(to, reports[self.me]) for reports in r.reports.values() if self.me in reports]

    def _maybe_release(self, r: _Round, now: float) -> list[Effect]:
        """Our vote goes once no majority of its attempt can have voted: the
        others have proposed again (so did not vote) or are dead."""
        key = r.voted
        gone = {p for p in key.participants if (key.attempt, p) in r.abandoned or p in r.dead}
        could_vote = len(key.participants) - len(gone)
        if could_vote >= quorum(len(key.participants)):
            return []
        r.voted, r.new_state = None, ""
        r.reports.get(key, {}).pop(self.me, None)
        newest = max(r.proposals)
        return [Aborted(key, "no majority can report on this attempt any more"), *self._begin(max(newest, key.attempt + 1), now)]

    def _check_proposals(self, r: _Round, now: float) -> list[Effect]:
        got = r.proposals.get(r.attempt, {})
        others = [p for p in r.key.participants if p != self.me]
        if any(p in got and got[p].key != r.key for p in got):
            differing = sorted(p for p in got if got[p].key != r.key)
            return self._abort(f"proposals differ ({', '.join(differing)} propose other participants)", now)
        if all(p in got for p in others):
            self.phase, self._deadline = AgreementPhase.WORKING, None
            return [Agreed(r.key)]
        return []

    def _abort(self, reason: str, now: float) -> list[Effect]:
        key = self._round.key
        resync = self._resync_if_vouched(self._round)
        if resync:
            return [Aborted(key, reason), *resync]
        return [Aborted(key, reason), *self._begin(self._round.attempt + 1, now)]

    # ---- reports ----

    def _on_report(self, r: _Round, m: Report) -> list[Effect]:
        if m.key.round != r.number or m.sender not in m.key.participants:
            return []
        r.reports.setdefault(m.key, {})[m.sender] = replace(m, again=False)
        answer = self._our_reports(r, m.sender) if m.again else []
        if self.phase is AgreementPhase.DONE:
            return answer
        return [*answer, *self._check_reports(r)]

    def _check_reports(self, r: _Round) -> list[Effect]:
        for key, reports in r.reports.items():
            if key == r.key and self.phase in (AgreementPhase.PROPOSING, AgreementPhase.WORKING):
                continue  # this peer's own attempt: it decides once it holds its own state
            majority = quorum(len(key.participants))
            by_state: dict[str, list[str]] = {}
            for sender, report in reports.items():
                by_state.setdefault(report.state, []).append(sender)
            for state, senders in by_state.items():
                if len(senders) < majority:
                    continue
                self.phase, self._deadline = AgreementPhase.DONE, None
                if key == r.voted and state == r.new_state:
                    r.committed = True
                    return [self._committed(r, state, tuple(sorted(senders)))]
                return [Resync(r.number + 1, state, tuple(sorted(senders)))]
        return []

    @staticmethod
    def _committed(r: _Round, state: str, supporters: tuple[str, ...]) -> Committed:
        """The vote commits: supporters vouch for state (a proposal of the
        next round from it vouches as a report does)."""
        heard = {sender: report.state for sender, report in r.reports.get(r.voted, {}).items()}
        heard.update((s, state) for s in supporters)
        return Committed(r.voted, state, supporters, tuple(sorted(heard.items())))

    def _to_others(self, key: AttemptKey, message: Message) -> list[Effect]:
        return [Send(p, message) for p in key.participants if p != self.me]
