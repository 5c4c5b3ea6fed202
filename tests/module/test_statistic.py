"""SPIRT.STATISTIC, and SPIRT.AGGREGATE ... GIVEN: the statistic of each
column shard of the inputs sums to the whole inputs' statistic, and Krum
run on each shard with the summed statistic given picks what it picks on
the whole inputs and, concatenated, writes exactly its values. Every error
names what is wrong and leaves every key as it was."""

from __future__ import annotations

import numpy as np
import pytest

from . import aggregate_reference as ref
from .helpers import error_of, get, jobs_queued, put, snapshot
from .test_aggregate import LARGE, SMALL, make_inputs

STAT = "PAIRWISE_SQUARED_DISTANCES"
# Distances are summed in slices, not in np.dot's order.
RTOL = 1e-12
KRUM_CASES = {
    "krum-f1": ("krum", ["F", 1], lambda xs: ref.krum(xs, 1)),
    "multikrum-f1": ("multikrum", ["F", 1], lambda xs: ref.multikrum(xs, 1)),
    "multikrum-f2-m2": ("multikrum", ["F", 2, "M", 2], lambda xs: ref.multikrum(xs, 2, 2)),
}


def statistic(r, keys: list[str], stat: str = STAT) -> np.ndarray:
    blob = r.execute_command("SPIRT.STATISTIC", stat, "INPUTS", len(keys), *keys)
    return np.frombuffer(blob, "<f8").reshape(len(keys), len(keys))


def blob(matrix: np.ndarray) -> bytes:
    return np.ascontiguousarray(matrix, "<f8").tobytes()


def put_all(r, prefix: str, xs: list[np.ndarray]) -> list[str]:
    keys = [f"{prefix}{k}" for k in range(len(xs))]
    for key, x in zip(keys, xs):
        put(r, key, x)
    return keys


def cut(rng: np.random.Generator, nelem: int, shards: int) -> list[slice]:
    """shards contiguous, non-empty column ranges covering 0..nelem."""
    bounds = np.sort(rng.choice(np.arange(1, nelem), size=shards - 1, replace=False))
    edges = [0, *bounds.tolist(), nelem]
    return [slice(a, b) for a, b in zip(edges, edges[1:])]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(23)


# ---- the statistic ----


@pytest.mark.parametrize("dtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("nelem, pool", [(SMALL, False), (LARGE, True)])
def test_statistic_matches_numpy(sr, rng, dtype, nelem, pool):
    xs = make_inputs(rng, 6, nelem, dtype)
    keys = put_all(sr, "x", xs)
    before = jobs_queued(sr)
    got = statistic(sr, keys)
    assert jobs_queued(sr) == before + pool
    np.testing.assert_allclose(got, ref.pairwise_squared_distances(xs), rtol=RTOL)
    assert (got == got.T).all() and (np.diag(got) == 0).all()


def test_statistic_equals_the_distances_aggregate_computes(sr, rng):
    """Given back to SPIRT.AGGREGATE, the whole inputs' statistic changes
    no bit of the result: it is the same kernel."""
    xs = make_inputs(rng, 7, LARGE, "FLOAT")
    keys = put_all(sr, "x", xs)
    given = blob(statistic(sr, keys))
    for rule, options, _ in KRUM_CASES.values():
        plain = sr.execute_command("SPIRT.AGGREGATE", "a", rule, "INPUTS", 7, *keys, *options)
        with_given = sr.execute_command(
            "SPIRT.AGGREGATE", "b", rule, "INPUTS", 7, *keys, *options, "GIVEN", STAT, given
        )
        assert plain == with_given
        assert get(sr, "a").tobytes() == get(sr, "b").tobytes()


def test_statistic_of_one_input_is_zero(sr):
    put(sr, "x", np.arange(5, dtype=np.float32))
    assert statistic(sr, ["x"]).tolist() == [[0.0]]


def test_statistic_name_ignores_case_and_inputs_may_repeat(sr, rng):
    xs = make_inputs(rng, 2, SMALL, "DOUBLE")
    keys = put_all(sr, "x", xs)
    got = statistic(sr, [keys[0], keys[1], keys[0]], stat=STAT.lower())
    assert got[0, 2] == 0 and got[0, 1] == got[2, 1] > 0


# ---- shards ----


@pytest.mark.parametrize("shards", [2, 3, 4])
@pytest.mark.parametrize("dtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("nelem", [SMALL, LARGE])
def test_shard_statistics_sum_to_the_whole(sr, rng, shards, dtype, nelem):
    xs = make_inputs(rng, 5, nelem, dtype)
    whole = statistic(sr, put_all(sr, "x", xs))
    parts = [statistic(sr, put_all(sr, f"s{j}:", [x[c] for x in xs]))
             for j, c in enumerate(cut(rng, nelem, shards))]  # fmt: skip
    np.testing.assert_allclose(sum(parts), whole, rtol=RTOL)


@pytest.mark.parametrize("shards", [2, 3, 4])
@pytest.mark.parametrize("dtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("nelem", [SMALL, LARGE])
@pytest.mark.parametrize("case_id", KRUM_CASES)
def test_aggregating_shards_with_the_summed_statistic_equals_the_whole(
    sr, rng, case_id, shards, dtype, nelem
):
    rule, options, expected = KRUM_CASES[case_id]
    xs = make_inputs(rng, 8, nelem, dtype)
    keys = put_all(sr, "x", xs)
    chosen = sr.execute_command("SPIRT.AGGREGATE", "whole", rule, "INPUTS", 8, *keys, *options)
    slices = cut(rng, nelem, shards)
    shard_keys = [put_all(sr, f"s{j}:", [x[c] for x in xs]) for j, c in enumerate(slices)]
    given = blob(sum(statistic(sr, ks) for ks in shard_keys))
    values = []
    for j, ks in enumerate(shard_keys):
        reply = sr.execute_command(
            "SPIRT.AGGREGATE", f"d{j}", rule, "INPUTS", 8, *ks, *options, "GIVEN", STAT, given
        )
        assert reply == chosen
        values.append(get(sr, f"d{j}"))
    assert np.concatenate(values).tobytes() == get(sr, "whole").tobytes()
    assert chosen == expected(xs).selected


def test_the_given_statistic_decides_the_selection(sr, rng):
    """Krum uses the distances it is given, not the shard's own: here input
    3 is given as the one close to every other."""
    xs = make_inputs(rng, 5, SMALL, "FLOAT")
    keys = put_all(sr, "x", xs)
    given = np.full((5, 5), 100.0)
    given[3, :] = given[:, 3] = 1.0
    np.fill_diagonal(given, 0.0)
    reply = sr.execute_command("SPIRT.AGGREGATE", "d", "krum", "INPUTS", 5, *keys, "F", 1,
                               "GIVEN", STAT, blob(given))  # fmt: skip
    assert reply == [3]
    assert get(sr, "d").tobytes() == xs[3].tobytes()


def test_statistic_getkeys_reports_the_inputs(sr):
    assert sr.command_getkeys("SPIRT.STATISTIC", STAT, "INPUTS", 2, "a", "b") == ["a", "b"]


def test_statistic_in_multi_runs_inline(sr, rng):
    xs = make_inputs(rng, 4, LARGE, "FLOAT")
    keys = put_all(sr, "x", xs)
    before = jobs_queued(sr)
    with sr.pipeline(transaction=True) as pipe:
        pipe.execute_command("SPIRT.STATISTIC", STAT, "INPUTS", 4, *keys)
        pipe.execute_command("SPIRT.STATISTIC", STAT, "INPUTS", 1, "nothing")
        replies = pipe.execute(raise_on_error=False)
    assert jobs_queued(sr) == before
    got = np.frombuffer(replies[0], "<f8").reshape(4, 4)
    np.testing.assert_allclose(got, ref.pairwise_squared_distances(xs), rtol=RTOL)
    assert str(replies[1]) == "input tensor 'nothing' does not exist"


# ---- errors ----


@pytest.fixture
def error_keys(sr) -> list[str]:
    for k in range(5):
        sr.execute_command("AI.TENSORSET", f"x{k}", "FLOAT", 4, "VALUES", k, 2 * k, 1, 0)
    sr.execute_command("AI.TENSORSET", "short", "FLOAT", 3)
    sr.execute_command("AI.TENSORSET", "dbl", "DOUBLE", 4)
    sr.execute_command("AI.TENSORSET", "i32", "INT32", 4)
    put(sr, "nan", np.array([1, 2, np.nan, 4], np.float32))
    put(sr, "big", np.array([1e308]))
    put(sr, "-big", np.array([-1e308]))
    sr.execute_command("AI.TENSORSET", "dst", "DOUBLE", 2, "VALUES", 7, 8)
    sr.set("s", "text")
    return ["x0", "x1", "x2", "x3", "x4", "short", "dbl", "i32", "nan", "big", "-big", "dst", "s"]


X5 = ["x0", "x1", "x2", "x3", "x4"]

STATISTIC_ERRORS = [
    pytest.param(["DISTANCES", "INPUTS", 1, "x0"],
                 "unknown statistic 'DISTANCES'; known statistics: PAIRWISE_SQUARED_DISTANCES", id="unknown"),
    pytest.param([STAT, "KEYS", 1, "x0"], "expected INPUTS after the statistic name", id="no-inputs"),
    pytest.param([STAT, "INPUTS", 0, "x0"], "INPUTS count must be a positive integer", id="zero"),
    pytest.param([STAT, "INPUTS", 3, "x0", "x1"], "INPUTS says 3 keys but only 2 follow", id="too-few-keys"),
    pytest.param([STAT, "INPUTS", 1, "x0", "x1"], "INPUTS says 1 keys but 2 follow; nothing else may",
                 id="extra-args"),
    pytest.param([STAT, "INPUTS", 2, "x0", "missing"], "input tensor 'missing' does not exist", id="missing"),
    pytest.param([STAT, "INPUTS", 2, "x0", "s"], "WRONGTYPE input 's' holds a value that is not a tensor",
                 id="wrongtype"),
    pytest.param([STAT, "INPUTS", 2, "x0", "i32"],
                 "input 'i32' has dtype INT32; a statistic needs FLOAT or DOUBLE", id="int"),
    pytest.param([STAT, "INPUTS", 2, "x0", "short"], "input 'short' is FLOAT [3] but 'x0' is FLOAT [4]",
                 id="shape"),
    pytest.param([STAT, "INPUTS", 2, "x0", "dbl"], "input 'dbl' is DOUBLE [4] but 'x0' is FLOAT [4]",
                 id="dtype"),
    pytest.param([STAT, "INPUTS", 3, "x0", "nan", "x1"], "input 'nan' has a non-finite value at element 2",
                 id="nan"),
    pytest.param([STAT, "INPUTS", 1, "nan"], "input 'nan' has a non-finite value at element 2",
                 id="nan-alone"),
    pytest.param([STAT, "INPUTS", 2, "big", "-big"],
                 f"{STAT} overflowed: it is not finite although every input is", id="overflow"),
    pytest.param([STAT, "INPUTS", 1025, *["x0"] * 1025],
                 f"{STAT} compares every pair of inputs and takes at most 1024; got 1025", id="too-many"),
]  # fmt: skip


@pytest.mark.parametrize("args, message", STATISTIC_ERRORS)
def test_statistic_errors(sr, error_keys, args, message):
    before = snapshot(sr, error_keys)
    assert error_of(sr, "SPIRT.STATISTIC", *args) == message
    assert snapshot(sr, error_keys) == before


def test_statistic_needs_its_arguments(sr):
    assert "wrong number of arguments" in error_of(sr, "SPIRT.STATISTIC", STAT, "INPUTS", 1)


GOOD = blob(np.ones((5, 5)) - np.eye(5))

GIVEN_ERRORS = [
    pytest.param(["krum", "INPUTS", 5, *X5, "F", 1, "GIVEN", STAT, blob(np.ones((4, 4)))],
                 f"GIVEN {STAT} for 5 inputs is 25 doubles (200 bytes); got 128 bytes", id="wrong-size"),
    pytest.param(["krum", "INPUTS", 5, *X5, "F", 1, "GIVEN", STAT, GOOD[:-1]],
                 f"GIVEN {STAT} for 5 inputs is 25 doubles (200 bytes); got 199 bytes", id="cut-short"),
    pytest.param(["multikrum", "INPUTS", 5, *X5, "F", 1, "GIVEN", STAT,
                  blob(np.where(np.eye(5) > 0, 0, np.inf))],
                 f"GIVEN {STAT} must be finite; number 1 is not", id="infinite"),
    pytest.param(["krum", "INPUTS", 5, *X5, "F", 1, "GIVEN", STAT, blob(np.full((5, 5), np.nan))],
                 f"GIVEN {STAT} must be finite; number 0 is not", id="nan"),
    pytest.param(["mean", "INPUTS", 5, *X5, "GIVEN", STAT, GOOD],
                 f"rule mean does not need {STAT}; GIVEN does not apply", id="mean"),
    pytest.param(["median", "INPUTS", 5, *X5, "GIVEN", STAT, GOOD],
                 f"rule median does not need {STAT}; GIVEN does not apply", id="median"),
    pytest.param(["trimmed_mean", "INPUTS", 5, *X5, "B", 1, "GIVEN", STAT, GOOD],
                 f"rule trimmed_mean does not need {STAT}; GIVEN does not apply", id="trimmed"),
    pytest.param(["krum", "INPUTS", 5, *X5, "F", 1, "GIVEN", "DISTANCES", GOOD],
                 "unknown statistic 'DISTANCES'; known statistics: PAIRWISE_SQUARED_DISTANCES", id="unknown"),
    pytest.param(["krum", "INPUTS", 5, *X5, "F", 1, "GIVEN", STAT, GOOD, "GIVEN", STAT, GOOD],
                 f"GIVEN {STAT} given twice", id="twice"),
    pytest.param(["krum", "INPUTS", 5, *X5, "F", 1, "GIVEN", STAT],
                 "GIVEN needs a statistic and its numbers", id="no-numbers"),
    pytest.param(["krum", "INPUTS", 5, "x0", "x1", "nan", "x3", "x4", "F", 1, "GIVEN", STAT, GOOD],
                 "input 'nan' has a non-finite value at element 2; nothing was written",
                 id="non-finite-input"),
    pytest.param(["krum", "INPUTS", 5, *X5, "GIVEN", STAT, GOOD], "rule krum needs option F",
                 id="options-still-checked"),
]  # fmt: skip


@pytest.mark.parametrize("args, message", GIVEN_ERRORS)
def test_aggregate_given_errors_leave_every_key_alone(sr, error_keys, args, message):
    before = snapshot(sr, error_keys)
    assert error_of(sr, "SPIRT.AGGREGATE", "dst", *args) == message
    assert snapshot(sr, error_keys) == before
