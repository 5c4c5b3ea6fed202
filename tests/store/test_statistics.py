"""Whole-vector statistics in every computing backend, for vectors sharded
by columns across stores: statistic() of each shard sums to the whole
vectors' statistic, and aggregate() of each shard given the summed
statistic chooses what the whole vectors' aggregation chooses and writes,
concatenated, exactly its values. Refusals are the same on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from spirtd import aggregation
from spirtd.aggregation import Statistic
from spirtd.errors import AggregationError, TensorNotFound, WrongType

DIST = Statistic.PAIRWISE_SQUARED_DISTANCES
KRUM_CASES = [("krum", {"f": 1}), ("multikrum", {"f": 1}), ("multikrum", {"f": 2, "m": 2})]


def shards(rng: np.random.Generator, d: int, count: int) -> list[slice]:
    """count contiguous, non-empty column ranges covering 0..d."""
    bounds = np.sort(rng.choice(np.arange(1, d), size=count - 1, replace=False)).tolist()
    edges = [0, *bounds, d]
    return [slice(a, b) for a, b in zip(edges, edges[1:])]


def inputs(rng: np.random.Generator, n: int, d: int, dtype) -> list[np.ndarray]:
    """Around a common centre at distinct spreads: Krum's scores are far from ties."""
    centre = rng.standard_normal(d)
    return [(centre + (1 + 0.37 * k) * rng.standard_normal(d)).astype(dtype) for k in range(n)]


async def put(store, prefix: str, xs: list[np.ndarray]) -> list[str]:
    keys = [f"{prefix}{k}" for k in range(len(xs))]
    for key, x in zip(keys, xs):
        await store.set(key, x)
    return keys


@pytest.mark.parametrize("count", [2, 3, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shard_statistics_sum_to_the_whole(computing_stores, count, dtype):
    rng = np.random.default_rng(count)
    xs = inputs(rng, 6, 301, dtype)
    cuts = shards(rng, 301, count)

    async def body(store):
        whole = await store.statistic(DIST, await put(store, "x:", xs))
        parts = [await store.statistic(DIST, await put(store, f"s{j}:", [x[c] for x in xs]))
                 for j, c in enumerate(cuts)]  # fmt: skip
        return whole, parts

    whole, parts = computing_stores.run(body)
    assert whole.dtype == np.float64 and whole.shape == (6, 6) and not whole.flags.writeable
    np.testing.assert_allclose(whole, aggregation.statistic(DIST, xs), rtol=1e-12)
    np.testing.assert_allclose(sum(parts), whole, rtol=1e-12)


@pytest.mark.parametrize("rule, options", KRUM_CASES, ids=str)
@pytest.mark.parametrize("count", [2, 3, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shards_given_the_summed_statistic_aggregate_like_the_whole(
    computing_stores, rule, options, count, dtype
):
    rng = np.random.default_rng(10 + count)
    xs = inputs(rng, 8, 257, dtype)
    cuts = shards(rng, 257, count)

    async def body(store):
        chosen = await store.aggregate("whole", rule, await put(store, "x:", xs), **options)
        shard_keys = [await put(store, f"s{j}:", [x[c] for x in xs]) for j, c in enumerate(cuts)]
        given = {DIST: sum([await store.statistic(DIST, keys) for keys in shard_keys])}
        picks, values = [], []
        for j, keys in enumerate(shard_keys):
            picks.append(await store.aggregate(f"d{j}", rule, keys, given=given, **options))
            values.append(await store.get(f"d{j}"))
        return chosen, await store.get("whole"), picks, values

    chosen, whole, picks, values = computing_stores.run(body)
    assert chosen == aggregation.aggregate(rule, xs, **options).selected
    assert all(pick == chosen for pick in picks)
    assert np.concatenate(values).tobytes() == whole.tobytes()


def test_big_shards_on_the_worker_threads(computing_stores):
    """Shards big enough for the native module's threads and its distance
    slices."""
    rng = np.random.default_rng(5)
    xs = inputs(rng, 5, 400_003, np.float32)
    cuts = shards(rng, 400_003, 3)

    async def body(store):
        chosen = await store.aggregate("whole", "multikrum", await put(store, "x:", xs), f=1)
        shard_keys = [await put(store, f"s{j}:", [x[c] for x in xs]) for j, c in enumerate(cuts)]
        given = {DIST: sum([await store.statistic(DIST, keys) for keys in shard_keys])}
        picks = [await store.aggregate(f"d{j}", "multikrum", keys, f=1, given=given)
                 for j, keys in enumerate(shard_keys)]  # fmt: skip
        values = [await store.get(f"d{j}") for j in range(len(cuts))]
        return chosen, await store.get("whole"), picks, values

    chosen, whole, picks, values = computing_stores.run(body)
    assert all(pick == chosen for pick in picks)
    assert np.concatenate(values).tobytes() == whole.tobytes()


def test_the_given_statistic_decides_the_selection(computing_stores):
    xs = inputs(np.random.default_rng(3), 5, 16, np.float32)
    dist = np.full((5, 5), 100.0)
    dist[3, :] = dist[:, 3] = 1.0
    np.fill_diagonal(dist, 0.0)

    async def body(store):
        chosen = await store.aggregate("d", "krum", await put(store, "x:", xs), f=1, given={DIST: dist})
        return chosen, await store.get("d"), await store.keys_matching("*")

    chosen, value, keys = computing_stores.run(body)
    assert chosen == (3,) and value.tobytes() == xs[3].tobytes()
    assert not [key for key in keys if ":spirt-" in key]  # no given or selected left behind


GOOD = np.ones((3, 3)) - np.eye(3)


@pytest.mark.parametrize(
    "rule, options, given, words",
    [
        ("krum", {"f": 0}, {DIST: np.ones((2, 2))}, r"must have shape \(3, 3\) for 3 inputs"),
        ("krum", {"f": 0}, {DIST: np.full((3, 3), np.inf)}, "must be finite"),
        ("mean", {}, {DIST: GOOD}, "rule mean needs no whole-vector statistic"),
        ("median", {}, {DIST: GOOD}, "rule median needs no whole-vector statistic"),
        ("krum", {"f": 0}, {"pairwise_squared_distances": GOOD}, "unknown statistic"),
    ],
    ids=["wrong-size", "not-finite", "mean", "median", "not-a-statistic"],
)
def test_bad_given_raises_and_leaves_dst_alone(computing_stores, rule, options, given, words):
    async def body(store):
        await store.set("out", np.full(4, 7, dtype=np.float32))
        keys = await put(store, "in:", [np.full(4, k, np.float32) for k in range(3)])
        with pytest.raises(AggregationError, match=words):
            await store.aggregate("out", rule, keys, given=given, **options)
        return await store.get("out")

    np.testing.assert_array_equal(computing_stores.run(body), np.full(4, 7, dtype=np.float32))


@pytest.mark.parametrize(
    "setup, stat, error, words",
    [
        ("missing", DIST, TensorNotFound, "in:1"),
        ("wrongtype", DIST, WrongType, "in:1"),
        ("shape", DIST, AggregationError, "in:1"),
        ("dtype", DIST, AggregationError, "in:1"),
        ("nan", DIST, AggregationError, "in:1.*non-finite"),
        ("overflow", DIST, AggregationError, "overflowed"),
        ("ok", "pairwise_squared_distances", AggregationError, "unknown statistic"),
    ],
)
def test_statistic_refuses_bad_inputs(computing_stores, setup, stat, error, words):
    good = np.ones(4, dtype=np.float64)
    second = {
        "shape": np.ones(5), "dtype": np.ones(4, np.float32), "nan": np.array([1, np.nan, 1, 1]),
        "overflow": np.full(4, -1e308), "ok": good,
    }  # fmt: skip

    async def body(store):
        await store.set("in:0", np.full(4, 1e308) if setup == "overflow" else good)
        await store.set("in:2", good)
        if setup == "wrongtype":
            await store.client.set("in:1", "not a tensor")
        elif setup in second:
            await store.set("in:1", second[setup])
        with pytest.raises(error, match=words):
            await store.statistic(stat, ["in:0", "in:1", "in:2"])

    computing_stores.run(body)
