"""The RedisAI backend on a live RedisAI (see tests/store/conftest.py): its
TorchScript compiles in RedisAI's own compiler, every refusal of a script
reaches the caller as the script's message, the script comes back after
the database lost it, and results equal the numpy references (bit for bit,
but for Adam on float64 parameters: within a few ulps)."""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest
import redis

from spirtd import aggregation, optim
from spirtd.errors import AggregationError, InvalidTensor
from spirtd.store import connect
from spirtd.store.redisai import ENTRY_POINT, SCRIPT_KEY, RedisAIStore
from spirtd.store.redisai_scripts import ENTRY_POINTS, SCRIPT
from tests.aggregation.rule_cases import BOUND_CASES, script_args
from tests.store.conftest import _flushed
from tests.store.test_redisai_scripts import SCRIPT_ERRORS

# Adam's float64 pow and sqrt in libtorch and numpy may differ in the last
# bit; three steps keep the difference within this many ulps.
ADAM_FLOAT64_ULPS = 4


@pytest.fixture
def live(redisai_url):
    asyncio.run(_flushed(redisai_url))
    return redisai_url


def run(url: str, body):
    async def main():
        async with await connect(url, backend="redisai") as store:
            return await body(store)

    return asyncio.run(main())


def ulps(a: np.ndarray, b: np.ndarray) -> int:
    kind = np.int32 if a.dtype == np.float32 else np.int64
    return int(np.max(np.abs(a.view(kind).astype(np.int64) - b.view(kind).astype(np.int64))))


def test_the_script_compiles_in_redisais_own_compiler(live):
    client = redis.Redis.from_url(live)
    try:
        reply = client.execute_command("AI.SCRIPTSTORE", "compile-check", "CPU", "ENTRY_POINTS",
                                       len(ENTRY_POINTS), *ENTRY_POINTS, "SOURCE", SCRIPT)  # fmt: skip
        assert reply == b"OK"
        info = client.execute_command("AI.SCRIPTGET", "compile-check", "META")
        assert set(info[info.index(b"Entry Points") + 1]) == {e.encode() for e in ENTRY_POINTS}
    finally:
        client.close()


# RedisAI refuses an AI.SCRIPTEXECUTE with no inputs before any script runs;
# the store API never sends one (validate_call wants n >= 1).
LIVE_ERRORS = [case for case in SCRIPT_ERRORS if case[1]]


@pytest.mark.parametrize("entry, arrays, args, keys, message", LIVE_ERRORS,
                         ids=[f"{c[0]}:{c[4][:40]}" for c in LIVE_ERRORS])  # fmt: skip
def test_every_script_refusal_reaches_the_caller_as_its_message(live, entry, arrays, args, keys, message):
    """The cases of the script tests, through AI.SCRIPTEXECUTE: RedisAI's
    reply (a traceback around the message) comes out as the message."""
    names = keys if keys is not None else [f"k:{i}" for i in range(len(arrays))]
    aggregation_entry = entry not in ("spirt_sgd", "spirt_adam")

    async def body(store: RedisAIStore):
        for name, array in zip(names, arrays):
            await store.set(name, np.asarray(array))
        with pytest.raises(AggregationError if aggregation_entry else InvalidTensor) as info:
            await store._execute(entry, names, ["out:0"], [str(a) for a in args], aggregation=aggregation_entry)
        return str(info.value)

    text = run(live, body)
    assert re.search(re.escape(message), text), text
    assert "Traceback" not in text and "<--- HERE" not in text


def test_the_script_is_stored_again_when_the_database_lost_it(live):
    xs = [np.full(4, float(i), np.float32) for i in range(3)]

    async def body(store):
        for i, x in enumerate(xs):
            await store.set(f"x{i}", x)
        await store.aggregate("m", "mean", ["x0", "x1", "x2"])
        assert await store.exists(SCRIPT_KEY)
        await store.client.flushall()  # as after a restart without persistence
        for i, x in enumerate(xs):
            await store.set(f"x{i}", x)
        await store.aggregate("m", "median", ["x0", "x1", "x2"])
        return await store.get("m")

    np.testing.assert_array_equal(run(live, body), np.ones(4, np.float32))


def test_results_equal_the_numpy_references(live):
    rng = np.random.default_rng(11)

    async def body(store):
        worst: dict[str, int] = {}
        for dtype in (np.float32, np.float64):
            n = 7
            xs = [rng.standard_normal(3001).astype(dtype) for _ in range(n)]
            keys = [f"x{i}" for i in range(n)]
            for key, x in zip(keys, xs):
                await store.set(key, x)
            weights = [float(w) for w in rng.random(n) + 0.1]
            for rule, options in (("mean", {}), ("mean", {"weights": weights}), ("median", {}),
                                  ("trimmed_mean", {"b": 2}), ("multikrum", {"f": 1, "m": 3})):  # fmt: skip
                selected = await store.aggregate("out", rule, keys, **options)
                ref = aggregation.aggregate(rule, xs, **options)
                assert selected == ref.selected
                worst[f"{rule}{'-weighted' if options.get('weights') else ''}-{dtype.__name__}"] = ulps(
                    await store.get("out"), ref.value)
            for cfg in (optim.SgdConfig(lr=0.05, momentum=0.9, weight_decay=0.01),
                        optim.SgdConfig(lr=0.05, momentum=0.9, nesterov=True)):  # fmt: skip
                p, buf = xs[0], None
                await store.set("p", p)
                await store.delete("buf")
                for g in xs[1:4]:
                    await store.set("g", g)
                    await store.sgd_step("p", "g", cfg, buffer="buf")
                    p, buf = optim.sgd_step(p, g, buf, cfg)
                worst[f"sgd-nesterov={cfg.nesterov}-{dtype.__name__}"] = ulps(await store.get("p"), p)
            for cfg in (optim.AdamConfig(lr=0.01), optim.AdamConfig(lr=0.01, weight_decay=0.1, decoupled=True)):
                p, m, v, t = xs[0], None, None, 0
                await store.set("p", p)
                await store.delete("m", "v", "t")
                for g in xs[1:4]:
                    await store.set("g", g)
                    await store.adam_step("p", "g", cfg, exp_avg="m", exp_avg_sq="v", step="t")
                    p, m, v, t = optim.adam_step(p, g, m, v, t, cfg)
                worst[f"adam-decoupled={cfg.decoupled}-{dtype.__name__}"] = ulps(await store.get("p"), p)
        return worst

    worst = run(live, body)
    assert all(d == 0 for name, d in worst.items() if not (name.startswith("adam") and name.endswith("float64"))), worst
    assert all(d <= ADAM_FLOAT64_ULPS for name, d in worst.items()), worst


@pytest.mark.parametrize("rule, counts", BOUND_CASES, ids=str)
def test_redisai_accepts_exactly_the_python_bound(live, rule, counts):
    """Each rule's script, run by RedisAI's own interpreter: n at the
    Python bound is accepted, one fewer refused with the bound's message."""
    n = aggregation.RULES[rule].min_inputs(counts)
    keys = [f"x{k}" for k in range(n)]
    outputs = ["out", "out:selected"][: 2 if aggregation.RULES[rule].selects else 1]

    async def body(store: RedisAIStore):
        for k, key in enumerate(keys):
            await store.set(key, np.full(3, float(k), np.float32))
        await store._execute(ENTRY_POINT[rule], keys, outputs, script_args(rule, counts), aggregation=True)
        if n == 1:
            return None
        with pytest.raises(AggregationError) as info:
            await store._execute(ENTRY_POINT[rule], keys[:-1], outputs, script_args(rule, counts), aggregation=True)
        return str(info.value)

    message = run(live, body)
    assert n == 1 or (message.startswith(f"{rule} ") and message.endswith(f"got {n - 1}")), message
