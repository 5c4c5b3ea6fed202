"""Every way a call can be refused, and the words it is refused with."""

from __future__ import annotations

import re

import numpy as np
import pytest

from spirtd.aggregation import aggregate, validate_call
from spirtd.errors import AggregationError

# rule, n, options, message (matched from the start, literally)
CALL_ERRORS = [
    (
        "foo",
        3,
        {},
        "unknown aggregation rule 'foo'; known rules: mean, median, trimmed_mean, krum, multikrum",
    ),
    ("mean", 3, {"f": 1}, "option 'f' does not apply to rule mean"),
    ("median", 3, {"weights": [1, 1, 1]}, "option 'weights' does not apply to rule median"),
    ("krum", 5, {"f": 1, "m": 2}, "option 'm' does not apply to rule krum"),
    ("krum", 5, {}, "rule krum needs option f"),
    ("multikrum", 5, {"m": 2}, "rule multikrum needs option f"),
    ("trimmed_mean", 5, {}, "rule trimmed_mean needs option b"),
    (
        "krum",
        5,
        {"f": 2},
        "krum tolerates f faulty inputs only with n >= 2f+3: f=2 needs at least 7 inputs, got 5",
    ),
    (
        "multikrum",
        6,
        {"f": 2},
        "multikrum tolerates f faulty inputs only with n >= 2f+3: "
        "f=2 needs at least 7 inputs, got 6",
    ),
    (
        "trimmed_mean",
        4,
        {"b": 2},
        "trimmed_mean drops b=2 values at each end, so it needs more than 2b=4 inputs; got 4",
    ),
    ("multikrum", 7, {"f": 3, "m": 5}, None),  # n < 2f+3 comes first
    (
        "multikrum",
        7,
        {"f": 2, "m": 6},
        "multikrum averages m of the n-f best-scored inputs: m=6 is more than n-f=5",
    ),
    ("krum", 2000, {"f": 1}, "krum compares every pair of inputs and takes at most 1024; got 2000"),
    (
        "multikrum",
        1025,
        {"f": 0},
        "multikrum compares every pair of inputs and takes at most 1024; got 1025",
    ),
    ("mean", 3, {"weights": [1, 2]}, "weights needs one weight per input (3)"),
    ("mean", 3, {"weights": [1, -2, 1]}, "weights must be finite and non-negative"),
    ("mean", 3, {"weights": [1, float("nan"), 1]}, "weights must be finite and non-negative"),
    ("mean", 2, {"weights": [1, float("inf")]}, "weights must be finite and non-negative"),
    ("mean", 3, {"weights": [0, 0, 0.0]}, "weights must not all be zero"),
    ("mean", 2, {"weights": [1e308, 1e308]}, "weights must sum to a finite, normal number"),
    ("mean", 2, {"weights": [1e-320, 0.0]}, "weights must sum to a finite, normal number"),
    ("mean", 2, {"weights": 1.0}, "weights must be a sequence"),
    ("mean", 2, {"weights": ["a", "b"]}, "weights must be numbers"),
    ("krum", 5, {"f": 1.0}, "option f must be an integer, got 1.0"),
    ("krum", 5, {"f": True}, "option f must be an integer, got True"),
    ("krum", 5, {"f": "1"}, "option f must be an integer, got '1'"),
    ("krum", 5, {"f": -1}, "option f must be >= 0, got -1"),
    ("trimmed_mean", 5, {"b": -1}, "option b must be >= 0, got -1"),
    ("trimmed_mean", 5, {"b": np.float64(1)}, "option b must be an integer"),
    ("multikrum", 5, {"f": 1, "m": 0}, "option m must be >= 1, got 0"),
    ("mean", 0, {}, "mean needs at least one input; got 0"),
    ("krum", 0, {"f": 0}, "krum needs at least one input; got 0"),
    ("mean", -1, {}, "the number of inputs must be a non-negative integer"),
    ("mean", 2.0, {}, "the number of inputs must be a non-negative integer"),
]


@pytest.mark.parametrize("rule, n, options, message", CALL_ERRORS)
def test_validate_call_refuses(rule, n, options, message):
    with pytest.raises(AggregationError) as info:
        validate_call(rule, n, options)
    if message is not None:
        assert str(info.value).startswith(message)


def test_validate_call_unknown_option_lists_accepted():
    with pytest.raises(AggregationError, match=r"multikrum takes: f, m"):
        validate_call("multikrum", 5, {"b": 1})
    with pytest.raises(AggregationError, match=r"median takes no options"):
        validate_call("median", 5, {"b": 1})


@pytest.mark.parametrize("f", range(5))
def test_krum_f_limit_one_short_raises(f):
    inputs = [np.full(3, float(k)) for k in range(2 * f + 2)]
    for rule in ("krum", "multikrum"):
        with pytest.raises(AggregationError, match=rf"f={f} needs at least {2 * f + 3} inputs"):
            aggregate(rule, inputs, f=f)


def f32(*shape: int) -> np.ndarray:
    return np.zeros(shape, dtype=np.float32)


# inputs, message (literal, from the start)
DATA_ERRORS = [
    ([], "mean needs at least one input; got 0"),
    ([f32(12), f32(12), f32(3, 4)], "input 2 has shape (3, 4) but input 0 has (12,)"),
    (
        [f32(3), np.zeros(3, np.int32)],
        "input 1 has dtype int32; aggregation needs float32 or float64",
    ),
    ([np.zeros(3, np.float16)], "input 0 has dtype float16; aggregation needs float32 or float64"),
    ([f32(3), np.zeros(3)], "input 1 has dtype float64 but input 0 has float32"),
    ([f32(3), [0.0, 0.0, 0.0]], "input 1 is a list, not a numpy array"),
]


@pytest.mark.parametrize("inputs, message", DATA_ERRORS)
def test_aggregate_refuses_bad_inputs(inputs, message):
    with pytest.raises(AggregationError) as info:
        aggregate("mean", inputs)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_aggregate_refuses_non_finite_naming_flat_element(bad):
    inputs = [np.zeros((4, 5)) for _ in range(4)]
    inputs[3][3, 2] = bad
    inputs[3][3, 4] = bad
    for rule, options in (("mean", {}), ("median", {}), ("krum", {"f": 0})):
        with pytest.raises(
            AggregationError, match=re.escape("input 3 has a non-finite value at element 17")
        ):
            aggregate(rule, inputs, **options)


def test_aggregate_names_inputs_by_given_names():
    inputs = [np.zeros(3), np.array([0.0, np.nan, 0.0])]
    with pytest.raises(
        AggregationError, match=re.escape("input 'grad:1' has a non-finite value at element 1")
    ):
        aggregate("mean", inputs, names=["grad:0", "grad:1"])
    with pytest.raises(
        AggregationError, match=re.escape("input 'b' has shape (2,) but input 'a' has (3,)")
    ):
        aggregate("mean", [np.zeros(3), np.zeros(2)], names=["a", "b"])


def test_aggregate_checks_options_before_data():
    with pytest.raises(AggregationError, match="needs at least 7 inputs"):
        aggregate("krum", [np.zeros(2), np.zeros(3)], f=2)


@pytest.mark.parametrize(
    "rule, options", [("mean", {}), ("krum", {"f": 0}), ("multikrum", {"f": 0})]
)
def test_aggregate_refuses_overflow(rule, options):
    inputs = [np.full(2, 1e308), np.full(2, 1.5e308), np.full(2, -1e308)]
    with pytest.raises(AggregationError, match=f"{rule} overflowed"):
        aggregate(rule, inputs, **options)
