"""SPIRT.AGGREGATE: every rule against an independent numpy computation, on
the inline path and on the worker threads; every error names what is wrong
and leaves dst as it was."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from spirtd.aggregation import krum

from . import aggregate_reference as ref
from .helpers import add_module_args, error_of, get, jobs_queued, put, snapshot

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
SMALL = 37  # elements: far below INLINE_BYTES, runs inline
LARGE = 150_001  # elements: several grains per thread, not a multiple of any block


@dataclass(frozen=True)
class Case:
    """One rule with its options, and its reference computation."""

    rule: str
    options: Callable[[int], list]
    expected: Callable[[list[np.ndarray]], ref.Result]


CASES = {
    "mean": Case("mean", lambda n: [], ref.mean),
    "mean-weights": Case(
        "mean",
        lambda n: ["WEIGHTS", *[0.5 + k * 0.75 for k in range(n)]],
        lambda xs: ref.mean(xs, [0.5 + k * 0.75 for k in range(len(xs))]),
    ),
    "mean-zero-weight": Case(
        "mean",
        lambda n: ["WEIGHTS", 0, *[3] * (n - 1)],
        lambda xs: ref.mean(xs, [0.0] + [3.0] * (len(xs) - 1)),
    ),
    "median": Case("median", lambda n: [], ref.median),
    "trimmed-b0": Case("trimmed_mean", lambda n: ["B", 0], lambda xs: ref.trimmed_mean(xs, 0)),
    "trimmed-b1": Case("trimmed_mean", lambda n: ["B", 1], lambda xs: ref.trimmed_mean(xs, 1)),
    "trimmed-b2": Case("trimmed_mean", lambda n: ["B", 2], lambda xs: ref.trimmed_mean(xs, 2)),
    "krum-f1": Case("krum", lambda n: ["F", 1], lambda xs: ref.krum(xs, 1)),
    "krum-f0": Case("krum", lambda n: ["F", 0], lambda xs: ref.krum(xs, 0)),
    "multikrum-f1": Case("multikrum", lambda n: ["F", 1], lambda xs: ref.multikrum(xs, 1)),
    "multikrum-f1-m2": Case(
        "multikrum", lambda n: ["F", 1, "M", 2], lambda xs: ref.multikrum(xs, 1, 2)
    ),
}
# Trimmed means sum the kept values in selection order, not index order, so
# they are compared within the error of a float64 sum (plus one rounding).
UNORDERED_SUM = {"trimmed_mean"}


def assert_close_to_sum(got: np.ndarray, expected: np.ndarray, xs: list[np.ndarray]) -> None:
    """|got - expected| within n float64 roundings of the largest input, plus
    one unit in the last place of the output dtype."""
    scale = np.max(np.abs(np.stack([x.astype(np.float64) for x in xs])), axis=0)
    tol = len(xs) * 2.0**-52 * scale + np.spacing(np.abs(expected)).astype(np.float64)
    err = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    assert (
        err <= tol
    ).all(), f"max error {err.max()} above tolerance at {int(np.argmax(err - tol))}"


def make_inputs(rng: np.random.Generator, n: int, nelem: int, dtype: str) -> list[np.ndarray]:
    """Inputs around a common centre at distinct distances, so that Krum's
    scores are far from ties."""
    np_dtype = np.float32 if dtype == "FLOAT" else np.float64
    centre = rng.standard_normal(nelem)
    return [
        (centre + (1 + k * 0.37) * rng.standard_normal(nelem)).astype(np_dtype) for k in range(n)
    ]


def run_case(r, case: Case, xs: list[np.ndarray], dst: str = "dst") -> None:
    """Stores xs as x0..x{n-1}, aggregates into dst, checks against numpy."""
    n = len(xs)
    keys = [f"x{k}" for k in range(n)]
    for k, x in zip(keys, xs):
        put(r, k, x)
    reply = r.execute_command(
        "SPIRT.AGGREGATE", dst, case.rule, "INPUTS", n, *keys, *case.options(n)
    )
    expected = case.expected(xs)
    got = get(r, dst)
    assert got.dtype == xs[0].dtype and got.shape == xs[0].shape
    if case.rule in UNORDERED_SUM:
        assert_close_to_sum(got, expected.value, xs)
    else:
        assert got.tobytes() == expected.value.tobytes()
    if expected.selected is None:
        assert reply == b"OK"
    else:
        assert reply == expected.selected


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


# ---- every rule against numpy ----


@pytest.mark.parametrize("dtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("case_id", CASES)
def test_aggregate_inline_matches_numpy(sr, rng, case_id, dtype):
    before = jobs_queued(sr)
    run_case(sr, CASES[case_id], make_inputs(rng, 5, SMALL, dtype))
    assert jobs_queued(sr) == before


@pytest.mark.parametrize("dtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("case_id", CASES)
def test_aggregate_on_the_pool_matches_numpy(sr, rng, case_id, dtype):
    before = jobs_queued(sr)
    run_case(sr, CASES[case_id], make_inputs(rng, 5, LARGE, dtype))
    assert jobs_queued(sr) == before + 1


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_aggregate_with_inline_bytes_zero_matches_numpy(start_spirt, rng, threads):
    """Every job on the pool, whatever its size, with 1, 2 or 3 threads."""
    r = start_spirt(inline_bytes=0, module_threads=threads).client()
    count = 0
    for case in CASES.values():
        for nelem in (1, 70_001):
            run_case(r, case, make_inputs(rng, 7, nelem, "FLOAT"))
            count += 1
    assert jobs_queued(r) == count


@pytest.mark.parametrize("n", [2, 3, 4, 16, 17, 20, 33])
@pytest.mark.parametrize("rule", ["median", "trimmed"])
def test_aggregate_order_statistics_with_many_ties(sr, rng, n, rule):
    """Few distinct values, many inputs: the selection's partition path
    (more than 16 inputs) and its handling of equal values."""
    xs = [rng.integers(-2, 3, size=513).astype(np.float32) for _ in range(n)]
    b = (n - 1) // 2 if rule == "trimmed" else 0
    case = (
        Case("median", lambda n: [], ref.median)
        if rule == "median"
        else Case("trimmed_mean", lambda n: ["B", b], lambda xs: ref.trimmed_mean(xs, b))
    )
    run_case(sr, case, xs)


@pytest.mark.parametrize("dtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize(
    "rule,options",
    [("mean", []), ("median", []), ("trimmed_mean", ["B", 0]), ("mean", ["WEIGHTS", 4])],
)
def test_aggregate_of_one_input_is_that_input(sr, rng, dtype, rule, options):
    """(A weight that is not a power of two need not give x back exactly in
    DOUBLE: w * x * (1/w) rounds twice.)"""
    x = make_inputs(rng, 1, 300, dtype)[0]
    put(sr, "x", x)
    assert sr.execute_command("SPIRT.AGGREGATE", "d", rule, "INPUTS", 1, "x", *options) == b"OK"
    assert get(sr, "d").tobytes() == x.tobytes()


def test_aggregate_median_of_even_count_is_midpoint(sr):
    sr.execute_command("AI.TENSORSET", "a", "DOUBLE", 3, "VALUES", 1, 10, -1)
    sr.execute_command("AI.TENSORSET", "b", "DOUBLE", 3, "VALUES", 2, 20, -4)
    sr.execute_command("AI.TENSORSET", "c", "DOUBLE", 3, "VALUES", 8, 0, -2)
    sr.execute_command("AI.TENSORSET", "d", "DOUBLE", 3, "VALUES", 9, 5, -3)
    sr.execute_command("SPIRT.AGGREGATE", "out", "median", "INPUTS", 4, "a", "b", "c", "d")
    assert sr.execute_command("AI.TENSORGET", "out", "VALUES") == [5.0, 7.5, -2.5]


def test_aggregate_keeps_shape_of_inputs(sr, rng):
    xs = [rng.standard_normal((2, 3, 4)).astype(np.float32) for _ in range(3)]
    for k, x in enumerate(xs):
        put(sr, f"x{k}", x)
    sr.execute_command("SPIRT.AGGREGATE", "d", "median", "INPUTS", 3, "x0", "x1", "x2")
    assert sr.execute_command("AI.TENSORGET", "d", "META") == [
        b"dtype",
        b"FLOAT",
        b"shape",
        [2, 3, 4],
    ]
    assert get(sr, "d").tobytes() == ref.median(xs).value.tobytes()


def test_aggregate_into_one_of_its_inputs(sr, rng):
    xs = make_inputs(rng, 3, 50, "FLOAT")
    for k, x in enumerate(xs):
        put(sr, f"x{k}", x)
    sr.execute_command("SPIRT.AGGREGATE", "x1", "mean", "INPUTS", 3, "x0", "x1", "x2")
    assert get(sr, "x1").tobytes() == ref.mean(xs).value.tobytes()
    assert get(sr, "x0").tobytes() == xs[0].tobytes()


def test_aggregate_input_may_repeat(sr, rng):
    a, b = make_inputs(rng, 2, 50, "DOUBLE")
    put(sr, "a", a)
    put(sr, "b", b)
    sr.execute_command("SPIRT.AGGREGATE", "d", "mean", "INPUTS", 3, "a", "a", "b")
    assert get(sr, "d").tobytes() == ref.mean([a, a, b]).value.tobytes()


def test_aggregate_replaces_dst_of_other_dtype_and_shape(sr, rng):
    sr.execute_command("AI.TENSORSET", "d", "INT8", 2, 2)
    xs = make_inputs(rng, 2, 9, "DOUBLE")
    for k, x in enumerate(xs):
        put(sr, f"x{k}", x)
    sr.execute_command("SPIRT.AGGREGATE", "d", "mean", "INPUTS", 2, "x0", "x1")
    assert sr.execute_command("AI.TENSORGET", "d", "META") == [b"dtype", b"DOUBLE", b"shape", [9]]


def test_aggregate_rule_and_option_names_ignore_case(sr, rng):
    xs = make_inputs(rng, 5, 20, "FLOAT")
    for k, x in enumerate(xs):
        put(sr, f"x{k}", x)
    keys = [f"x{k}" for k in range(5)]
    assert sr.execute_command(
        "SPIRT.AGGREGATE", "d", "MultiKrum", "inputs", 5, *keys, "f", 1, "m", 2
    ) == (ref.multikrum(xs, 1, 2).selected)
    sr.execute_command("SPIRT.AGGREGATE", "d", "TRIMMED_MEAN", "Inputs", 5, *keys, "b", 1)
    assert_close_to_sum(get(sr, "d"), ref.trimmed_mean(xs, 1).value, xs)
    sr.execute_command("SPIRT.AGGREGATE", "d", "MEAN", "INPUTS", 5, *keys, "weights", 1, 2, 3, 4, 5)
    assert get(sr, "d").tobytes() == ref.mean(xs, [1, 2, 3, 4, 5]).value.tobytes()


def test_aggregate_mean_is_computed_in_double(sr):
    """FLOAT inputs near FLT_MAX: a float32 sum would overflow."""
    big = np.full(4, 3.0e38, np.float32)
    put(sr, "a", big)
    put(sr, "b", big)
    sr.execute_command("SPIRT.AGGREGATE", "d", "mean", "INPUTS", 2, "a", "b")
    assert get(sr, "d").tobytes() == big.tobytes()


# ---- Krum ----


@pytest.mark.parametrize("rule", ["krum", "multikrum"])
@pytest.mark.parametrize("f", [0, 1, 2, 5])
def test_aggregate_krum_accepts_exactly_2f_plus_3_inputs(sr, rng, rule, f):
    n = krum.min_inputs(f)  # the Python bound: the module must agree
    xs = make_inputs(rng, n, 10, "FLOAT")
    keys = [f"x{k}" for k in range(n)]
    for k, x in zip(keys, xs):
        put(sr, k, x)
    expected = ref.krum(xs, f) if rule == "krum" else ref.multikrum(xs, f)
    assert (
        sr.execute_command("SPIRT.AGGREGATE", "d", rule, "INPUTS", n, *keys, "F", f)
        == expected.selected
    )
    assert get(sr, "d").tobytes() == expected.value.tobytes()
    before = snapshot(sr, ["d"])
    assert error_of(sr, "SPIRT.AGGREGATE", "d", rule, "INPUTS", n - 1, *keys[:-1], "F", f) == (
        f"{rule} tolerates F faulty inputs only with n >= 2F+3: F={f} needs at least {n} inputs, got {n - 1}"
    )
    assert snapshot(sr, ["d"]) == before


def test_aggregate_krum_ignores_an_outlier(sr, rng):
    centre = rng.standard_normal(100)
    xs = [(centre + 0.01 * rng.standard_normal(100)).astype(np.float32) for _ in range(6)]
    xs.insert(2, (centre + 100).astype(np.float32))
    for k, x in enumerate(xs):
        put(sr, f"x{k}", x)
    keys = [f"x{k}" for k in range(7)]
    chosen = sr.execute_command("SPIRT.AGGREGATE", "d", "multikrum", "INPUTS", 7, *keys, "F", 2)
    assert 2 not in chosen and len(chosen) == 5
    assert chosen == ref.multikrum(xs, 2).selected
    assert (
        sr.execute_command("SPIRT.AGGREGATE", "d", "krum", "INPUTS", 7, *keys, "F", 2)
        == ref.krum(xs, 2).selected
    )


def test_aggregate_krum_ties_go_to_the_lowest_index(sr, rng):
    x = rng.standard_normal(64).astype(np.float32)
    for k in range(5):
        put(sr, f"x{k}", x)
    keys = [f"x{k}" for k in range(5)]
    assert sr.execute_command("SPIRT.AGGREGATE", "d", "krum", "INPUTS", 5, *keys, "F", 1) == [0]
    assert sr.execute_command("SPIRT.AGGREGATE", "d", "multikrum", "INPUTS", 5, *keys, "F", 1) == [
        0,
        1,
        2,
        3,
    ]
    assert get(sr, "d").tobytes() == x.tobytes()


def test_aggregate_krum_ties_between_duplicated_inputs(sr, rng):
    """x1 == x3 and x0 == x4: equal scores, listed by index. x5 is as far
    from x0 as from x1, so their scores tie too: even integers keep every
    distance exact, so that tie is exact in any summation order."""
    a, b, c = (2.0 * rng.integers(-50, 50, 40) for _ in range(3))
    xs = [a, b, c, b, a, (a + b) / 2]
    xs = [x.astype(np.float64) for x in xs]
    for k, x in enumerate(xs):
        put(sr, f"x{k}", x)
    keys = [f"x{k}" for k in range(6)]
    expected = ref.multikrum(xs, 1)
    got = sr.execute_command("SPIRT.AGGREGATE", "d", "multikrum", "INPUTS", 6, *keys, "F", 1)
    assert got == expected.selected
    assert got.index(0) < got.index(4) and got.index(1) < got.index(3)
    assert get(sr, "d").tobytes() == expected.value.tobytes()


def test_aggregate_multikrum_with_m_1_is_krum(sr, rng):
    xs = make_inputs(rng, 7, 33, "DOUBLE")
    for k, x in enumerate(xs):
        put(sr, f"x{k}", x)
    keys = [f"x{k}" for k in range(7)]
    one = sr.execute_command(
        "SPIRT.AGGREGATE", "a", "multikrum", "INPUTS", 7, *keys, "F", 2, "M", 1
    )
    assert one == sr.execute_command("SPIRT.AGGREGATE", "b", "krum", "INPUTS", 7, *keys, "F", 2)
    assert get(sr, "a").tobytes() == get(sr, "b").tobytes() == xs[one[0]].tobytes()


@pytest.mark.parametrize("rule", ["krum", "multikrum"])
def test_aggregate_krum_takes_at_most_1024_inputs(sr, rule):
    sr.execute_command("AI.TENSORSET", "x", "FLOAT", 2, "VALUES", 1, 2)
    reply = sr.execute_command("SPIRT.AGGREGATE", "d", rule, "INPUTS", 1024, *["x"] * 1024, "F", 0)
    assert reply[0] == 0
    assert error_of(sr, "SPIRT.AGGREGATE", "d2", rule, "INPUTS", 1025, *["x"] * 1025, "F", 0) == (
        f"{rule} compares every pair of inputs and takes at most 1024; got 1025"
    )
    assert sr.exists("d2") == 0


# ---- non-finite values and overflow ----


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("nelem,at", [(SMALL, 17), (LARGE, 123_457)], ids=["inline", "pool"])
@pytest.mark.parametrize(
    "case_id", ["mean", "mean-zero-weight", "median", "trimmed-b1", "krum-f1", "multikrum-f1"]
)
def test_aggregate_refuses_non_finite_input(sr, rng, case_id, nelem, at, bad):
    case = CASES[case_id]
    xs = make_inputs(rng, 5, nelem, "FLOAT")
    xs[0][at] = bad  # "mean-zero-weight" weighs x0 by 0: 0 * inf is still NaN
    xs[3][at + 1] = bad
    keys = [f"x{k}" for k in range(5)]
    for k, x in zip(keys, xs):
        put(sr, k, x)
    sr.execute_command("AI.TENSORSET", "dst", "FLOAT", 1, "VALUES", 42)
    before = snapshot(sr, ["dst", *keys])
    assert error_of(
        sr, "SPIRT.AGGREGATE", "dst", case.rule, "INPUTS", 5, *keys, *case.options(5)
    ) == (f"input 'x0' has a non-finite value at element {at}; nothing was written")
    assert snapshot(sr, ["dst", *keys]) == before


@pytest.mark.parametrize(
    "rule,options",
    [("mean", []), ("mean", ["WEIGHTS", 1, 1]), ("krum", ["F", 0]), ("multikrum", ["F", 0])],
)
def test_aggregate_refuses_a_result_that_overflows(sr, rule, options):
    sr.execute_command("AI.TENSORSET", "a", "DOUBLE", 2, "VALUES", "1.7e308", 1)
    sr.execute_command("AI.TENSORSET", "b", "DOUBLE", 2, "VALUES", "1.7e308", 2)
    sr.execute_command("AI.TENSORSET", "c", "DOUBLE", 2, "VALUES", "-1.7e308", 3)
    n = 2 if rule == "mean" else 3
    keys = ["a", "b", "c"][:n]
    assert error_of(sr, "SPIRT.AGGREGATE", "d", rule, "INPUTS", n, *keys, *options) == (
        f"{rule} overflowed: the result is not finite although every input is; nothing was written"
    )
    assert sr.exists("d") == 0


@pytest.mark.parametrize(
    "rule,options",
    [("median", []), ("trimmed_mean", ["B", 0]), ("trimmed_mean", ["B", 1])],
    ids=["median", "trimmed-b0", "trimmed-b1"],
)
def test_aggregate_never_writes_non_finite_from_finite_inputs(sr, rule, options):
    """Finite DOUBLE inputs near DBL_MAX: the median of 1.7e308 and 1.7e308
    is 1.7e308, not inf. Like mean and krum, the rule must give a finite
    result or refuse; it must not store an infinity."""
    for k in ("a", "b", "c", "d"):
        sr.execute_command("AI.TENSORSET", k, "DOUBLE", 2, "VALUES", "1.7e308", "1.7e308")
    n = 4 if rule == "median" or options[1] == 1 else 2
    keys = ["a", "b", "c", "d"][:n]
    try:
        sr.execute_command("SPIRT.AGGREGATE", "out", rule, "INPUTS", n, *keys, *options)
    except Exception as exc:  # refusing is acceptable
        assert "overflowed" in str(exc)
        assert sr.exists("out") == 0
        return
    got = get(sr, "out")
    assert np.isfinite(got).all(), f"{rule} stored {got} for finite inputs"


# ---- errors: exact text, dst and inputs unchanged ----

ERRORS = [
    pytest.param(
        ["mean", "INPUTS", 1], "wrong number of arguments for 'SPIRT.AGGREGATE' command", id="arity"
    ),
    pytest.param(
        ["avg", "INPUTS", 1, "a"],
        "unknown aggregation rule 'avg'; known rules: mean, median, trimmed_mean, krum, multikrum",
        id="unknown-rule",
    ),
    pytest.param(
        ["r" * 40, "INPUTS", 1, "a"],
        f"unknown aggregation rule '{'r' * 32}'; known rules: mean, median, trimmed_mean, krum, multikrum",
        id="long-rule-name-cut",
    ),
    pytest.param(
        ["mean", "INPUT", 1, "a"], "expected INPUTS after the rule name", id="no-inputs-word"
    ),
    pytest.param(["mean", "a", 1, "b"], "expected INPUTS after the rule name", id="key-for-inputs"),
    pytest.param(
        ["mean", "INPUTS", 0, "a"], "INPUTS count must be a positive integer", id="zero-inputs"
    ),
    pytest.param(
        ["mean", "INPUTS", -1, "a"], "INPUTS count must be a positive integer", id="negative-inputs"
    ),
    pytest.param(
        ["mean", "INPUTS", "two", "a"], "INPUTS count must be a positive integer", id="word-inputs"
    ),
    pytest.param(
        ["mean", "INPUTS", 2**31, "a"], "INPUTS count must be a positive integer", id="huge-inputs"
    ),
    pytest.param(
        ["mean", "INPUTS", 3, "a", "b"], "INPUTS says 3 keys but only 2 follow", id="too-few-keys"
    ),
    pytest.param(
        ["mean", "INPUTS", 1, "a", "F", 1],
        "option 'F' does not apply to rule mean",
        id="f-for-mean",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "b", "c"],
        "option 'c' does not apply to rule mean",
        id="extra-key",
    ),
    pytest.param(
        ["mean", "INPUTS", 1, "a", "x" * 40],
        f"option '{'x' * 32}' does not apply to rule mean",
        id="long-option-cut",
    ),
    pytest.param(
        ["median", "INPUTS", 1, "a", "WEIGHTS", 1],
        "option 'WEIGHTS' does not apply to rule median",
        id="weights-median",
    ),
    pytest.param(
        ["median", "INPUTS", 1, "a", "B", 0],
        "option 'B' does not apply to rule median",
        id="b-median",
    ),
    pytest.param(
        ["trimmed_mean", "INPUTS", 3, "a", "b", "c", "F", 0],
        "option 'F' does not apply to rule trimmed_mean",
        id="f-trimmed",
    ),
    pytest.param(
        ["krum", "INPUTS", 3, "a", "b", "c", "F", 0, "M", 1],
        "option 'M' does not apply to rule krum",
        id="m-krum",
    ),
    pytest.param(
        ["krum", "INPUTS", 3, "a", "b", "c", "B", 0],
        "option 'B' does not apply to rule krum",
        id="b-krum",
    ),
    pytest.param(
        ["multikrum", "INPUTS", 3, "a", "b", "c", "F", 0, "WEIGHTS", 1, 1, 1],
        "option 'WEIGHTS' does not apply to rule multikrum",
        id="weights-multikrum",
    ),
    pytest.param(
        ["trimmed_mean", "INPUTS", 3, "a", "b", "c"], "rule trimmed_mean needs option B", id="no-b"
    ),
    pytest.param(["krum", "INPUTS", 3, "a", "b", "c"], "rule krum needs option F", id="krum-no-f"),
    pytest.param(
        ["multikrum", "INPUTS", 3, "a", "b", "c", "M", 1],
        "rule multikrum needs option F",
        id="multikrum-no-f",
    ),
    pytest.param(
        ["trimmed_mean", "INPUTS", 3, "a", "b", "c", "B"],
        "B needs an integer >= 0",
        id="b-no-value",
    ),
    pytest.param(
        ["trimmed_mean", "INPUTS", 3, "a", "b", "c", "B", -1],
        "B needs an integer >= 0",
        id="b-negative",
    ),
    pytest.param(
        ["trimmed_mean", "INPUTS", 3, "a", "b", "c", "b", "1.5"],
        "b needs an integer >= 0",
        id="b-fraction",
    ),
    pytest.param(
        ["krum", "INPUTS", 3, "a", "b", "c", "F", 2**31], "F needs an integer >= 0", id="f-huge"
    ),
    pytest.param(
        ["multikrum", "INPUTS", 3, "a", "b", "c", "F", 0, "M", 0],
        "M needs an integer >= 1",
        id="m-zero",
    ),
    pytest.param(
        ["trimmed_mean", "INPUTS", 3, "a", "b", "c", "B", 1, "B", 1],
        "option B given twice",
        id="b-twice",
    ),
    pytest.param(
        ["krum", "INPUTS", 3, "a", "b", "c", "F", 0, "f", 0], "option f given twice", id="f-twice"
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "b", "WEIGHTS", 1, 1, "WEIGHTS", 1, 1],
        "option WEIGHTS given twice",
        id="weights-twice",
    ),
    pytest.param(
        ["trimmed_mean", "INPUTS", 2, "a", "b", "B", 1],
        "trimmed_mean drops B=1 values at each end, so it needs more than 2B=2 inputs; got 2",
        id="trimmed-too-few",
    ),
    pytest.param(
        ["trimmed_mean", "INPUTS", 1, "a", "B", 5],
        "trimmed_mean drops B=5 values at each end, so it needs more than 2B=10 inputs; got 1",
        id="trimmed-b5",
    ),
    pytest.param(
        ["krum", "INPUTS", 2, "a", "b", "F", 0],
        "krum tolerates F faulty inputs only with n >= 2F+3: F=0 needs at least 3 inputs, got 2",
        id="krum-f0-n2",
    ),
    pytest.param(
        ["multikrum", "INPUTS", 4, "a", "b", "c", "e", "F", 1],
        "multikrum tolerates F faulty inputs only with n >= 2F+3: F=1 needs at least 5 inputs, got 4",
        id="multikrum-f1-n4",
    ),
    pytest.param(
        ["multikrum", "INPUTS", 5, "a", "b", "c", "e", "g", "F", 1, "M", 5],
        "multikrum averages M of the n-F best-scored inputs: M=5 is more than n-F=4",
        id="m-over-n-minus-f",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "b", "WEIGHTS", 1],
        "WEIGHTS needs one weight per input (2)",
        id="weights-few",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "b", "WEIGHTS"],
        "WEIGHTS needs one weight per input (2)",
        id="weights-none",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "b", "WEIGHTS", 1, 2, 3],
        "option '3' does not apply to rule mean",
        id="weights-many",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "b", "WEIGHTS", 1, -1],
        "WEIGHTS must be finite and non-negative",
        id="weights-negative",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "b", "WEIGHTS", 1, "inf"],
        "WEIGHTS must be finite and non-negative",
        id="weights-inf",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "b", "WEIGHTS", "nan", 1],
        "WEIGHTS must be finite and non-negative",
        id="weights-nan",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "b", "WEIGHTS", "x", 1],
        "WEIGHTS must be finite and non-negative",
        id="weights-word",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "b", "WEIGHTS", 0, 0],
        "WEIGHTS must not all be zero",
        id="weights-zero",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "b", "WEIGHTS", 0, "-0"],
        "WEIGHTS must not all be zero",
        id="weights-minus-zero",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "b", "WEIGHTS", "1e308", "1e308"],
        "WEIGHTS must sum to a finite, normal number",
        id="weights-sum-overflows",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "b", "WEIGHTS", "1e-320", 0],
        "WEIGHTS must sum to a finite, normal number",
        id="weights-sum-subnormal",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "missing"],
        "input tensor 'missing' does not exist",
        id="missing-input",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "missing", "s"],
        "input tensor 'missing' does not exist",
        id="first-error-wins",
    ),
    pytest.param(
        ["median", "INPUTS", 2, "a", "s"],
        "WRONGTYPE input 's' holds a value that is not a tensor",
        id="string-input",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "i32"],
        "input 'i32' has dtype INT32; aggregation needs FLOAT or DOUBLE",
        id="int-input",
    ),
    pytest.param(
        ["mean", "INPUTS", 1, "bool"],
        "input 'bool' has dtype BOOL; aggregation needs FLOAT or DOUBLE",
        id="bool-input",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "short"],
        "input 'short' is FLOAT [3] but 'a' is FLOAT [4]",
        id="shape",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "dbl"],
        "input 'dbl' is DOUBLE [4] but 'a' is FLOAT [4]",
        id="dtype",
    ),
    pytest.param(
        ["krum", "INPUTS", 3, "a", "b", "mat", "F", 0],
        "input 'mat' is FLOAT [2, 2] but 'a' is FLOAT [4]",
        id="rank",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "it's\nkey"],
        "input tensor 'it?s?key' does not exist",
        id="key-name-sanitised",
    ),
    pytest.param(
        ["mean", "INPUTS", 2, "a", "k" * 200],
        f"input tensor '{'k' * 93}...' does not exist",
        id="key-name-cut",
    ),
    pytest.param(
        ["mean", "INPUTS", 3, "a", "nan", "b"],
        "input 'nan' has a non-finite value at element 2; nothing was written",
        id="nan",
    ),
    pytest.param(
        ["median", "INPUTS", 2, "b", "inf"],
        "input 'inf' has a non-finite value at element 0; nothing was written",
        id="inf",
    ),
]


@pytest.fixture
def error_keys(sr) -> list[str]:
    sr.execute_command("AI.TENSORSET", "a", "FLOAT", 4, "VALUES", 1, 2, 3, 4)
    sr.execute_command("AI.TENSORSET", "b", "FLOAT", 4, "VALUES", 2, 3, 4, 5)
    sr.execute_command("AI.TENSORSET", "c", "FLOAT", 4, "VALUES", 0, 0, 0, 0)
    sr.execute_command("AI.TENSORSET", "e", "FLOAT", 4, "VALUES", 9, 9, 9, 9)
    sr.execute_command("AI.TENSORSET", "g", "FLOAT", 4, "VALUES", 5, 5, 5, 5)
    sr.execute_command("AI.TENSORSET", "dbl", "DOUBLE", 4)
    sr.execute_command("AI.TENSORSET", "short", "FLOAT", 3)
    sr.execute_command("AI.TENSORSET", "mat", "FLOAT", 2, 2)
    sr.execute_command("AI.TENSORSET", "i32", "INT32", 4)
    sr.execute_command("AI.TENSORSET", "bool", "BOOL", 4)
    sr.execute_command(
        "AI.TENSORSET", "nan", "FLOAT", 4, "BLOB", np.array([1, 2, np.nan, 4], np.float32).tobytes()
    )
    sr.execute_command("AI.TENSORSET", "inf", "FLOAT", 4, "VALUES", "-inf", 1, 1, 1)
    sr.set("s", "text")
    return [
        "a",
        "b",
        "c",
        "e",
        "g",
        "dbl",
        "short",
        "mat",
        "i32",
        "bool",
        "nan",
        "inf",
        "s",
        "dst",
        "missing",
    ]


@pytest.mark.parametrize("dst_state", ["absent", "tensor"])
@pytest.mark.parametrize("args,message", ERRORS)
def test_aggregate_error_leaves_dst_unchanged(sr, error_keys, dst_state, args, message):
    if dst_state == "tensor":
        sr.execute_command("AI.TENSORSET", "dst", "DOUBLE", 2, "VALUES", 7, 8)
    before = snapshot(sr, error_keys)
    assert error_of(sr, "SPIRT.AGGREGATE", "dst", *args) == message
    assert snapshot(sr, error_keys) == before


@pytest.mark.parametrize(
    "args,message",
    [
        (["mean", "INPUTS", 1, "a"], WRONGTYPE),
        (
            ["avg", "INPUTS", 1, "a"],
            "unknown aggregation rule 'avg'; known rules: mean, median, trimmed_mean, krum, multikrum",
        ),
        (["mean", "INPUTS", 1, "missing"], WRONGTYPE),
    ],
    ids=["wrongtype", "syntax-first", "dst-before-inputs"],
)
def test_aggregate_into_a_key_of_another_type(sr, error_keys, args, message):
    before = snapshot(sr, error_keys)
    assert error_of(sr, "SPIRT.AGGREGATE", "s", *args) == message
    assert snapshot(sr, error_keys) == before


def test_aggregate_weights_whose_sum_overflows_are_refused(sr, error_keys):
    before = snapshot(sr, error_keys)
    message = error_of(
        sr, "SPIRT.AGGREGATE", "dst", "mean", "INPUTS", 2, "a", "b", "WEIGHTS", "1e308", "1e308"
    )
    assert message.startswith("WEIGHTS ")
    assert snapshot(sr, error_keys) == before


def test_aggregate_getkeys_reports_dst_and_inputs(sr):
    assert sr.command_getkeys(
        "SPIRT.AGGREGATE", "d", "mean", "INPUTS", 3, "a", "b", "c", "WEIGHTS", 1, 2, 3
    ) == ["d", "a", "b", "c"]
    assert sr.command_getkeys(
        "SPIRT.AGGREGATE", "d", "krum", "INPUTS", 3, "a", "b", "c", "F", 0
    ) == ["d", "a", "b", "c"]


def test_aggregate_in_multi_runs_inline(sr, rng):
    xs = make_inputs(rng, 5, LARGE, "FLOAT")
    keys = [f"x{k}" for k in range(5)]
    for k, x in zip(keys, xs):
        put(sr, k, x)
    before = jobs_queued(sr)
    with sr.pipeline(transaction=True) as pipe:
        pipe.execute_command("SPIRT.AGGREGATE", "m", "mean", "INPUTS", 5, *keys)
        pipe.execute_command("SPIRT.AGGREGATE", "k", "krum", "INPUTS", 5, *keys, "F", 1)
        pipe.execute_command("SPIRT.AGGREGATE", "bad", "mean", "INPUTS", 1, "nothing")
        replies = pipe.execute(raise_on_error=False)
    assert replies[0] == b"OK"
    assert replies[1] == ref.krum(xs, 1).selected
    assert str(replies[2]) == "input tensor 'nothing' does not exist"
    assert jobs_queued(sr) == before
    assert get(sr, "m").tobytes() == ref.mean(xs).value.tobytes()
    assert sr.exists("bad") == 0


def test_aggregate_in_lua_runs_inline(sr, rng):
    xs = make_inputs(rng, 3, LARGE, "DOUBLE")
    for k, x in enumerate(xs):
        put(sr, f"x{k}", x)
    before = jobs_queued(sr)
    script = "return redis.call('SPIRT.AGGREGATE', KEYS[1], 'median', 'INPUTS', 3, KEYS[2], KEYS[3], KEYS[4])"
    assert sr.eval(script, 4, "d", "x0", "x1", "x2") in (b"OK", "OK")
    assert jobs_queued(sr) == before
    assert get(sr, "d").tobytes() == ref.median(xs).value.tobytes()


def test_krum_selection_does_not_depend_on_threads(start_redis, rng):
    """p and q hold the same halves swapped, and every other input is the
    same in both halves: p and q tie in exact arithmetic, and which Krum
    ranks first is decided by the rounding of their distance sums. Those
    are summed over fixed slices in a fixed order, so the decision (and
    every bit of the result) is the same with 1 thread or 4 and on every
    run: peers must agree on it."""
    half = 200_000
    u, v = rng.standard_normal(half), rng.standard_normal(half)
    twice = lambda w: np.concatenate([w, w])  # noqa: E731
    xs = [np.concatenate([u, v]), np.concatenate([v, u])]
    xs += [twice(rng.standard_normal(half) * (1 + k)) for k in range(3)]
    results = set()
    for threads in (1, 4):
        server = start_redis(f"t{threads}", persistence="none")
        server.stop()
        add_module_args(server.cfg.conf_path, "THREADS", str(threads))
        server.start()
        client = server.client()
        for k, x in enumerate(xs):
            put(client, f"x{k}", x)
        keys = [f"x{k}" for k in range(len(xs))]
        for _ in range(12 if threads > 1 else 1):
            chosen = client.execute_command("SPIRT.AGGREGATE", "d", "multikrum", "INPUTS", len(xs), *keys, "F", 1)
            results.add((tuple(chosen), get(client, "d").tobytes()))
    assert len(results) == 1
