"""The SWIM rules: every transition of another member's state, refutation,
suspicion timeouts with Lifeguard confirmations, leave, expel, forgetting."""

from __future__ import annotations

import math

import pytest

from spirtd.errors import MembershipError
from spirtd.membership import Alive, Dead, Gossip, Leave, Member, MemberState, Ping, Snapshot, Suspect

from .helpers import ME, kinds, make_state, peers, view

A, S, D, L = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT


# what we know of b (None: nothing), the update, what we know after, events
TRANSITIONS = [
    ("alive: higher alive", (A, 1), Alive("b", "addr-b", 2), (A, 2), []),
    ("alive: higher alive, new meta", (A, 1), Alive("b", "addr-b", 2, {"v": "2"}), (A, 2), ["update"]),
    ("alive: higher alive, new address", (A, 1), Alive("b", "other", 2), (A, 2), ["update"]),
    ("alive: same alive", (A, 1), Alive("b", "other", 1), (A, 1), []),
    ("alive: stale alive", (A, 1), Alive("b", "addr-b", 0), (A, 1), []),
    ("alive: suspect", (A, 1), Suspect("b", 1, "c"), (S, 1), ["suspect"]),
    ("alive: suspect, higher", (A, 1), Suspect("b", 3, "c"), (S, 3), ["suspect"]),
    ("alive: stale suspect", (A, 1), Suspect("b", 0, "c"), (A, 1), []),
    ("alive: dead", (A, 1), Dead("b", 1, "c"), (D, 1), ["dead"]),
    ("alive: dead from itself is a leave", (A, 1), Dead("b", 1, "b"), (L, 1), ["leave"]),
    ("alive: stale dead", (A, 1), Dead("b", 0, "c"), (A, 1), []),
    ("suspect: same alive", (S, 1), Alive("b", "addr-b", 1), (S, 1), []),
    ("suspect: refuted", (S, 1), Alive("b", "addr-b", 2), (A, 2), ["alive"]),
    ("suspect: dead", (S, 1), Dead("b", 1, "c"), (D, 1), ["dead"]),
    ("suspect: leave", (S, 1), Dead("b", 1, "b"), (L, 1), ["leave"]),
    ("suspect: confirmed", (S, 1), Suspect("b", 1, "c"), (S, 1), []),
    ("suspect: stale dead", (S, 1), Dead("b", 0, "c"), (S, 1), []),
    ("dead: same alive", (D, 1), Alive("b", "addr-b", 1), (D, 1), []),
    ("dead: rejoin", (D, 1), Alive("b", "addr-b", 2), (A, 2), ["join"]),
    ("dead: suspect", (D, 1), Suspect("b", 1, "c"), (D, 1), []),
    ("dead: higher suspect", (D, 1), Suspect("b", 2, "c"), (D, 1), []),
    ("dead: leave does not turn it left", (D, 1), Dead("b", 1, "b"), (D, 1), []),
    ("left: rejoin", (L, 1), Alive("b", "addr-b", 2), (A, 2), ["join"]),
    ("left: same alive", (L, 1), Alive("b", "addr-b", 1), (L, 1), []),
    ("left: dead", (L, 1), Dead("b", 4, "c"), (L, 1), []),
    ("left: suspect", (L, 1), Suspect("b", 5, "c"), (L, 1), []),
    ("unknown: alive", None, Alive("b", "addr-b", 0), (A, 0), ["join"]),
    ("unknown: suspect", None, Suspect("b", 0, "c"), None, []),
    ("unknown: dead", None, Dead("b", 0, "c"), None, []),
]


@pytest.mark.parametrize("name, before, update, after, events", TRANSITIONS, ids=[t[0] for t in TRANSITIONS])
def test_table_transition(name, before, update, after, events):
    state = make_state({"c": (A, 0), **({"b": before} if before else {})})
    state.on_gossip(Gossip("c", (update,)), now=1.0)
    assert view(state, "b") == after
    assert kinds(state) == events


def test_table_accepted_updates_are_queued_for_gossip():
    state = make_state({"b": (A, 1)})
    state.on_gossip(Gossip("c", (Dead("b", 1, "c"),)), 1.0)
    assert state.pending_updates()["b"] == (Dead("b", 1, "c"), 0)


# our incarnation before, the update about us, our incarnation after
REFUTATIONS = [
    (0, Suspect(ME, 0, "c"), 1),
    (0, Suspect(ME, 3, "c"), 4),
    (2, Suspect(ME, 2, "c"), 3),
    (0, Dead(ME, 0, "c"), 1),
    (0, Dead(ME, 0, ME), 1),  # someone says we left: we did not
    (0, Alive(ME, "elsewhere", 0), 1),  # an impostor at our incarnation
    (0, Alive(ME, "addr-me", 5), 6),
]


@pytest.mark.parametrize("before, update, after", REFUTATIONS)
def test_table_refutation_raises_incarnation(before, update, after):
    state = make_state({"c": (A, 0)}, incarnation=before)
    state.on_gossip(Gossip("c", (update,)), 1.0)
    assert state.local.incarnation == after
    assert state.local.state is A
    assert state.pending_updates()[ME] == (Alive(ME, "addr-me", after), 0)
    assert state.awareness == 1  # being accused is a sign of our own bad health
    assert state.refutations == 1


@pytest.mark.parametrize("update", [Suspect(ME, 2, "c"), Dead(ME, 1, "c"), Alive(ME, "addr-me", 3), Alive(ME, "x", 1)])
def test_table_stale_or_own_news_about_us_is_not_refuted(update):
    state = make_state({"c": (A, 0)}, incarnation=3)
    state.on_gossip(Gossip("c", (update,)), 1.0)
    assert state.local.incarnation == 3
    assert state.refutations == 0


def test_table_stale_accusation_spreads_the_newer_alive_again():
    state = make_state({"b": (A, 2), "c": (A, 0)})
    for _ in range(10):  # the Alive about b has been sent enough times
        state.gossip_plan(1.0)
    assert "b" not in state.pending_updates()
    state.on_gossip(Gossip("c", (Suspect("b", 1, "c"),)), 2.0)
    assert state.pending_updates()["b"] == (Alive("b", "addr-b", 2), 0)
    ack = state.on_ping(Ping("c", 1, ME), 2.0)  # the reply to the accuser carries it
    assert Alive("b", "addr-b", 2) in ack.updates


# n, confirmations (accusers beyond the first), seconds until dead
def _timeout(n, c):
    lo = 4 * max(1.0, math.log10(n)) * 0.25
    hi = 6 * lo
    k = 2 if n - 2 >= 2 else 0
    return lo if k == 0 else max(lo, hi - (hi - lo) * math.log(c + 1) / math.log(k + 1))


@pytest.mark.parametrize(
    "n, confirmations",
    [(8, 0), (8, 1), (8, 2), (8, 3), (32, 0), (32, 2), (3, 0)],
)
def test_table_suspicion_times_out_after_dynamic_timeout(n, confirmations):
    state = make_state(peers(n))
    t0 = 10.0
    state.on_gossip(Gossip("p2", (Suspect("p1", 0, "p2"),)), t0)
    for i in range(confirmations):
        state.on_gossip(Gossip("x", (Suspect("p1", 0, f"p{3 + i}"),)), t0 + 0.1)
    deadline = t0 + _timeout(n, confirmations)
    assert state.next_deadline() == pytest.approx(deadline)
    state.tick(deadline - 0.01)
    assert view(state, "p1") == (S, 0)
    state.tick(deadline)
    assert view(state, "p1") == (D, 0)
    assert kinds(state) == ["suspect", "dead"]
    assert state.pending_updates()["p1"] == (Dead("p1", 0, ME), 0)


def test_table_same_accuser_twice_is_one_confirmation():
    state = make_state(peers(8))
    state.on_gossip(Gossip("p2", (Suspect("p1", 0, "p2"),)), 0.0)
    first = state.next_deadline()
    state.on_gossip(Gossip("p2", (Suspect("p1", 0, "p2"),)), 0.1)
    assert state.next_deadline() == first
    state.on_gossip(Gossip("p3", (Suspect("p1", 0, "p3"),)), 0.2)
    state.on_gossip(Gossip("p3", (Suspect("p1", 0, "p3"),)), 0.3)
    assert state.next_deadline() == pytest.approx(_timeout(8, 1))


def test_table_refuted_suspicion_never_expires():
    state = make_state(peers(8))
    state.on_gossip(Gossip("p2", (Suspect("p1", 0, "p2"),)), 0.0)
    state.on_gossip(Gossip("p1", (Alive("p1", "addr-p1", 1),)), 0.5)
    state.tick(100.0)
    assert view(state, "p1") == (A, 1)
    assert kinds(state) == ["suspect", "alive"]


def test_table_leave_is_left_everywhere_and_not_refuted():
    state = make_state(peers(5))
    sends = state.leave(3.0)
    assert 1 <= len(sends) <= state.config.gossip_fanout
    assert all(out.message == Leave(ME, 0) for out in sends)
    assert len({out.to.id for out in sends}) == len(sends)
    assert state.local.state is L and state.left
    assert state.pending_updates()[ME] == (Dead(ME, 0, ME), 0)
    state.on_gossip(Gossip("p1", (Suspect(ME, 0, "p1"), Dead(ME, 0, "p1"))), 4.0)
    assert state.local.incarnation == 0 and state.local.state is L
    assert state.start_probe(4.0) is None
    assert state.leave(5.0) == ()


def test_table_on_leave_marks_left_not_dead():
    state = make_state(peers(4))
    state.on_leave(Leave("p1", 0), 1.0)
    assert view(state, "p1") == (L, 0)
    assert kinds(state) == ["leave"]


def test_table_expel_ignores_later_alives():
    state = make_state(peers(4))
    state.expel("p1", 1.0)
    assert view(state, "p1") == (D, 0)
    assert kinds(state) == ["dead"]
    state.on_gossip(Gossip("p1", (Alive("p1", "addr-p1", 99),)), 2.0)
    state.on_snapshot(Snapshot("p1", (Member("p1", "addr-p1", 100, A),)), 2.0)
    assert view(state, "p1") == (D, 0)
    state.tick(2.0 + state.config.dead_retain_s)  # forgotten, still expelled
    assert state.member("p1") is None
    state.on_gossip(Gossip("p1", (Alive("p1", "addr-p1", 101),)), 70.0)
    assert state.member("p1") is None
    assert "p1" not in {m.id for m in state.push_pull_targets(70.0)}


def test_table_expel_self_refused():
    with pytest.raises(MembershipError):
        make_state().expel(ME, 0.0)


def test_table_dead_members_forgotten_after_retention():
    state = make_state(peers(4))
    state.on_gossip(Gossip("p2", (Dead("p1", 0, "p2"), Dead("p3", 0, "p3"))), 10.0)
    retain = state.config.dead_retain_s
    assert state.next_deadline() == pytest.approx(10.0 + retain)
    state.tick(10.0 + retain - 0.001)
    assert view(state, "p1") == (D, 0) and view(state, "p3") == (L, 0)
    state.tick(10.0 + retain)
    assert state.member("p1") is None and state.member("p3") is None
    assert state.next_deadline() is None


def test_table_snapshot_merge_dead_is_only_suspected():
    state = make_state(peers(4))
    snapshot = Snapshot(
        "p2",
        (
            Member("p1", "addr-p1", 0, D),
            Member("p3", "addr-p3", 0, L),
            Member("new", "addr-new", 4, A, {"role": "worker"}),
            Member("ghost", "addr-ghost", 0, D),
        ),
    )
    state.on_snapshot(snapshot, 1.0)
    assert view(state, "p1") == (S, 0)
    assert view(state, "p3") == (L, 0)
    assert view(state, "new") == (A, 4) and state.member("new").meta == {"role": "worker"}
    assert state.member("ghost") is None
    assert sorted(kinds(state)) == ["join", "leave", "suspect"]


def test_table_snapshot_contains_everyone_we_know():
    state = make_state({"b": (A, 1), "c": (D, 2)})
    snap = state.snapshot()
    assert snap.sender == ME
    assert [(m.id, m.state, m.incarnation) for m in snap.members] == [("b", A, 1), ("c", D, 2), (ME, A, 0)]


def test_table_set_meta_raises_incarnation_and_spreads():
    state = make_state(peers(3))
    state.set_meta({"store": "native"}, 1.0)
    assert state.local.incarnation == 1 and state.local.meta == {"store": "native"}
    assert state.pending_updates()[ME] == (Alive(ME, "addr-me", 1, {"store": "native"}), 0)
