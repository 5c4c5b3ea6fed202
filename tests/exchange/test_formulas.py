"""The round's arithmetic, against hand-computed tables."""

from __future__ import annotations

import pytest

from spirtd.exchange.formulas import (
    adaptive_deadline_s,
    donor_order,
    exchange_bytes,
    minibatch_slots,
    percentile,
    quorum,
    ranked,
    shard_bounds,
    shard_owner,
)


@pytest.mark.parametrize(
    "n, k, want",
    [
        (10, 1, [(0, 10)]),
        (10, 3, [(0, 4), (4, 7), (7, 10)]),
        (9, 3, [(0, 3), (3, 6), (6, 9)]),
        (2, 4, [(0, 1), (1, 2), (2, 2), (2, 2)]),
        (0, 2, [(0, 0), (0, 0)]),
    ],
)
def test_shard_bounds_cover_the_vector_in_near_equal_parts(n, k, want):
    assert shard_bounds(n, k) == want


def test_shard_bounds_refuse_nonsense():
    with pytest.raises(ValueError):
        shard_bounds(10, 0)


@pytest.mark.parametrize(
    "shard, gone, want",
    [
        (0, (), "a"),
        (2, (), "c"),
        (1, {"b"}, "c"),
        (2, {"c"}, "a"),  # wraps around
        (1, {"b", "c"}, "a"),
        (0, {"x"}, "a"),  # not a participant: changes nothing
    ],
)
def test_a_gone_owners_shard_goes_to_the_next_participant(shard, gone, want):
    assert shard_owner(shard, ["c", "a", "b"], gone) == want


def test_every_shard_needs_someone_left():
    with pytest.raises(ValueError, match="every participant is gone"):
        shard_owner(0, ["a", "b"], {"a", "b"})


def test_ranks_are_the_sorted_ids():
    assert ranked({"peer10", "peer2", "peer1"}) == ("peer1", "peer10", "peer2")


@pytest.mark.parametrize("n, fraction, want", [(1, 0.5, 1), (2, 0.5, 2), (3, 0.5, 2), (4, 0.5, 3), (5, 0.5, 3),
                                               (4, 0.0, 1), (4, 0.75, 4), (10, 0.66, 7)])  # fmt: skip
def test_quorum_is_more_than_the_fraction(n, fraction, want):
    assert quorum(n, fraction) == want


def test_two_sides_of_a_partition_never_both_reach_a_majority():
    for n in range(1, 12):
        for side in range(n + 1):
            assert not (side >= quorum(n) and n - side >= quorum(n))


def test_participants_take_consecutive_runs_of_minibatches_each_once():
    # 3 peers, 2 each, epochs of 5 minibatches, the round starting at 4
    slots = [minibatch_slots(4, 5, rank, 2) for rank in range(3)]
    assert slots == [[(0, 4), (1, 0)], [(1, 1), (1, 2)], [(1, 3), (1, 4)]]
    flat = [s for per_peer in slots for s in per_peer]
    assert len(set(flat)) == len(flat)


@pytest.mark.parametrize("n, m, want", [(1, 100, 0), (2, 100, 400), (4, 100, 600), (3, 10, 54), (4, 11_700_000, 70_200_000)])
def test_exchange_bytes_are_two_n_minus_one_over_n_of_the_vector(n, m, want):
    assert exchange_bytes(n, m) == want


@pytest.mark.parametrize("values, q, want", [([3.0], 95, 3.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
                                             ([4.0, 1.0, 3.0, 2.0], 100, 4.0), ([0.0, 10.0], 95, 9.5)])  # fmt: skip
def test_percentile_interpolates_between_ranks(values, q, want):
    assert percentile(values, q) == pytest.approx(want)


@pytest.mark.parametrize(
    "arrivals, want",
    [
        ([], 60.0),  # nothing seen yet: the ceiling
        ([1.0, 1.2, 1.1, 0.9], 3.0 * percentile([1.0, 1.2, 1.1, 0.9], 95)),
        ([0.01, 0.02], 0.5),  # the floor
        ([100.0], 60.0),  # the ceiling
    ],
)
def test_the_deadline_follows_observed_arrivals_within_bounds(arrivals, want):
    assert adaptive_deadline_s(arrivals, multiple=3.0, q=95, floor_s=0.5, ceiling_s=60.0) == pytest.approx(want)


@pytest.mark.parametrize("sources, me, want", [
    ((), "j", []),
    (("j",), "j", []),
    (("a", "b", "a"), "a", ["b"]),
])  # fmt: skip
def test_a_donor_order_names_every_other_source_once(sources, me, want):
    assert donor_order(sources, me) == want


def test_donor_orders_are_rotations_of_the_sorted_sources_and_spread_joiners():
    sources = ("n3", "n1", "n2")
    orders = {me: donor_order(sources, me) for me in (f"joiner{i}" for i in range(12))}
    rotations = [["n1", "n2", "n3"], ["n2", "n3", "n1"], ["n3", "n1", "n2"]]
    assert all(order in rotations for order in orders.values())
    assert orders == {me: donor_order(sources, me) for me in orders}  # the same at every call, on every peer
    assert {order[0] for order in orders.values()} == {"n1", "n2", "n3"}  # twelve joiners: every donor serves some
