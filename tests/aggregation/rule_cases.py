"""Calls of every registered rule, built from its declarations: the cases
the conformance suite and the registry tests run, so that a rule added to
spirtd.aggregation.RULES is run by them with no edit here.

RULE_CASES: every rule with sample options, each option given in one case
at least. BOUND_CASES: every rule with a table of values for its required
counts (f, b), where each backend must accept exactly the Python bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spirtd.aggregation import RULES, OptionType, RuleOption


@dataclass(frozen=True)
class RuleCase:
    """A rule with its COUNT options set, and the names of its WEIGHTS
    options given (their values, one per input, come with each call)."""

    rule: str
    counts: Mapping[str, int] = field(default_factory=dict)
    weighted: tuple[str, ...] = ()

    @property
    def min_inputs(self) -> int:
        return RULES[self.rule].min_inputs(self.counts)

    def options(self, weights: Sequence[float] = ()) -> dict[str, Any]:
        """The options for a call with one weight per input in weights."""
        return {**self.counts, **{name: list(weights) for name in self.weighted}}

    def __str__(self) -> str:
        given = [f"{k}={v}" for k, v in self.counts.items()] + list(self.weighted)
        return "-".join([self.rule, *given])


def sample_count(option: RuleOption) -> int:
    """One above the least value (f = 1, b = 1, m = 2): the rule does work
    that its edge case (nothing dropped, nothing faulty) would skip."""
    return option.minimum + 1


def _given(options: Sequence[RuleOption]) -> tuple[dict[str, int], tuple[str, ...]]:
    counts = {o.name: sample_count(o) for o in options if o.type is OptionType.COUNT}
    return counts, tuple(o.name for o in options if o.type is OptionType.WEIGHTS)


def rule_cases() -> list[RuleCase]:
    """Every rule with its required options, then once more with each
    optional option given as well."""
    cases = []
    for rule in RULES.values():
        required = [o for o in rule.declared if o.required]
        cases.append(RuleCase(rule.name, *_given(required)))
        for option in rule.declared:
            if not option.required:
                cases.append(RuleCase(rule.name, *_given([*required, option])))
    return cases


RULE_CASES = rule_cases()

# Values of the required counts (f, b) at which each backend's bound is
# compared with the Python one.
BOUND_VALUES = (0, 1, 2, 3, 5, 8)


def bound_cases() -> list[tuple[str, dict[str, int]]]:
    """Every rule with each of BOUND_VALUES for its required counts (a rule
    without any: once, with none)."""
    cases: list[tuple[str, dict[str, int]]] = []
    for name, rule in RULES.items():
        counts = [o for o in rule.declared if o.required and o.type is OptionType.COUNT]
        if not counts:
            cases.append((name, {}))
        for value in BOUND_VALUES if counts else ():
            cases.append((name, {o.name: max(o.minimum, value) for o in counts}))
    return cases


def keyword_args(rule: str, counts: Mapping[str, int]) -> list[str]:
    """SPIRT.AGGREGATE's option arguments for these counts, unchecked."""
    args: list[str] = []
    for name, value in counts.items():
        option = RULES[rule].option(name)
        args += [option.wire, *option.wire_values(value)]
    return args


def script_args(rule: str, counts: Mapping[str, int]) -> list[str]:
    """A TorchScript entry point's args for these counts, unchecked."""
    return [text for name, v in counts.items() for text in RULES[rule].option(name).wire_values(v)]


BOUND_CASES = bound_cases()
