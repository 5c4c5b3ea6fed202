"""Aggregation rules: pure functions that combine n tensors of one shape
into one, behind one interface (see base.Rule) and one wrapper that checks
every precondition the same way.

    aggregate("krum", [a, b, c, d, e], f=1)  ->  AggregateOutput(value, selected=(2,))

Adding a rule is one module with its function and Rule, and one line in
RULES. This is the test oracle of the native module and the implementation
of the plain-Redis backend; it does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from spirtd.aggregation import krum, mean, median, trimmed_mean
from spirtd.aggregation.base import (
    AggregateOutput,
    Rule,
    RuleCall,
    check_call,
    check_inputs,
    run_rule,
)
from spirtd.errors import AggregationError

__all__ = ["RULES", "AggregateOutput", "Rule", "RuleCall", "aggregate", "validate_call"]

RULES: Mapping[str, Rule] = MappingProxyType(
    {
        "mean": mean.RULE,
        "median": median.RULE,
        "trimmed_mean": trimmed_mean.RULE,
        "krum": krum.RULE_KRUM,
        "multikrum": krum.RULE_MULTIKRUM,
    }
)


def validate_call(rule_name: str, n: int, options: Mapping[str, Any]) -> RuleCall:
    """Checks everything that does not need the data: the rule exists, its
    options are allowed, present when required, of the right types and
    ranges, and n inputs are enough (and not too many) for them. Options
    given as None count as not given. Raises AggregationError."""
    rule = RULES.get(rule_name) if isinstance(rule_name, str) else None
    if rule is None:
        raise AggregationError(
            f"unknown aggregation rule {rule_name!r}; known rules: {', '.join(RULES)}"
        )
    return check_call(rule, n, options)


def aggregate(
    rule_name: str,
    inputs: Sequence[np.ndarray],
    *,
    names: Sequence[str] | None = None,
    **options: Any,
) -> AggregateOutput:
    """Aggregates inputs (numpy arrays of one shape, all float32 or all
    float64, every value finite) with a rule of RULES. Computes in float64
    and rounds once to the inputs' dtype; never modifies the inputs. names,
    if given, name the inputs in error messages (e.g. their keys) instead of
    their indices. Raises AggregationError."""
    call = validate_call(rule_name, len(inputs), options)
    check_inputs(inputs, names)
    return run_rule(call, inputs)
