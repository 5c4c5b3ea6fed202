"""Whole-vector statistics for inputs sharded by columns: the statistic of
the whole inputs is the sum of the shards' statistics, and a rule given the
summed statistic on each shard does, shard by shard, exactly what it does
on the whole inputs. Every given statistic is checked the same way, for
every rule (Rule.needs), and refused in words."""

from __future__ import annotations

import numpy as np
import pytest

from spirtd.aggregation import RULES, Statistic, aggregate, statistic
from spirtd.aggregation import statistics
from spirtd.errors import AggregationError
from tests.aggregation.rule_cases import RULE_CASES

DIST = Statistic.PAIRWISE_SQUARED_DISTANCES
NEEDING = [case for case in RULE_CASES if RULES[case.rule].needs]
NOT_NEEDING = [case for case in RULE_CASES if not RULES[case.rule].needs]


def shards(rng: np.random.Generator, d: int, count: int) -> list[slice]:
    """count contiguous, non-empty column ranges covering 0..d."""
    bounds = np.sort(rng.choice(np.arange(1, d), size=count - 1, replace=False)).tolist()
    edges = [0, *bounds, d]
    return [slice(a, b) for a, b in zip(edges, edges[1:])]


def inputs(rng: np.random.Generator, n: int, d: int, dtype) -> list[np.ndarray]:
    centre = rng.standard_normal(d)
    return [(centre + (1 + 0.37 * k) * rng.standard_normal(d)).astype(dtype) for k in range(n)]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("count", [2, 3, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shard_statistics_sum_to_the_whole(seed, count, dtype):
    rng = np.random.default_rng(seed)
    xs = inputs(rng, 6, 50, dtype)
    parts = [statistic(DIST, [x[c] for x in xs]) for c in shards(rng, 50, count)]
    np.testing.assert_allclose(sum(parts), statistic(DIST, xs), rtol=1e-12)


@pytest.mark.parametrize("case", NEEDING, ids=str)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("count", [2, 3, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shards_with_the_summed_statistic_aggregate_like_the_whole(case, seed, count, dtype):
    rng = np.random.default_rng(seed)
    n = case.min_inputs + 2
    xs = inputs(rng, n, 61, dtype)
    whole = aggregate(case.rule, xs, **case.options())
    cuts = shards(rng, 61, count)
    given = {DIST: sum(statistic(DIST, [x[c] for x in xs]) for c in cuts)}
    outs = [aggregate(case.rule, [x[c] for x in xs], given=given, **case.options()) for c in cuts]
    assert all(out.selected == whole.selected for out in outs)
    assert np.concatenate([out.value for out in outs]).tobytes() == whole.value.tobytes()


def test_given_distances_decide_the_selection():
    xs = inputs(np.random.default_rng(1), 5, 8, np.float64)
    dist = np.full((5, 5), 100.0)
    dist[3, :] = dist[:, 3] = 1.0
    np.fill_diagonal(dist, 0.0)
    out = aggregate("krum", xs, f=1, given={DIST: dist})
    assert out.selected == (3,) and out.value.tobytes() == xs[3].tobytes()


def test_given_none_or_empty_computes_the_statistic():
    xs = inputs(np.random.default_rng(2), 5, 8, np.float32)
    plain = aggregate("multikrum", xs, f=1)
    for given in (None, {}):
        out = aggregate("multikrum", xs, f=1, given=given)
        assert out.selected == plain.selected and out.value.tobytes() == plain.value.tobytes()


def test_statistic_of_one_input_is_zero():
    assert statistic(DIST, [np.arange(3.0)]).tolist() == [[0.0]]


def test_given_statistic_is_not_modified():
    xs = inputs(np.random.default_rng(3), 5, 8, np.float64)
    dist = statistic(DIST, xs)
    before = dist.copy()
    aggregate("krum", xs, f=1, given={DIST: dist})
    assert (dist == before).all()


# ---- errors ----

GOOD = np.ones((5, 5)) - np.eye(5)
X5 = [np.zeros(3), np.ones(3), np.full(3, 2.0), np.full(3, 3.0), np.full(3, 4.0)]


@pytest.mark.parametrize("case", NOT_NEEDING, ids=str)
def test_a_statistic_given_to_a_rule_that_does_not_need_it_is_refused(case):
    with pytest.raises(AggregationError, match=f"^rule {case.rule} needs no whole-vector statistic"):
        aggregate(case.rule, X5, given={DIST: GOOD}, **case.options([1.0] * 5))


@pytest.mark.parametrize(
    "given, message",
    [
        ({DIST: np.ones((4, 4))},
         r"given pairwise_squared_distances must have shape \(5, 5\) for 5 inputs; got \(4, 4\)"),
        ({DIST: np.ones(25)}, r"must have shape \(5, 5\) for 5 inputs; got \(25,\)"),
        ({DIST: np.where(np.eye(5) > 0, 0, np.inf)}, "given pairwise_squared_distances must be finite"),
        ({DIST: np.full((5, 5), np.nan)}, "must be finite"),
        ({DIST: np.full((5, 5), "x")}, "must hold numbers, got dtype <U1"),
        ({"pairwise_squared_distances": GOOD},
         "unknown statistic 'pairwise_squared_distances'; known statistics: pairwise_squared_distances"),
        ([(DIST, GOOD)], "given must map a Statistic to its value, not list"),
    ],
    ids=["size", "flat", "inf", "nan", "text", "name-not-enum", "not-a-mapping"],
)  # fmt: skip
def test_bad_given_statistics_are_refused(given, message):
    with pytest.raises(AggregationError, match=message):
        aggregate("krum", X5, f=1, given=given)


@pytest.mark.parametrize(
    "stat, xs, message",
    [
        (DIST, [], "pairwise_squared_distances needs at least one input; got 0"),
        (DIST, [np.zeros(2)] * (statistics.MAX_INPUTS + 1),
         f"compares every pair of inputs and takes at most {statistics.MAX_INPUTS}; got 1025"),
        ("pairwise", X5, "unknown statistic 'pairwise'"),
        (DIST, [np.zeros(3), np.zeros(4)], r"input 1 has shape \(4,\) but input 0 has \(3,\)"),
        (DIST, [np.zeros(3), np.zeros(3, np.float32)], "input 1 has dtype float32 but input 0 has float64"),
        (DIST, [np.zeros(3, np.int32)] * 2, "aggregation needs float32 or float64"),
        (DIST, [np.zeros(3), np.array([0, np.nan, 0])], "input 1 has a non-finite value at element 1"),
        (DIST, [np.array([1e308]), np.array([-1e308])], "pairwise_squared_distances overflowed"),
    ],
    ids=["none", "too-many", "unknown", "shape", "dtype", "int", "nan", "overflow"],
)  # fmt: skip
def test_statistic_refuses_what_cannot_be_computed(stat, xs, message):
    with pytest.raises(AggregationError, match=message):
        statistic(stat, xs)
