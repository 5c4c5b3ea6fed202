"""Hand-computed results of every rule, and the registry's shape."""

from __future__ import annotations

import numpy as np
import pytest

from spirtd.aggregation import RULES, AggregateOutput, Rule, aggregate, validate_call


def rows(*values: object, dtype: type = np.float64) -> list[np.ndarray]:
    return [np.asarray(v, dtype=dtype) for v in values]


# rule, inputs, options, expected value, expected selected
CASES = [
    ("mean", rows([1, 2], [3, 4], [5, 9]), {}, [3, 5], None),
    ("mean", rows([1, 2], [3, 4]), {"weights": [1, 3]}, [2.5, 3.5], None),
    ("mean", rows([1], [100]), {"weights": [2, 0]}, [1], None),
    ("mean", rows([7.5, -1]), {}, [7.5, -1], None),
    ("median", rows([3], [1], [2]), {}, [2], None),
    ("median", rows([4], [1], [3], [2]), {}, [2.5], None),
    ("median", rows([1, 10], [2, 30], [3, 20]), {}, [2, 20], None),
    ("median", rows([1, -1], [100, 5], [-7, 0], [2, 1e6]), {}, [1.5, 2.5], None),
    ("median", rows([7.5]), {}, [7.5], None),
    ("trimmed_mean", rows([1], [100], [2], [3], [-50]), {"b": 1}, [2], None),
    ("trimmed_mean", rows([1, 5], [100, 6], [2, 7], [-50, 8]), {"b": 1}, [1.5, 6.5], None),
    ("trimmed_mean", rows([1], [2], [6]), {"b": 0}, [3], None),
    ("trimmed_mean", rows([1], [2], [6]), {"b": 1}, [2], None),
    ("trimmed_mean", rows([7.5]), {"b": 0}, [7.5], None),
    # scores with f=1 (2 nearest): 0 -> 1+4, 1 -> 1+1, 2 -> 1+1, 3 -> 1+4, 100 -> huge
    ("krum", rows([0], [1], [2], [3], [100]), {"f": 1}, [1], (1,)),
    ("multikrum", rows([0], [1], [2], [3], [100]), {"f": 1, "m": 3}, [1], (1, 2, 0)),
    ("multikrum", rows([0], [1], [2], [3], [100]), {"f": 1}, [1.5], (1, 2, 0, 3)),
    ("multikrum", rows([0], [1], [2], [3], [100]), {"f": 1, "m": 1}, [1], (1,)),
    # f=0 (n-2 = 3 nearest): (0,0) has 0.5+1+1, (1,0) and (0,1) 0.5+1+2, (.5,.5) 0.5*3
    ("krum", rows([0, 0], [1, 0], [0, 1], [0.5, 0.5], [5, 5]), {"f": 0}, [0.5, 0.5], (3,)),
    (
        "multikrum",
        rows([0, 0], [1, 0], [0, 1], [0.5, 0.5], [5, 5]),
        {"f": 0, "m": 2},
        [0.25, 0.25],
        (3, 0),
    ),
    ("krum", rows([2, 2], [2, 2], [2, 2]), {"f": 0}, [2, 2], (0,)),
    ("multikrum", rows([2, 2], [2, 2], [2, 2], [2, 2], [2, 2]), {"f": 1}, [2, 2], (0, 1, 2, 3)),
]


@pytest.mark.parametrize("rule, inputs, options, want, selected", CASES)
def test_aggregate_hand_computed(rule, inputs, options, want, selected):
    out = aggregate(rule, inputs, **options)
    np.testing.assert_array_equal(out.value, np.asarray(want, dtype=np.float64))
    assert out.selected == selected


@pytest.mark.parametrize("rule, inputs, options, want, selected", CASES)
def test_aggregate_float32_keeps_dtype(rule, inputs, options, want, selected):
    out = aggregate(rule, [x.astype(np.float32) for x in inputs], **options)
    assert out.value.dtype == np.float32
    np.testing.assert_array_equal(out.value, np.asarray(want, dtype=np.float32))


@pytest.mark.parametrize("rule, options", [("mean", {}), ("median", {}), ("krum", {"f": 0})])
def test_aggregate_keeps_shape(rule, options):
    inputs = [np.full((2, 3), float(k)) for k in range(4)]
    out = aggregate(rule, inputs, **options)
    assert out.value.shape == (2, 3)


def test_mean_multiplies_by_reciprocal_after_index_order_sum():
    # 0.1 + 0.2 + 0.0 = 0.30000000000000004; times 1/3 is 0.1, divided by 3 is not.
    out = aggregate("mean", rows([0.1], [0.2], [0.0]))
    assert out.value[0] == 0.1
    assert out.value[0] != (0.1 + 0.2 + 0.0) / 3


def test_mean_weighted_scales_by_reciprocal_of_total():
    out = aggregate("mean", rows([0.1], [0.2], [5.0]), weights=[1, 1, 0])
    assert out.value[0] == (1 * 0.1 + 1 * 0.2 + 0 * 5.0) * (1.0 / 2)


def test_mean_rounds_once_to_float32():
    # float64 sum then one rounding: 1 + 2^-24 + 2^-24 is exact in float64,
    # while float32 accumulation would lose both halves.
    tiny = np.float32(2.0**-24)
    out = aggregate(
        "mean", [np.float32([1.0]), np.array([tiny]), np.array([tiny])], weights=[1, 1, 1]
    )
    assert out.value[0] == np.float32((1.0 + 2.0**-23) / 3)


def test_median_even_is_midpoint_in_float64():
    big = np.float32(3.0e38)
    out = aggregate(
        "median", [np.float32([big]), np.float32([big]), np.float32([0.0]), np.float32([big])]
    )
    assert out.value[0] == big  # (big + big) * 0.5 would overflow float32


def test_krum_selects_lowest_index_on_ties():
    inputs = rows([1, 1], [1, 1], [1, 1], [1, 1], [1, 1])
    assert aggregate("krum", inputs, f=1).selected == (0,)
    assert aggregate("multikrum", inputs, f=1, m=2).selected == (0, 1)


def test_krum_returns_selected_input_exactly():
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal(17).astype(np.float32) for _ in range(7)]
    out = aggregate("krum", inputs, f=2)
    (i,) = out.selected
    np.testing.assert_array_equal(out.value, inputs[i])


@pytest.mark.parametrize("f", range(5))
def test_krum_f_limit_exact_bound_works(f):
    inputs = [np.full(3, float(k)) for k in range(2 * f + 3)]
    for rule in ("krum", "multikrum"):
        assert aggregate(rule, inputs, f=f).selected is not None


def test_aggregate_n1_returns_input():
    x = np.array([[1.5, -2.0]], dtype=np.float32)
    for rule, options in (("mean", {}), ("median", {}), ("trimmed_mean", {"b": 0})):
        out = aggregate(rule, [x], **options)
        np.testing.assert_array_equal(out.value, x)
        assert out.value.dtype == np.float32


def test_aggregate_output_is_a_fresh_array():
    x = np.ones(3)
    x.flags.writeable = False
    out = aggregate("mean", [x])
    assert out.value is not x and out.value.flags.writeable


def test_aggregate_empty_tensors():
    inputs = [np.zeros((0, 2)) for _ in range(5)]
    for rule, options in (
        ("mean", {}),
        ("median", {}),
        ("trimmed_mean", {"b": 2}),
        ("krum", {"f": 1}),
    ):
        assert aggregate(rule, inputs, **options).value.shape == (0, 2)


def test_rules_registry_names_and_fields():
    assert list(RULES) == ["mean", "median", "trimmed_mean", "krum", "multikrum"]
    for name, rule in RULES.items():
        assert isinstance(rule, Rule) and rule.name == name and rule.summary
        assert rule.required <= rule.options
    assert RULES["krum"].min_inputs({"f": 2}) == 7
    assert RULES["trimmed_mean"].min_inputs({"b": 2}) == 5
    assert RULES["krum"].max_inputs == 1024 and RULES["mean"].max_inputs is None


@pytest.mark.parametrize(
    "rule, n, options, full, user",
    [
        ("mean", 3, {}, {}, {}),
        ("mean", 2, {"weights": [1, 2]}, {"weights": (1.0, 2.0)}, {"weights": (1.0, 2.0)}),
        ("krum", 5, {"f": 1}, {"f": 1, "m": 1}, {"f": 1}),
        ("multikrum", 7, {"f": 2}, {"f": 2, "m": 5}, {"f": 2}),
        ("multikrum", 7, {"f": np.int64(2), "m": 3}, {"f": 2, "m": 3}, {"f": 2, "m": 3}),
        ("trimmed_mean", 3, {"b": 1, "f": None}, {"b": 1}, {"b": 1}),
    ],
)
def test_validate_call_fills_defaults(rule, n, options, full, user):
    call = validate_call(rule, n, options)
    assert call.rule is RULES[rule] and call.n == n
    assert dict(call.options) == full
    assert dict(call.user_options) == user


def test_aggregate_output_fields():
    out = AggregateOutput(np.zeros(1))
    assert out.selected is None
