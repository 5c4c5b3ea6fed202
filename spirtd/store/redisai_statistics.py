"""Whole-vector statistics in the RedisAI backend's script, as TorchScript
source: spirt_statistic, and the statistics handed to a rule instead of
computed by it (spirtd.aggregation.statistics). redisai_scripts.py joins it
to the helpers (_stack, _check_count, ...) and the rules, which call
_take_given and _statistics.

A statistic given to a rule travels as one more input tensor (float64, its
shape for the n inputs) after the inputs, and one more arg, GIVEN_PREFIX and
its name, after the rule's options, in the same order. Which statistics a
rule needs is written into the source from Rule.needs, so that the script
refuses what the registry refuses.
"""

from __future__ import annotations

from collections.abc import Mapping

from spirtd.aggregation import Rule, Statistic

# Marks an arg naming a statistic given (the rules' own args are numbers).
GIVEN_PREFIX = "given:"


def _needs(rules: Mapping[str, Rule]) -> str:
    lines = ["def _needs(rule: str) -> List[str]:"]
    for name, rule in rules.items():
        needs = ", ".join(f'"{stat.value}"' for stat in Statistic if stat in rule.needs)
        if needs:
            lines += [f'    if rule == "{name}":', f"        return [{needs}]"]
    lines += ["    nothing: List[str] = []", "    return nothing", "", ""]
    return "\n".join(lines)


_KNOWN = ", ".join(stat.value for stat in Statistic)
_STAT_NAMES = ", ".join(f'"{stat.value}"' for stat in Statistic)

_SOURCE = """
def _compute(name: str, x: Tensor) -> Tensor:
    # COMPUTE of spirtd.aggregation.statistics
    if name == "pairwise_squared_distances":
        return _pairwise_squared_distances(x)
    assert False, ("unknown statistic '" + name + "'; known statistics: KNOWN")


def _check_given(t: Tensor, name: str, n: int):
    if t.dtype != FLOAT64 or t.size() != [n, n]:
        assert False, ("given " + name + " must be float64 of shape [" + str(n) + ", " + str(n)
                         + "] for " + str(n) + " inputs; got " + _dtype_name(t) + " "
                         + str(t.size()))
    if not bool(torch.isfinite(t).all()):
        assert False, ("given " + name + " must be finite")


def _take_given(tensors: List[Tensor], keys: List[str], args: List[str],
                rule: str) -> Tuple[List[Tensor], List[str], Dict[str, Tensor]]:
    # The inputs, the rule's own args and the statistics given (each one
    # the rule needs, checked), split apart.
    count = 0
    while count < len(args) and args[len(args) - 1 - count][:PREFIX_LEN] == "PREFIX":
        count += 1
    n = len(tensors) - count
    if n < 0:
        assert False, (str(count) + " statistics given but only " + str(len(tensors)) + " tensors")
    given: Dict[str, Tensor] = {}
    for j in range(count):
        name = args[len(args) - count + j][PREFIX_LEN:]
        if name not in _needs(rule):
            assert False, ("rule " + rule + " does not need " + name + ", but it was given")
        _check_given(tensors[n + j], name, n)
        given[name] = tensors[n + j]
    return tensors[:n], args[: len(args) - count], given


def _statistics(x: Tensor, given: Dict[str, Tensor], rule: str) -> Dict[str, Tensor]:
    # What the rule needs: given, or computed from its inputs (run_rule).
    stats: Dict[str, Tensor] = {}
    for name in _needs(rule):
        if name in given:
            stats[name] = given[name]
        else:
            stats[name] = _compute(name, x)
    return stats


def spirt_statistic(tensors: List[Tensor], keys: List[str], args: List[str]):
    _check_count(args, [1], "spirt_statistic")
    name = args[0]
    if name not in [STAT_NAMES]:
        assert False, ("unknown statistic '" + name + "'; known statistics: KNOWN")
    n = len(tensors)
    if n > STATISTIC_MAX_INPUTS:
        assert False, (name + " compares every pair of inputs and takes at most "
                         + str(STATISTIC_MAX_INPUTS) + "; got " + str(n))
    value = _compute(name, _stack(tensors, keys))
    if not bool(torch.isfinite(value).all()):
        assert False, (name + " overflowed: it is not finite although every input is")
    return [value]
"""


def statistics_source(rules: Mapping[str, Rule]) -> str:
    """The source, with each rule's needs and the names written in."""
    text = _SOURCE.replace("PREFIX_LEN", str(len(GIVEN_PREFIX))).replace('"PREFIX"', f'"{GIVEN_PREFIX}"')
    text = text.replace("STAT_NAMES", _STAT_NAMES).replace("KNOWN", _KNOWN)
    return _needs(rules) + text
