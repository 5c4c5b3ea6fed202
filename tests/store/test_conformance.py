"""One suite, every backend: what a TensorStore promises, checked on real servers.

The numpy reference implementations in spirtd.aggregation and spirtd.optim
are the oracle for the in-database work.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spirtd import aggregation, optim
from spirtd.errors import AggregationError, InvalidTensor, StoreError, TensorNotFound, WrongType
from spirtd.store import DType, TensorStore
from tests.aggregation.rule_cases import RULE_CASES

DTYPES = [np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.bool_]
EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)


def finite(dtype) -> st.SearchStrategy:
    return hnp.arrays(dtype, SHAPES, elements=st.floats(-1e3, 1e3, width=32))


def same_shape_floats(n: int, shape: tuple[int, ...], dtype) -> st.SearchStrategy:
    elems = st.floats(-100, 100, width=32)
    return st.lists(hnp.arrays(dtype, shape, elements=elems), min_size=n, max_size=n)


async def staging_keys(store: TensorStore) -> list[bytes]:
    return [k async for k in store.client.scan_iter(match="*spirt-staging*")]


# ---- tensors ----


@EXAMPLES
@given(data=st.data())
def test_store_roundtrip_every_dtype(stores, data):
    dtype = data.draw(st.sampled_from(DTYPES))
    array = data.draw(hnp.arrays(dtype, SHAPES))

    async def body(store):
        await store.set("t", array)
        return await store.get("t"), await store.meta("t")

    got, meta = stores.run(body)
    assert got.dtype == array.dtype and got.shape == array.shape
    np.testing.assert_array_equal(got, array)
    assert meta.dtype == DType.of(array.dtype) and meta.shape == array.shape


def test_store_converts_layout_and_byte_order(stores):
    array = np.arange(12, dtype=">f8").reshape(3, 4).T  # big-endian, not C-ordered

    async def body(store):
        await store.set("t", array)
        return await store.get("t")

    np.testing.assert_array_equal(stores.run(body), array)


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros(3, dtype=np.complex64), "cannot be stored"),
        (np.array(["a"], dtype=object), "cannot be stored"),
        (np.float32(1.0), "at least one dimension"),
        (np.zeros((2, 0), dtype=np.float32), "every dimension must be > 0"),
    ],
)
def test_store_set_refuses_bad_arrays_and_keeps_old_value(stores, bad, words):
    async def body(store):
        await store.set("t", np.ones(2, dtype=np.float32))
        with pytest.raises(InvalidTensor, match=words):
            await store.set("t", bad)
        return await store.get("t")

    np.testing.assert_array_equal(stores.run(body), np.ones(2, dtype=np.float32))


def test_store_get_missing_key_raises_not_found(stores):
    async def body(store):
        with pytest.raises(TensorNotFound):
            await store.get("nothing-here")
        with pytest.raises(TensorNotFound):
            await store.meta("nothing-here")

    stores.run(body)


def test_store_get_other_type_raises_wrong_type(stores):
    async def body(store):
        await store.client.lpush("a-list", "x")
        with pytest.raises(WrongType):
            await store.get("a-list")

    stores.run(body)


@EXAMPLES
@given(array=finite(np.float32), data=st.data())
def test_store_big_tensors_travel_in_pieces(stores, array, data):
    chunk = data.draw(st.integers(1, max(1, array.nbytes)))

    async def body(store):
        store.chunk_bytes = chunk
        await store.set("t", array)
        got = await store.get("t")
        return got, await staging_keys(store)

    got, leftovers = stores.run(body)
    np.testing.assert_array_equal(got, array)
    assert leftovers == []


def test_writer_appears_only_when_complete(stores):
    data = np.arange(1000, dtype=np.float32)
    raw = data.tobytes()

    async def body(store):
        async with store.writer("w", DType.FLOAT, data.shape) as w:
            for off in range(0, len(raw), 333):
                await w.write(off, raw[off : off + 333])
            assert not await store.exists("w")
        return await store.get("w"), await staging_keys(store)

    got, leftovers = stores.run(body)
    np.testing.assert_array_equal(got, data)
    assert leftovers == []


def test_writer_that_fails_changes_nothing(stores):
    class Abort(Exception):
        pass

    async def body(store):
        await store.set("w", np.ones(4, dtype=np.float32))
        with pytest.raises(Abort):
            async with store.writer("w", DType.FLOAT, (4,)) as w:
                await w.write(0, np.zeros(2, dtype=np.float32).tobytes())
                raise Abort
        return await store.get("w"), await staging_keys(store)

    got, leftovers = stores.run(body)
    np.testing.assert_array_equal(got, np.ones(4, dtype=np.float32))
    assert leftovers == []


def test_chunks_read_and_write_at_offsets(stores):
    base = np.arange(64, dtype=np.int16)

    async def body(store):
        await store.set("c", base)
        pieces = [await store.read_chunk("c", off, 16) for off in range(0, base.nbytes, 16)]
        await store.write_chunk("c", 10, b"\xff\xff")
        with pytest.raises(StoreError, match="do not fit"):
            await store.write_chunk("c", base.nbytes - 1, b"\x00\x00")
        with pytest.raises(StoreError, match="do not fit"):
            await store.read_chunk("c", base.nbytes, 1)
        return b"".join(pieces), await store.get("c")

    joined, after = stores.run(body)
    assert joined == base.tobytes()
    expected = base.copy()
    expected[5] = -1
    np.testing.assert_array_equal(after, expected)


def test_copy_makes_an_independent_tensor(stores):
    array = np.arange(6, dtype=np.float32).reshape(2, 3)

    async def body(store):
        await store.set("src", array)
        await store.set("dst", np.zeros(1, dtype=np.int8))  # replaced, whatever it held
        copied = await store.copy("src", "dst")
        await store.set("src", np.ones(2, dtype=np.float64))  # the copy does not follow
        missing = await store.copy("nothing-here", "dst")
        return copied, missing, await store.get("dst")

    copied, missing, got = stores.run(body)
    assert copied and not missing
    np.testing.assert_array_equal(got, array)
    assert got.dtype == np.float32


def test_create_makes_zeros(stores):
    async def body(store):
        await store.create("z", DType.DOUBLE, (3, 2))
        return await store.get("z")

    np.testing.assert_array_equal(stores.run(body), np.zeros((3, 2)))


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8])
def test_digest_is_sha256_of_the_bytes(stores, dtype):
    array = (np.arange(1001) % 250).astype(dtype)

    async def body(store):
        await store.set("d", array)
        return await store.digest("d")

    assert stores.run(body) == hashlib.sha256(array.tobytes()).hexdigest()


# ---- aggregation ----


def test_the_rule_cases_cover_every_registered_rule():
    """The parametrisation below comes from the registry; a hand-written
    list in its place would have to name every rule too."""
    assert {case.rule for case in RULE_CASES} == set(aggregation.RULES)
    for name, rule in aggregation.RULES.items():
        for option in rule.declared:
            assert any(option.name in case.options() for case in RULE_CASES if case.rule == name)


@pytest.mark.parametrize("case", RULE_CASES, ids=str)
@EXAMPLES
@given(data=st.data())
def test_aggregate_matches_the_numpy_reference(computing_stores, case, data):
    rule = case.rule
    n = data.draw(st.integers(case.min_inputs, case.min_inputs + 4))
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=40))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    inputs = data.draw(same_shape_floats(n, shape, dtype))
    options = case.options(data.draw(st.lists(st.floats(0.1, 5), min_size=n, max_size=n)))
    keys = [f"in:{i}" for i in range(n)]

    async def body(store):
        for key, value in zip(keys, inputs):
            await store.set(key, value)
        selected = await store.aggregate("out", rule, keys, **options)
        return await store.get("out"), selected

    got, selected = computing_stores.run(body)
    ref = aggregation.aggregate(rule, inputs, **options)
    assert got.dtype == dtype and got.shape == shape
    if ref.selected is not None and selected != ref.selected:
        # A near-tie of Krum scores may resolve differently in the last bits:
        # then both choices must score the same, and the value must follow.
        scores = krum_scores(inputs, options["f"])
        np.testing.assert_allclose(scores[list(selected)], scores[list(ref.selected)], rtol=1e-9)
        chosen = np.mean([inputs[i].astype(np.float64) for i in selected], axis=0)
        np.testing.assert_allclose(got, chosen.astype(dtype), rtol=1e-6, atol=1e-6)
    else:
        assert selected == ref.selected
        np.testing.assert_allclose(got, ref.value, rtol=1e-6, atol=1e-6)


def krum_scores(inputs: list[np.ndarray], f: int) -> np.ndarray:
    flat = np.stack([x.reshape(-1).astype(np.float64) for x in inputs])
    d = ((flat[:, None, :] - flat[None, :, :]) ** 2).sum(axis=2)
    n = len(inputs)
    return np.array([np.sort(np.delete(d[i], i))[: n - f - 2].sum() for i in range(n)])


def test_aggregate_krum_ignores_byzantine_inputs(computing_stores):
    rng = np.random.default_rng(7)
    honest = [rng.normal(1.0, 0.01, 1000).astype(np.float32) for _ in range(6)]
    byzantine = [-100 * honest[0], rng.normal(0, 1e4, 1000).astype(np.float32)]
    keys = [f"g:{i}" for i in range(8)]

    async def body(store):
        for key, value in zip(keys, honest + byzantine):
            await store.set(key, value)
        chosen = await store.aggregate("k", "multikrum", keys, f=2, m=4)
        await store.aggregate("m", "mean", keys)
        return chosen, await store.get("k"), await store.get("m")

    chosen, krum, mean = computing_stores.run(body)
    assert all(i < 6 for i in chosen)
    assert np.abs(krum - 1.0).max() < 0.05
    assert np.abs(mean - 1.0).max() > 1.0


@pytest.mark.parametrize(
    "setup, rule, options, error, words",
    [
        ("missing", "mean", {}, TensorNotFound, "in:1"),
        ("wrongtype", "mean", {}, WrongType, "in:1"),
        ("shape", "mean", {}, AggregationError, "in:1"),
        ("dtype", "median", {}, AggregationError, "in:1"),
        ("nan", "mean", {}, AggregationError, "in:1"),
        ("ok", "krum", {"f": 1}, AggregationError, "2f\\+3|2F\\+3"),
        ("ok", "trimmed_mean", {"b": 2}, AggregationError, "more than"),
        ("ok", "no-such-rule", {}, AggregationError, "unknown aggregation rule"),
        ("ok", "mean", {"f": 1}, AggregationError, "does not apply"),
    ],
)
def test_aggregate_bad_inputs_raise_and_leave_dst_alone(computing_stores, setup, rule, options, error, words):
    good = np.ones(4, dtype=np.float32)

    async def body(store):
        await store.set("out", np.full(4, 7, dtype=np.float32))
        await store.set("in:0", good)
        await store.set("in:2", good)
        if setup == "wrongtype":
            await store.client.set("in:1", "not a tensor")
        elif setup == "shape":
            await store.set("in:1", np.ones(5, dtype=np.float32))
        elif setup == "dtype":
            await store.set("in:1", np.ones(4, dtype=np.int32))
        elif setup == "nan":
            await store.set("in:1", np.array([1, np.nan, 1, 1], dtype=np.float32))
        elif setup == "ok":
            await store.set("in:1", good)
        with pytest.raises(error, match=words):
            await store.aggregate("out", rule, ["in:0", "in:1", "in:2"], **options)
        return await store.get("out")

    np.testing.assert_array_equal(computing_stores.run(body), np.full(4, 7, dtype=np.float32))


# ---- optimizer steps ----

SGD_CONFIGS = [
    optim.SgdConfig(lr=0.1),
    optim.SgdConfig(lr=0.05, momentum=0.9, weight_decay=0.01),
    optim.SgdConfig(lr=0.05, momentum=0.9, nesterov=True),
    optim.SgdConfig(lr=0.05, momentum=0.5, dampening=0.3, maximize=True),
]


@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=str)
def test_sgd_step_matches_the_numpy_reference(computing_stores, cfg):
    rng = np.random.default_rng(1)
    param = rng.normal(size=(30, 7)).astype(np.float32)
    grads = [rng.normal(size=(30, 7)).astype(np.float32) for _ in range(3)]
    buffer = "p:mom" if cfg.momentum > 0 else None

    async def body(store):
        await store.set("p", param)
        for g in grads:
            await store.set("p:grad", g)
            await store.sgd_step("p", "p:grad", cfg, buffer=buffer)
        return await store.get("p")

    expected, buf = param, None
    for g in grads:
        expected, buf = optim.sgd_step(expected, g, buf, cfg)
    np.testing.assert_allclose(computing_stores.run(body), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "cfg",
    [optim.AdamConfig(lr=0.01), optim.AdamConfig(lr=0.01, weight_decay=0.1, decoupled=True)],
    ids=str,
)
def test_adam_step_matches_the_numpy_reference(computing_stores, cfg):
    rng = np.random.default_rng(2)
    param = rng.normal(size=257).astype(np.float32)
    grads = [rng.normal(size=257).astype(np.float32) for _ in range(3)]
    state = {"exp_avg": "p:m", "exp_avg_sq": "p:v", "step": "p:step"}

    async def body(store):
        await store.set("p", param)
        steps = []
        for g in grads:
            await store.set("p:grad", g)
            steps.append(await store.adam_step("p", "p:grad", cfg, **state))
        return steps, await store.get("p")

    steps, got = computing_stores.run(body)
    expected, m, v, taken = param, None, None, 0
    for g in grads:
        expected, m, v, taken = optim.adam_step(expected, g, m, v, taken, cfg)
    assert steps == [1, 2, 3]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_optimizer_refuses_non_finite_gradient_and_changes_nothing(computing_stores):
    param = np.ones(8, dtype=np.float32)
    grad = np.array([0, 0, np.inf, 0, 0, 0, 0, 0], dtype=np.float32)

    async def body(store):
        await store.set("p", param)
        await store.set("g", grad)
        with pytest.raises(InvalidTensor, match="non-finite"):
            await store.sgd_step("p", "g", optim.SgdConfig(lr=0.1))
        with pytest.raises(InvalidTensor, match="non-finite"):
            await store.adam_step("p", "g", optim.AdamConfig(), exp_avg="m", exp_avg_sq="v", step="s")
        return await store.get("p"), await store.exists("m"), await store.exists("s")

    got, has_m, has_step = computing_stores.run(body)
    np.testing.assert_array_equal(got, param)
    assert not has_m and not has_step
