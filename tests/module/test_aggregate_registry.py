"""SPIRT.AGGREGATE against the rule registry (spirtd.aggregation.RULES):
the module knows exactly the registered rules and statistics, takes
exactly each rule's declared option keywords and GIVEN exactly for the
statistics each rule needs (Rule.needs), and accepts exactly the number of
inputs the Python bound of each rule gives (refusing one fewer)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from spirtd.aggregation import RULES, OptionType, Statistic, validate_call
from spirtd.store.native import aggregate_args

from tests.aggregation.rule_cases import BOUND_CASES, keyword_args

from .helpers import error_of, put

KNOWN_RULES = re.compile(r"known rules: (.*)$")
KNOWN_STATISTICS = re.compile(r"known statistics: (.*)$")


def put_inputs(sr, n: int) -> list[str]:
    keys = [f"x{k}" for k in range(n)]
    for k, key in enumerate(keys):
        put(sr, key, np.full(4, float(k), np.float32))
    return keys


def weights_for(rule: str, n: int) -> dict[str, list[float]]:
    return {o.name: [1.0] * n for o in RULES[rule].declared if o.type is OptionType.WEIGHTS}


def test_the_module_knows_exactly_the_registered_rules(sr):
    put_inputs(sr, 1)
    message = error_of(sr, "SPIRT.AGGREGATE", "d", "no-such-rule", "INPUTS", 1, "x0")
    found = KNOWN_RULES.search(message)
    assert found is not None, message
    assert found.group(1).split(", ") == list(RULES)


def unchecked_args(rule: str, counts: dict[str, int], keys: list[str]) -> list[object]:
    """SPIRT.AGGREGATE for these keys and counts, built without Python's checks."""
    return ["SPIRT.AGGREGATE", "d", rule, "INPUTS", len(keys), *keys, *keyword_args(rule, counts)]


@pytest.mark.parametrize("rule, counts", BOUND_CASES, ids=str)
def test_the_module_accepts_exactly_the_python_bound(sr, rule, counts):
    n = RULES[rule].min_inputs(counts)
    keys = put_inputs(sr, n)
    call = validate_call(rule, n, {**counts, **weights_for(rule, n)})
    sr.execute_command(*aggregate_args("d", call, keys))
    if n == 1:
        return  # INPUTS takes at least one key: no call has fewer
    message = error_of(sr, *unchecked_args(rule, counts, keys[:-1]))
    assert message.startswith(f"{rule} ") and message.endswith(f"got {n - 1}"), message


@pytest.mark.parametrize("rule", RULES)
def test_the_module_takes_the_declared_options_of_each_rule(sr, rule):
    """Every option keyword any rule has: accepted where the registry
    declares it, refused by name where it does not."""
    keys = put_inputs(sr, 7)
    every = {o.wire: o for r in RULES.values() for o in r.declared}
    for wire, option in every.items():
        value = ["1"] * 7 if option.type is OptionType.WEIGHTS else [str(max(option.minimum, 1))]
        required = [w for o in RULES[rule].declared if o.required and o.wire != wire
                    for w in (o.wire, "1")]  # fmt: skip
        args = ["SPIRT.AGGREGATE", "d", rule, "INPUTS", 7, *keys, *required, wire, *value]
        if option.name in RULES[rule].options:
            sr.execute_command(*args)
        else:
            assert error_of(sr, *args) == f"option '{wire}' does not apply to rule {rule}"


def test_the_module_knows_exactly_the_registered_statistics(sr):
    put_inputs(sr, 1)
    for command in (["SPIRT.STATISTIC", "no-such"], ["SPIRT.STATISTIC", "INPUTS"]):
        message = error_of(sr, *command, "INPUTS", 1, "x0")
        found = KNOWN_STATISTICS.search(message)
        assert found is not None, message
        assert found.group(1).split(", ") == [stat.wire for stat in Statistic]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("stat", Statistic)
def test_the_module_takes_given_exactly_for_what_each_rule_needs(sr, rule, stat):
    keys = put_inputs(sr, 7)
    call = validate_call(rule, 7, {o.name: 1 for o in RULES[rule].declared if o.required})
    numbers = np.ones(stat.shape(7)) - np.eye(7)
    args = [*aggregate_args("d", call, keys), "GIVEN", stat.wire, numbers.tobytes()]
    if stat in RULES[rule].needs:
        sr.execute_command(*args)
    else:
        assert error_of(sr, *args) == f"rule {rule} does not need {stat.wire}; GIVEN does not apply"
