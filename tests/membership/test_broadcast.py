"""The piggyback queue: limits, replacement, order."""

from __future__ import annotations

from spirtd.membership.broadcast import BroadcastQueue
from spirtd.membership.messages import Alive, Dead, Suspect


def test_broadcast_sent_limit_times_then_dropped():
    q = BroadcastQueue()
    q.push(Alive("a", "x", 1))
    for _ in range(3):
        assert q.take(limit=3, max_items=10) == (Alive("a", "x", 1),)
    assert q.take(limit=3, max_items=10) == ()
    assert len(q) == 0


def test_broadcast_newer_update_replaces_older_about_same_member():
    q = BroadcastQueue()
    q.push(Alive("a", "x", 1))
    q.take(limit=4, max_items=10)
    q.push(Suspect("a", 1, "b"))
    assert q.pending() == {"a": (Suspect("a", 1, "b"), 0)}
    q.push(Dead("a", 1, "b"))
    assert q.take(limit=4, max_items=10) == (Dead("a", 1, "b"),)


def test_broadcast_fewest_sent_first_then_newest():
    q = BroadcastQueue()
    q.push(Alive("a", "x", 1))
    q.push(Alive("b", "x", 1))
    assert q.take(limit=10, max_items=1) == (Alive("b", "x", 1),)  # newest among unsent
    q.push(Alive("c", "x", 1))
    # a and c unsent (c newer), b sent once
    assert q.take(limit=10, max_items=2) == (Alive("c", "x", 1), Alive("a", "x", 1))
    # all sent once now: newest first
    assert q.take(limit=10, max_items=3) == (Alive("c", "x", 1), Alive("b", "x", 1), Alive("a", "x", 1))


def test_broadcast_max_items_and_empty():
    q = BroadcastQueue()
    assert q.take(limit=3, max_items=5) == ()
    for name in "abcdef":
        q.push(Alive(name, "x", 0))
    assert len(q.take(limit=3, max_items=4)) == 4
    assert q.take(limit=3, max_items=0) == ()
    assert {key: sent for key, (_, sent) in q.pending().items()} == {
        "a": 0, "b": 0, "c": 1, "d": 1, "e": 1, "f": 1,
    }
