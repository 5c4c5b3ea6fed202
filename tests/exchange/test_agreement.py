"""Round agreement on virtual time: peers of one job, their messages carried
(or lost) by a small in-memory network, membership news given by hand."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pytest

from spirtd.errors import ConfigError
from spirtd.exchange.agreement import (
    Aborted,
    Agreed,
    AgreementPhase,
    Committed,
    Resync,
    RoundAgreement,
    Send,
    WaitingForQuorum,
)
from spirtd.exchange.config import AgreementConfig
from spirtd.exchange.messages import Message, Report

CONFIG = AgreementConfig(propose_timeout_s=2.0, report_timeout_s=5.0)
MAX_DELIVERIES = 10_000


class Net:
    """Peers' agreement machines; sends queue up and are delivered by
    deliver(); drop(sender, to, message) loses messages; dead peers get
    nothing and say nothing."""

    def __init__(self, peers: list[str]) -> None:
        self.machines = {p: RoundAgreement(p, "j1", CONFIG) for p in peers}
        self.queue: list[tuple[str, str, Message]] = []
        self.effects: dict[str, list] = defaultdict(list)
        self.drop: Callable[[str, str, Message], bool] = lambda sender, to, message: False
        self.dead: set[str] = set()
        self.now = 0.0

    def apply(self, peer: str, effects: list) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                # The transport refuses a message signed by another's certificate.
                assert effect.message.sender == peer, f"{peer} sends {effect.message} in another's name"
                self.queue.append((peer, effect.to, effect.message))
            else:
                self.effects[peer].append(effect)

    def start(self, peer: str, round_number: int = 3, state: str = "s3", previous=(), alive=None) -> None:
        alive = set(self.machines) - self.dead if alive is None else alive
        self.apply(peer, self.machines[peer].start(round_number, state, previous, alive, self.now))

    def deliver(self) -> None:
        delivered = 0
        while self.queue:
            delivered += 1
            assert delivered < MAX_DELIVERIES, "a livelock: messages beget messages without end"
            sender, to, message = self.queue.pop(0)
            if to in self.dead or sender in self.dead or self.drop(sender, to, message):
                continue
            self.apply(to, self.machines[to].receive(message, self.now))

    def advance(self, seconds: float, step: float = 0.5) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            for peer, machine in self.machines.items():
                if peer not in self.dead:
                    self.apply(peer, machine.tick(self.now))
            self.deliver()

    def kill(self, peer: str) -> None:
        self.dead.add(peer)
        for other, machine in self.machines.items():
            if other not in self.dead:
                self.apply(other, machine.member_dead(peer, self.now))
        self.deliver()

    def of(self, peer: str, kind: type) -> list:
        return [e for e in self.effects[peer] if isinstance(e, kind)]

    def update_all(self, state_of: Callable[[str], str] = lambda peer: "s4") -> None:
        """Every live peer that agreed does its exchange and update."""
        for peer, machine in self.machines.items():
            if peer not in self.dead and machine.phase is AgreementPhase.WORKING:
                self.apply(peer, machine.updated(state_of(peer), self.now))
        self.deliver()


def started(peers: list[str], **kwargs) -> Net:
    net = Net(peers)
    for peer in peers:
        net.start(peer, **kwargs)
    net.deliver()
    return net


def test_peers_that_see_each_other_agree_and_commit_the_same_digest():
    net = started(["a", "b", "c"])
    for peer in "abc":
        (agreed,) = net.of(peer, Agreed)
        assert agreed.key.participants == ("a", "b", "c") and agreed.key.attempt == 0
    net.update_all()
    for peer in "abc":
        (committed,) = net.of(peer, Committed)
        assert committed.key == net.machines["a"].key and committed.state == "s4"
        assert len(committed.supporters) >= 2  # a strict majority of the three
        heard = dict(committed.heard)  # the digests it heard: its own, its supporters', all alike
        assert {peer, *committed.supporters} <= set(heard) <= {"a", "b", "c"} and set(heard.values()) == {"s4"}


def test_a_single_peer_agrees_with_itself():
    net = started(["a"])
    assert net.of("a", Agreed)
    net.update_all()
    assert net.of("a", Committed)[0].supporters == ("a",)


def test_views_that_differ_converge_in_the_next_attempt():
    net = Net(["a", "b", "c"])
    net.start("a", alive={"a", "b", "c"})
    net.start("b", alive={"a", "b"})  # b has not heard of c yet
    net.start("c", alive={"a", "b", "c"})
    net.deliver()
    assert net.of("b", Aborted) and "proposals differ" in net.of("b", Aborted)[0].reason
    keys = {net.of(peer, Agreed)[-1].key for peer in "abc"}
    assert len(keys) == 1 and next(iter(keys)).participants == ("a", "b", "c")
    assert next(iter(keys)).attempt <= 2 and net.now == 0.0  # no deadline was needed
    net.update_all()
    assert all(net.of(peer, Committed) for peer in "abc")


def test_a_participant_that_dies_while_proposing_is_left_out_at_once():
    net = Net(["a", "b", "c"])
    net.dead.add("c")  # it died before its proposals went out; the view still holds it
    net.start("a", alive={"a", "b", "c"})
    net.start("b", alive={"a", "b", "c"})
    net.deliver()
    assert not net.of("a", Agreed)
    net.kill("c")  # membership declares it dead: no waiting for the deadline
    assert net.now == 0.0
    for peer in "ab":
        assert "participant c died" in net.of(peer, Aborted)[0].reason
        assert net.of(peer, Agreed)[0].key.participants == ("a", "b")


def test_an_exchange_that_fails_after_a_death_is_tried_again_with_the_living():
    """A death while working does not abort by itself (the exchange may
    already hold all it needs from the dead peer); a failed exchange does."""
    net = started(["a", "b", "c"])
    net.kill("c")
    assert not net.of("a", Aborted)
    for peer in "ab":
        net.apply(peer, net.machines[peer].work_failed("the all-gather misses shard 2 (owner c died)", net.now))
    net.deliver()
    for peer in "ab":
        assert net.of(peer, Aborted)[0].key.participants == ("a", "b", "c")
        assert net.of(peer, Agreed)[-1].key.participants == ("a", "b")
    net.update_all()
    assert all(net.of(peer, Committed)[0].supporters == ("a", "b") for peer in "ab")


def test_a_voter_whose_attempt_cannot_reach_a_majority_any_more_lets_its_vote_go():
    """a reported; then c died and b, whose exchange failed, proposes again:
    at most one of three could have voted, so no one can have committed;
    a joins b's new attempt."""
    net = started(["a", "b", "c"])
    net.apply("a", net.machines["a"].updated("s4", net.now))
    net.dead.add("c")
    net.queue.clear()  # a's report is lost
    net.apply("b", net.machines["b"].work_failed("shard 2 missing", net.now))
    net.deliver()
    net.kill("c")
    assert any("no majority can report" in aborted.reason for aborted in net.of("a", Aborted))
    assert {net.of(peer, Agreed)[-1].key.participants for peer in "ab"} == {("a", "b")}
    net.update_all()
    assert all(net.of(peer, Committed)[0].supporters == ("a", "b") for peer in "ab")


def test_a_lost_proposal_costs_an_attempt_not_the_round():
    net = Net(["a", "b", "c"])
    lost = []

    def drop_once(sender, to, message):
        if (sender, to) == ("a", "b") and not lost:
            lost.append(message)
            return True
        return False

    net.drop = drop_once
    for peer in "abc":
        net.start(peer)
    net.deliver()
    assert not net.of("b", Agreed)
    net.advance(10.0)
    keys = {net.of(peer, Agreed)[-1].key for peer in "abc"}
    assert len(keys) == 1 and next(iter(keys)).participants == ("a", "b", "c")
    net.update_all()
    assert all(net.of(peer, Committed) for peer in "abc")


def test_below_quorum_of_the_previous_participants_a_round_waits():
    previous = ("a", "b", "c", "d", "e")
    net = Net(list(previous))
    net.dead |= {"c", "d", "e"}
    for peer in "ab":
        net.start(peer, previous=previous, alive={"a", "b"})
    net.deliver()
    assert net.of("a", WaitingForQuorum) == [WaitingForQuorum(3, 2, 3)]
    net.advance(10.0)
    assert not net.of("a", Agreed) and net.machines["a"].phase is AgreementPhase.WAITING
    net.dead.discard("c")  # c comes back and proposes
    net.start("c", previous=previous, alive={"a", "b", "c"})
    net.deliver()
    net.advance(3.0)
    assert {net.of(peer, Agreed)[-1].key.participants for peer in "abc"} == {("a", "b", "c")}


def test_a_partition_trains_on_the_majority_side_only():
    previous = ("a", "b", "c", "d", "e")
    net = Net(list(previous))
    minority, majority = {"a", "b"}, {"c", "d", "e"}
    net.drop = lambda sender, to, message: (sender in minority) != (to in minority)
    for peer in previous:
        net.start(peer, previous=previous, alive=minority if peer in minority else majority)
    net.deliver()
    net.advance(5.0)
    net.update_all()
    assert all(net.of(peer, Committed) for peer in majority)
    assert not any(net.of(peer, Agreed) for peer in minority)
    assert all(net.of(peer, WaitingForQuorum) for peer in minority)


def test_a_peer_whose_digest_differs_resyncs_from_the_majority():
    net = started(["a", "b", "c"])
    net.update_all(lambda peer: "bad" if peer == "c" else "s4")
    assert all(net.of(peer, Committed)[0].state == "s4" for peer in "ab")
    assert net.of("c", Resync) == [Resync(4, "s4", ("a", "b"))] and not net.of("c", Committed)


def test_a_vote_stands_a_death_after_it_does_not_restart_the_round():
    net = started(["a", "b", "c"])
    net.apply("a", net.machines["a"].updated("s4", net.now))
    net.kill("c")
    net.deliver()
    assert not net.of("a", Aborted) and net.machines["a"].phase is AgreementPhase.REPORTING
    net.update_all()  # b reports too: a and b are a majority of the three
    assert all(net.of(peer, Committed)[0].supporters == ("a", "b") for peer in "ab")


def test_a_lost_report_is_said_again_until_a_majority_hears_it():
    net = started(["a", "b", "c"])
    net.dead.add("c")  # c dies silently after agreeing: no membership news yet
    drops = {"left": 1}

    def lose_first_reports(sender, to, message):
        if sender == "b" and drops["left"]:
            drops["left"] -= 1
            return True
        return False

    net.drop = lose_first_reports
    net.update_all()
    assert not net.of("a", Committed)
    net.advance(6.0)  # report_timeout_s: the reports are sent again
    assert net.of("a", Committed) and net.of("b", Committed)


def test_a_peer_left_out_learns_the_newer_round_from_a_majority():
    net = Net(["a", "b", "c", "d"])
    net.start("d", round_number=3, state="s3", alive={"d"})  # cut off: proposes alone
    for peer in "abc":
        net.start(peer, round_number=4, state="s4", alive={"a", "b", "c", "d"})
    net.deliver()
    resyncs = net.of("d", Resync)
    # a majority of the others the proposals name (d never vouches for itself)
    assert resyncs and resyncs[0].round == 4 and resyncs[0].state == "s4" and len(resyncs[0].sources) >= 2


def test_messages_of_another_job_or_an_old_round_change_nothing():
    net = started(["a", "b"])
    machine = net.machines["a"]
    before = machine.phase
    other = RoundAgreement("b", "j2", CONFIG)
    for effect in other.start(3, "s3", (), {"a", "b"}, 0.0):
        assert machine.receive(effect.message, 0.0) == []
    old = RoundAgreement("b", "j1", CONFIG)
    for effect in old.start(2, "s2", (), {"a", "b"}, 0.0):
        answer = machine.receive(effect.message, 0.0)  # at most: where this peer is, so that b can resync
        assert all(isinstance(e, Send) and e.to == "b" and e.message.key.round == 3 for e in answer)
    assert machine.phase is before


@pytest.mark.parametrize("field, value", [("propose_timeout_s", 0), ("report_timeout_s", -1.0),
                                          ("propose_timeout_s", True), ("quorum_fraction", 1.0)])  # fmt: skip
def test_bad_agreement_settings_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        AgreementConfig(**{field: value})


def test_a_slow_peer_that_hears_the_majority_before_its_own_update_commits_with_them():
    net = started(["a", "b", "c"])
    for peer in "ab":  # a and b finish first; c is still working when their reports come
        net.apply(peer, net.machines[peer].updated("s4", net.now))
    net.deliver()
    assert net.of("a", Committed) and net.of("b", Committed)
    assert not net.of("c", Resync) and net.machines["c"].phase is AgreementPhase.WORKING
    net.apply("c", net.machines["c"].updated("s4", net.now))
    assert net.of("c", Committed) and not net.of("c", Resync)


def test_the_next_rounds_proposals_before_the_reports_commit_the_vote_and_are_kept_for_the_next_round():
    net = started(["a", "b", "c"])
    lost_reports = lambda sender, to, message: to == "c" and isinstance(message, Report)  # noqa: E731
    net.drop = lost_reports
    for peer in "ab":
        net.apply(peer, net.machines[peer].updated("s4", net.now))
    net.deliver()
    for peer in "ab":  # a and b go on to round 4 while c still works on round 3
        net.start(peer, round_number=4, state="s4")
    net.deliver()
    net.apply("c", net.machines["c"].updated("s4", net.now))
    assert net.of("c", Committed) and not net.of("c", Resync)
    net.drop = lambda sender, to, message: False
    net.start("c", round_number=4, state="s4")  # the held proposals of round 4 count at once
    net.deliver()
    assert all(net.of(peer, Agreed)[-1].key.round == 4 for peer in "abc")


def test_a_member_not_running_the_job_stalls_no_round_and_is_taken_in_once_it_proposes():
    net = Net(["a", "b", "c", "d"])
    for peer in "abc":  # d is alive but has not started the job
        net.start(peer, previous=("a", "b", "c"), alive={"a", "b", "c", "d"})
    net.deliver()
    assert all(net.of(p, Agreed)[-1].key.participants == ("a", "b", "c") for p in "abc")  # no timeout waited
    assert net.now == 0.0


def test_a_peer_behind_hears_where_the_others_are_and_resyncs():
    net = Net(["a", "b", "c", "d"])
    for peer in "abc":
        net.start(peer, round_number=9, state="s9", previous=("a", "b", "c"), alive={"a", "b", "c", "d"})
    net.deliver()
    net.start("d", round_number=2, state="s2", previous=("a", "b", "c", "d"), alive={"a", "b", "c", "d"})
    net.deliver()  # d proposes round 2; each of the others answers with its round 9 proposal
    resyncs = net.of("d", Resync)
    assert resyncs and resyncs[0].round == 9 and resyncs[0].state == "s9" and len(resyncs[0].sources) >= 2


def test_a_restarted_peer_behind_peers_that_went_on_without_it_keeps_asking_them_until_it_resyncs():
    """make demo, once in five: node2, SIGKILLed and restarted, resumed a
    round behind; the two others, which had dropped it, answered its first
    proposal each from another round (they run 30 rounds a second), so no
    majority vouched for one; then they were silent through its attempt,
    and its next proposals, of itself alone below quorum, went to nobody."""
    net = Net(["a", "b", "c"])
    for peer in "ab":
        net.start(peer, round_number=9, state="s9", previous=("a", "b"), alive={"a", "b"})
    net.deliver()
    net.drop = lambda sender, to, message: sender == "c" and to == "b"
    net.start("c", round_number=2, state="s2", previous=("a", "b", "c"))
    net.deliver()  # a answers from round 9
    net.drop = lambda sender, to, message: False
    for peer in "ab":  # they went on meanwhile
        net.start(peer, round_number=10, state="s10", previous=("a", "b"), alive={"a", "b"})
    net.deliver()
    assert not net.of("c", Resync) and not net.of("a", Agreed)[-1].key.participants.count("c")
    net.advance(4 * CONFIG.propose_timeout_s)
    resyncs = net.of("c", Resync)
    assert resyncs and (resyncs[0].round, resyncs[0].state, resyncs[0].sources) == (10, "s10", ("a", "b"))


def test_a_peer_astray_at_the_same_round_resyncs_to_the_majority():
    net = Net(["a", "b", "c"])
    for peer in "ab":
        net.start(peer, state="s3", previous=("a", "b", "c"))
    net.start("c", state="bad", previous=("a", "b", "c"))
    net.deliver()
    resyncs = net.of("c", Resync)
    assert resyncs and resyncs[0].round == 3 and resyncs[0].state == "s3"
    net.advance(CONFIG.propose_timeout_s + 1)  # a and b give up on c and go on
    assert all(net.of(p, Agreed)[-1].key.participants == ("a", "b") for p in "ab")


def test_a_peer_that_committed_tells_one_behind_the_round_it_is_at_now():
    net = started(["a", "b", "c"], previous=("a", "b", "c"))
    net.update_all()
    assert all(net.of(p, Committed) for p in "abc")
    late = RoundAgreement("d", "j1", CONFIG)
    (hello,) = [e for e in late.start(1, "s1", ("a", "b", "c"), {"a", "b", "c"}, 0.0)
                if isinstance(e, Send) and e.to == "a"]  # fmt: skip
    answer = net.machines["a"].receive(hello.message, 0.0)
    assert [(e.message.key.round, e.message.state) for e in answer] == [(4, "s4")]  # committed round 3: at 4 now


def test_round_zero_needs_a_majority_of_the_members_the_job_was_given_to():
    net = Net(["a", "b", "c"])
    net.start("a", round_number=0, state="s0", previous=("a", "b", "c"))  # b and c have not started the job yet
    net.advance(CONFIG.propose_timeout_s * 3)
    assert not net.of("a", Agreed) and net.of("a", WaitingForQuorum)  # alone, it trains nothing


def test_a_member_declared_dead_that_rejoins_takes_part_again():
    net = Net(["a", "b"])
    net.start("a", previous=("a", "b"))  # b has not proposed yet
    net.kill("b")  # a false suspicion: b is declared dead, then rejoins
    net.dead.discard("b")
    assert net.of("a", WaitingForQuorum)  # alone, a has no quorum of the last round's two
    net.machines["a"].view({"a", "b"})
    net.start("b", previous=("a", "b"))
    net.advance(CONFIG.propose_timeout_s + 1)
    assert net.of("a", Agreed)[-1].key.participants == ("a", "b")


def test_peers_whose_timeouts_are_skewed_agree_without_a_silent_member_and_never_livelock():
    """b starts later, so a gives up on the silent c first; b, caught up in a's
    newer attempts, still counts c's silence from when it first expected it."""
    net = Net(["a", "b", "c"])
    net.start("a")
    net.now = 0.5
    net.start("b")
    net.deliver()
    net.advance(4.0, step=0.25)
    agreed = {p: net.of(p, Agreed)[-1].key for p in "ab"}
    assert agreed["a"] == agreed["b"] and agreed["a"].participants == ("a", "b")
    assert agreed["a"].attempt < 10


def test_a_peer_that_missed_the_reports_hears_them_from_their_reporters_each_in_its_own_name():
    """a and b committed; c, whose exchange failed before their reports
    reached it, proposes again: each of a and b answers with its own report
    (the transport takes no message in another's name), and c learns that a
    majority committed s4 without it: it takes version 4 from them."""
    net = started(["a", "b", "c"])
    net.drop = lambda sender, to, message: to == "c" and isinstance(message, Report)
    net.apply("a", net.machines["a"].updated("s4", net.now))
    net.apply("b", net.machines["b"].updated("s4", net.now))
    net.deliver()
    assert net.of("a", Committed) and net.of("b", Committed)
    net.drop = lambda sender, to, message: False
    net.apply("c", net.machines["c"].work_failed("the all-gather misses shard 0", net.now))
    net.deliver()
    assert [(e.round, e.state, e.sources) for e in net.of("c", Resync)] == [(4, "s4", ("a", "b"))]


def test_a_peer_behind_never_agrees_an_attempt_the_others_left_without_it():
    """Some of the others include a joiner in attempt 0 (it proposed the
    last round with their state), then go on without it (it is behind,
    fetching their state). Unless they tell it that they left, it keeps
    their last proposals naming it, and on taking their state agrees that
    attempt alone: it computes for nothing while they finish the round, and
    chases them round after round (seen with an 11.7M-parameter job: 28
    fetches before it took part)."""
    net = Net(["a", "b", "c", "d"])
    everyone = {"a", "b", "c", "d"}
    for peer in "ac":  # they heard d propose the last round with their state
        net.start(peer, round_number=13, state="s13", previous=(), alive=everyone)
    net.start("b", round_number=13, state="s13", previous=("a", "b", "c"), alive=everyone)
    net.start("d", round_number=12, state="s12", previous=("a", "b", "c"), alive=everyone)
    net.deliver()
    net.advance(CONFIG.propose_timeout_s + 1)  # d says nothing of round 13: the others go on without it
    theirs = {net.of(p, Agreed)[-1].key for p in "abc"}
    assert len(theirs) == 1 and next(iter(theirs)).participants == ("a", "b", "c")
    assert net.of("d", Resync)  # told where they are
    net.start("d", round_number=13, state="s13", previous=("a", "b", "c"), alive=everyone)  # it took their state
    net.deliver()
    assert not [e.key for e in net.of("d", Agreed) if e.key not in theirs]


def test_a_peer_declared_dead_by_mistake_still_hears_of_the_later_attempt():
    """d, behind and fetching, holds the others' attempt-0 proposals naming
    it; they declare it dead (it was busy, not dead) and agree attempt 1
    without it, then see it alive again while they work. Had they not told
    it of attempt 1 (a peer held dead was left out of those told), it would
    agree attempt 0 alone on taking their state, and chase them."""
    net = Net(["a", "b", "c", "d"])
    everyone = {"a", "b", "c", "d"}
    previous = ("a", "b", "c", "d")
    for peer in "abc":
        net.start(peer, round_number=13, state="s13", previous=previous, alive=everyone)
    net.start("d", round_number=12, state="s12", previous=previous, alive=everyone)
    net.deliver()
    for peer in "abc":
        net.apply(peer, net.machines[peer].member_dead("d", net.now))
    net.deliver()
    theirs = {net.of(p, Agreed)[-1].key for p in "abc"}
    assert len(theirs) == 1 and next(iter(theirs)).participants == ("a", "b", "c")
    for peer in "abc":
        net.machines[peer].view(everyone)  # alive again, while they work
    net.start("d", round_number=13, state="s13", previous=previous, alive=everyone)  # it took their state
    net.deliver()
    assert not [e.key for e in net.of("d", Agreed) if e.key not in theirs]


def test_a_peer_that_proposed_with_our_state_then_went_silent_is_left_out():
    """c proposed attempt 0 with the others' state, then hangs (alive to
    membership, silent). It was never expected again, so the others waited
    on it in every later attempt until the round's own timeout."""
    net = started(["a", "b", "c"])
    assert net.of("a", Agreed)[-1].key.participants == ("a", "b", "c")
    net.drop = lambda sender, to, message: "c" in (sender, to)  # hung
    for peer in "ab":  # a stream of c's never came
        net.apply(peer, net.machines[peer].work_failed("c's part did not come", net.now))
    net.deliver()
    net.advance(3 * CONFIG.propose_timeout_s)
    for peer in "ab":
        assert net.of(peer, Agreed)[-1].key.participants == ("a", "b"), net.machines[peer].phase
