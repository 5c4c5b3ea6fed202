"""The rule registry: what each rule declares, and that the checks, the
statistics and the job spec's checks follow the declarations. (The stores'
arguments, and whether every backend has every rule:
tests/store/test_rule_registry.py, tests/store/test_conformance.py and
tests/module/test_aggregate_registry.py.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from spirtd.aggregation import RULES, OptionType, Statistic, aggregate, validate_call, validate_spec
from spirtd.aggregation import krum, trimmed_mean
from spirtd.aggregation.base import run_rule
from spirtd.aggregation.statistics import COMPUTE, pairwise_squared_distances
from spirtd.errors import AggregationError
from tests.aggregation.rule_cases import RULE_CASES

# f (or b) -> the fewest inputs, from the papers: n >= 2f + 3, n > 2b.
KRUM_BOUNDS = [(0, 3), (1, 5), (2, 7), (5, 13), (100, 203)]
TRIMMED_BOUNDS = [(0, 1), (1, 3), (2, 5), (7, 15)]


def test_registry_declarations_are_well_formed():
    for name, rule in RULES.items():
        names = [o.name for o in rule.declared]
        assert rule.name == name and len(names) == len(set(names)), name
        assert all(isinstance(o.type, OptionType) and o.doc for o in rule.declared), name
        assert all(isinstance(s, Statistic) for s in rule.needs), name
        assert not any(o.required and o.default is not None for o in rule.declared), name
    assert set(COMPUTE) == set(Statistic)


@pytest.mark.parametrize(
    "rule, needs",
    [
        ("mean", set()),
        ("median", set()),
        ("trimmed_mean", set()),
        ("krum", {Statistic.PAIRWISE_SQUARED_DISTANCES}),
        ("multikrum", {Statistic.PAIRWISE_SQUARED_DISTANCES}),
    ],
)
def test_rules_that_compare_whole_inputs_declare_the_distances(rule, needs):
    assert RULES[rule].needs == needs


@pytest.mark.parametrize("f, n", KRUM_BOUNDS)
def test_krum_min_inputs_is_the_papers_bound(f, n):
    assert krum.min_inputs(f) == n
    for rule in ("krum", "multikrum"):
        assert RULES[rule].min_inputs({"f": f}) == n


@pytest.mark.parametrize("b, n", TRIMMED_BOUNDS)
def test_trimmed_mean_min_inputs_leaves_one_value(b, n):
    assert trimmed_mean.min_inputs(b) == RULES["trimmed_mean"].min_inputs({"b": b}) == n


@pytest.mark.parametrize("case", RULE_CASES, ids=str)
def test_validate_call_accepts_exactly_the_declared_minimum(case):
    n = case.min_inputs
    validate_call(case.rule, n, case.options([1.0] * n))
    if n > 1:
        with pytest.raises(AggregationError, match=f"{case.rule} "):
            validate_call(case.rule, n - 1, case.options([1.0] * (n - 1)))


def test_defaults_come_from_the_declarations():
    m = RULES["multikrum"].option("m")
    assert m.default is not None and m.default(7, {"f": 2}) == 5
    assert validate_call("multikrum", 7, {"f": 2}).options["m"] == 5
    assert RULES["mean"].option("weights").default is None
    assert "weights" not in validate_call("mean", 3, {}).options


def test_pairwise_squared_distances_of_a_matrix():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 11))
    want = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    got = pairwise_squared_distances(x)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert (np.diag(got) == 0).all() and (got == got.T).all()


def test_pairwise_squared_distances_sum_over_column_blocks():
    """The statistic of the whole matrix is the sum of its shards' statistics:
    what lets shard owners compute it in parts."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 30))
    parts = sum(pairwise_squared_distances(x[:, c : c + 7]) for c in range(0, 30, 7))
    np.testing.assert_allclose(parts, pairwise_squared_distances(x), rtol=1e-12)


def test_krum_chooses_by_the_distances_it_is_given():
    """Krum uses the statistic handed to it, not its own: given distances
    that make input 4 central, it picks input 4."""
    x = np.arange(5.0)[:, None]
    dist = np.full((5, 5), 100.0)
    dist[4, :] = dist[:, 4] = 1.0
    np.fill_diagonal(dist, 0.0)
    stats = {Statistic.PAIRWISE_SQUARED_DISTANCES: dist}
    value, selected = RULES["krum"].fn(x, {"f": 1, "m": 1}, stats)
    assert selected == (4,) and value.tolist() == [4.0]


@pytest.mark.parametrize("case", RULE_CASES, ids=str)
def test_run_rule_gives_each_rule_exactly_the_statistics_it_needs(case):
    seen = []
    rule = RULES[case.rule]

    def spy(x, options, stats):
        seen.append(set(stats))
        return rule.fn(x, options, stats)

    n = case.min_inputs
    inputs = [np.full(3, float(k)) for k in range(n)]
    options = case.options([1.0] * n)
    call = validate_call(case.rule, n, options)
    out = run_rule(dataclasses.replace(call, rule=dataclasses.replace(rule, fn=spy)), inputs)
    assert seen == [set(rule.needs)]
    np.testing.assert_array_equal(out.value, aggregate(case.rule, inputs, **options).value)


# rule, options, message (from the start, literally)
SPEC_ERRORS = [
    ("krum", {"f": 1, "x": 2}, "rule krum has no option 'x'; its options: f"),
    ("multikrum", {"f": 1, "b": 2}, "rule multikrum has no option 'b'; its options: f, m"),
    ("median", {"f": 1}, "rule median has no option 'f'; its options: none"),
    ("mean", {"weights": [1, 1, 1]}, "option 'weights' of rule mean is not set in a job spec"),
    ("nope", {}, "unknown aggregation rule 'nope'; known rules: mean, median, trimmed_mean, krum,"),
    ("krum", {"f": 1}, "krum tolerates f faulty inputs only with n >= 2f+3: f=1 needs at least 5 inputs, got 3"),
]


@pytest.mark.parametrize("rule, options, message", SPEC_ERRORS)
def test_validate_spec_refuses_options_a_spec_cannot_set(rule, options, message):
    with pytest.raises(AggregationError) as info:
        validate_spec(rule, 3, options)
    assert str(info.value).startswith(message)


def test_validate_spec_accepts_what_a_spec_sets():
    assert dict(validate_spec("multikrum", 7, {"f": 2, "m": None}).options) == {"f": 2, "m": 5}
    assert dict(validate_spec("mean", 3, {}).options) == {}
