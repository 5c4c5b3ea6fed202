"""Aggregation rules: pure functions that combine n tensors of one shape
into one, behind one interface (see base.Rule) and one wrapper that checks
every precondition the same way.

    aggregate("krum", [a, b, c, d, e], f=1)  ->  AggregateOutput(value, selected=(2,))

RULES is the one registry of rules: each entry declares the rule's name,
its options (type, default, whether a job spec sets it), its minimum number
of inputs for its options and the whole-vector statistics it needs. The job
spec's checks, the plain backend (this package), the native backend's
SPIRT.AGGREGATE arguments, the RedisAI backend's script dispatch and the
conformance tests all follow it. This is the test oracle of the native
module and the implementation of the plain-Redis backend; it does no I/O.

Adding a rule takes exactly these edits:
  1. a module here with its function and its Rule, declaring its options
     (RuleOption), the statistics it needs and its min_inputs (paper and
     bound in the docstring; a bound on f as one function, as in krum.py);
  2. one entry in RULES below;
  3. its kernel in spirtd/_native/aggregate.c: a row of RULES there with
     the same name, option keywords (RuleOption.wire) and statistics
     needed, and its bound as one C function (an option no rule had yet:
     also in parse_options; a statistic none had yet: in statistic.c);
  4. its TorchScript function in spirtd/store/redisai_scripts.py, named
     spirt_<rule> (redisai_scripts.entry_point), taking the declared
     options in order as string args, and its bound as one function there;
  5. one test of its results, in CASES of
     tests/aggregation/test_aggregation_rules.py; and the tests that pin
     the list of rule names (test_rules_registry_names_and_fields, and the
     "known rules: ..." messages: grep tests and docs/module-commands.md).
The job spec, the plain backend and both stores' arguments need no edit.
The registry tests (tests/aggregation/test_registry.py,
tests/store/test_rule_registry.py, tests/module/test_aggregate_registry.py,
the live RedisAI tests) fail until every backend has the rule and agrees
with its bound, and the conformance suite runs it on every backend. A new
OptionType also needs its parse and wire_values in base.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from spirtd.aggregation import krum, mean, median, trimmed_mean
from spirtd.aggregation.base import (
    AggregateOutput,
    OptionType,
    Rule,
    RuleCall,
    RuleOption,
    check_call,
    check_given,
    check_inputs,
    run_rule,
)
from spirtd.aggregation.statistics import (
    COMPUTE,
    Statistic,
    check_count,
    check_finite_result,
    find_statistic,
)
from spirtd.errors import AggregationError

__all__ = [
    "RULES",
    "AggregateOutput",
    "OptionType",
    "Rule",
    "RuleCall",
    "RuleOption",
    "Statistic",
    "aggregate",
    "check_given",
    "find_rule",
    "statistic",
    "validate_call",
    "validate_spec",
]

RULES: Mapping[str, Rule] = MappingProxyType(
    {
        "mean": mean.RULE,
        "median": median.RULE,
        "trimmed_mean": trimmed_mean.RULE,
        "krum": krum.RULE_KRUM,
        "multikrum": krum.RULE_MULTIKRUM,
    }
)


def find_rule(rule_name: object) -> Rule:
    """The rule of RULES with that name; AggregationError naming the known ones."""
    rule = RULES.get(rule_name) if isinstance(rule_name, str) else None
    if rule is None:
        raise AggregationError(
            f"unknown aggregation rule {rule_name!r}; known rules: {', '.join(RULES)}"
        )
    return rule


def validate_call(rule_name: str, n: int, options: Mapping[str, Any]) -> RuleCall:
    """Checks everything that does not need the data: the rule exists, its
    options are allowed, present when required, of the right types and
    ranges, and n inputs are enough (and not too many) for them. Options
    given as None count as not given. Raises AggregationError."""
    return check_call(find_rule(rule_name), n, options)


def validate_spec(rule_name: str, n: int, options: Mapping[str, Any]) -> RuleCall:
    """validate_call for a job spec's options, n being its minibatches per
    round: only options a spec sets are allowed, not those given with each
    call (mean's weights)."""
    rule = find_rule(rule_name)
    settable = [o.name for o in rule.declared if o.in_spec]
    for name in (k for k, v in options.items() if v is not None and k not in settable):
        if name in rule.options:
            doc = rule.option(name).doc
            raise AggregationError(
                f"option {name!r} of rule {rule.name} is not set in a job spec: {doc}"
            )
        raise AggregationError(
            f"rule {rule.name} has no option {name!r}; its options: {', '.join(settable) or 'none'}"
        )
    return check_call(rule, n, options)


def aggregate(
    rule_name: str,
    inputs: Sequence[np.ndarray],
    *,
    names: Sequence[str] | None = None,
    given: Mapping[Statistic, np.ndarray] | None = None,
    **options: Any,
) -> AggregateOutput:
    """Aggregates inputs (numpy arrays of one shape, all float32 or all
    float64, every value finite) with a rule of RULES. Computes in float64
    and rounds once to the inputs' dtype; never modifies the inputs. names,
    if given, name the inputs in error messages (e.g. their keys) instead of
    their indices. given holds whole-vector statistics the rule needs, to
    use instead of computing them from the inputs (for inputs that are one
    shard of the vectors: the statistic summed over every shard's
    statistic()); a statistic the rule does not need is refused. Raises
    AggregationError."""
    call = validate_call(rule_name, len(inputs), options)
    stats = check_given(call, given)
    check_inputs(inputs, names)
    return run_rule(call, inputs, stats)


def statistic(
    stat: Statistic, inputs: Sequence[np.ndarray], *, names: Sequence[str] | None = None
) -> np.ndarray:
    """A whole-vector statistic of inputs (as aggregate takes them) as a
    float64 array (for PAIRWISE_SQUARED_DISTANCES, (n, n)). For the
    inputs' columns only: the statistic of whole vectors cut into shards is
    the sum of the shards' statistics. Raises AggregationError."""
    stat = find_statistic(stat)
    check_count(stat, len(inputs))
    check_inputs(inputs, names)
    stacked = np.stack([np.asarray(x, dtype=np.float64).reshape(-1) for x in inputs])
    with np.errstate(over="ignore", invalid="ignore"):
        value = COMPUTE[stat](stacked)
    return check_finite_result(stat, value)


def with_weights(rule_name: str, options: Mapping[str, Any], weights: Sequence[float]) -> dict[str, Any]:
    """options, plus weights for every option of the rule that weights its
    inputs (mean's): inputs count by the samples behind them."""
    out = dict(options)
    out.update({o.name: list(weights) for o in find_rule(rule_name).declared if o.type is OptionType.WEIGHTS})
    return out
