"""Every rule of the registry reaches every store backend: the arguments
the native and RedisAI backends send follow the rule's declarations, the
RedisAI script has a function for every rule, and takes a statistic given
exactly where the rule needs it (Rule.needs). (That each backend runs
every rule correctly: the conformance suite, parametrised by the registry;
that the native module knows every rule: tests/module/test_aggregate_registry.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spirtd.aggregation import RULES, Statistic, validate_call
from spirtd.store.native import aggregate_args
from spirtd.store.redisai_statistics import GIVEN_PREFIX
from spirtd.store.redisai import ENTRY_POINT, rule_args
from spirtd.store.redisai_scripts import ENTRY_POINTS, SCRIPT, entry_point
from tests.aggregation.rule_cases import RULE_CASES


@pytest.fixture(scope="module")
def cu() -> torch.jit.CompilationUnit:
    return torch.jit.CompilationUnit(SCRIPT)


@pytest.mark.parametrize("rule", RULES)
def test_every_registered_rule_has_its_torchscript_function(cu, rule):
    name = entry_point(RULES[rule])
    assert ENTRY_POINT[rule] == name and name in ENTRY_POINTS
    assert f"{name}(Tensor[] tensors, str[] keys, str[] args)" in str(getattr(cu, name).schema)


@pytest.mark.parametrize("case", RULE_CASES, ids=str)
def test_every_rule_runs_in_the_script_with_the_arguments_it_is_sent(cu, case):
    n = case.min_inputs
    inputs = [torch.full([3], float(k)) for k in range(n)]
    call = validate_call(case.rule, n, case.options([1.0] * n))
    out = getattr(cu, ENTRY_POINT[case.rule])(inputs, [], rule_args(call))
    assert len(out) == (2 if RULES[case.rule].selects else 1)


@pytest.mark.parametrize("case", RULE_CASES, ids=str)
def test_store_arguments_follow_the_declarations(case):
    """Each option a call has travels as its declared keyword (native) and,
    in declaration order, as plain strings (RedisAI)."""
    n = case.min_inputs
    call = validate_call(case.rule, n, case.options([0.5] * n))
    keys = [f"k{i}" for i in range(n)]
    native = aggregate_args("d", call, keys)
    assert native[: 5 + n] == ["SPIRT.AGGREGATE", "d", case.rule, "INPUTS", n, *keys]
    script: list[str] = []
    for option, value in call.sent_options():
        at = native.index(option.wire)
        texts = option.wire_values(value)
        assert native[at + 1 : at + 1 + len(texts)] == texts
        assert [float(t) for t in texts] == list(np.atleast_1d(value).astype(float))
        script += texts
    assert rule_args(call) == script
    assert len(native) == 5 + n + len(call.sent_options()) + len(script)


def test_krum_sends_no_m_and_multikrum_its_default():
    assert aggregate_args("d", validate_call("krum", 5, {"f": 1}), list("abcde"))[-2:] == ["F", "1"]
    assert rule_args(validate_call("multikrum", 7, {"f": 2})) == ["2", "5"]




@pytest.mark.parametrize("case", RULE_CASES, ids=str)
@pytest.mark.parametrize("stat", Statistic)
def test_the_script_takes_given_exactly_for_what_each_rule_needs(cu, case, stat):
    n = case.min_inputs
    inputs = [torch.full([3], float(k)) for k in range(n)]
    numbers = torch.ones(stat.shape(n), dtype=torch.float64) - torch.eye(n, dtype=torch.float64)
    call = validate_call(case.rule, n, case.options([1.0] * n))
    args = [*rule_args(call), GIVEN_PREFIX + stat.value]
    entry = getattr(cu, ENTRY_POINT[case.rule])
    if stat in RULES[case.rule].needs:
        entry([*inputs, numbers], [], args)
    else:
        with pytest.raises((torch.jit.Error, RuntimeError), match="does not need"):
            entry([*inputs, numbers], [], args)


def test_native_arguments_carry_the_given_statistic_last():
    call = validate_call("multikrum", 5, {"f": 1})
    dist = np.arange(25, dtype=np.float64).reshape(5, 5)
    args = aggregate_args("d", call, list("abcde"), {Statistic.PAIRWISE_SQUARED_DISTANCES: dist})
    assert args[:-3] == aggregate_args("d", call, list("abcde"))
    assert args[-3:-1] == ["GIVEN", "PAIRWISE_SQUARED_DISTANCES"]
    assert np.frombuffer(args[-1], "<f8").tolist() == dist.ravel().tolist()
