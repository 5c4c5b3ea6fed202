"""The interface every aggregation rule implements, and the one wrapper that
checks preconditions for all of them.

A rule is a pure function of a read-only float64 matrix (one input per row),
its validated options and the whole-vector statistics it declares it needs;
it returns the aggregate as a float64 vector and, for rules that pick
inputs, the indices it picked. Everything that can go wrong before that
(unknown rule or option, wrong option types, too few inputs for f,
mismatched shapes or dtypes, non-finite values) is checked here, the same
way for every rule, so a rule module holds only its math.

A rule's options are declared (RuleOption: name, type, default, how it
travels to the stores); the checks here, the job spec and the store
backends' arguments all follow the declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any, TypeGuard

import numpy as np

from spirtd.aggregation.statistics import COMPUTE, Statistic, check_value, find_statistic
from spirtd.errors import AggregationError

# The dtypes aggregation takes; results come back in the inputs' dtype.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

Options = Mapping[str, Any]
Selection = tuple[int, ...] | None
Statistics = Mapping[Statistic, np.ndarray]
# (n, d) float64 matrix, options with defaults filled in, the statistics the
# rule needs -> ((d,) float64, selection)
RuleFn = Callable[[np.ndarray, Options, Statistics], tuple[np.ndarray, Selection]]


class OptionType(Enum):
    """What values an option takes, and so how it is checked and sent."""

    COUNT = "count"  # an integer >= the option's minimum (f, m, b)
    WEIGHTS = "weights"  # one finite, non-negative number per input, not all zero


@dataclass(frozen=True)
class RuleOption:
    """One option of a rule.

    default gives the value when the caller gives none, from n and the
    options given (multikrum's m = n - f); without one, the option is left
    out (mean without weights) or, if required, must be given. in_spec says
    whether a job spec may set it: mean's weights are not set by the user
    but given with each call (the runner weights gradients by samples).
    """

    name: str
    type: OptionType
    doc: str
    minimum: int = 0
    required: bool = False
    default: Callable[[int, Options], Any] | None = field(default=None, repr=False)
    in_spec: bool = True

    @property
    def wire(self) -> str:
        """Its keyword in SPIRT.AGGREGATE (F, M, B, WEIGHTS)."""
        return self.name.upper()

    def parse(self, value: object, n: int) -> Any:
        """The value checked for n inputs, normalised (ints, a tuple of floats)."""
        if self.type is OptionType.WEIGHTS:
            return check_weights(value, n)
        return check_int(self.name, value, self.minimum)

    def wire_values(self, value: Any) -> list[str]:
        """A parsed value as the stores take it: one string per number, exact
        (repr of a float reads back as the same float)."""
        if self.type is OptionType.WEIGHTS:
            return [repr(float(w)) for w in value]
        return [str(int(value))]


def _at_least_one(options: Options) -> int:
    return 1


@dataclass(frozen=True)
class Rule:
    """One aggregation rule: what it accepts and the function that runs it.

    declared lists its options, in the order the RedisAI scripts take them.
    needs names the whole-vector statistics fn is given; selects says fn
    returns the inputs it chose. min_inputs gives the fewest inputs the rule
    needs for the given options (for Byzantine-robust rules, the bound of
    the paper for f); too_few says why in words, from the options and the n
    that fell short. max_inputs (with max_reason, e.g. "compares every pair
    of inputs") caps n. complete checks options against n and sets what the
    rule fixes (Krum's m = 1), after defaults are filled in; it raises
    AggregationError and returns a new mapping.
    """

    name: str
    summary: str
    fn: RuleFn = field(repr=False)
    declared: tuple[RuleOption, ...] = ()
    needs: frozenset[Statistic] = frozenset()
    selects: bool = False
    min_inputs: Callable[[Options], int] = field(default=_at_least_one, repr=False)
    max_inputs: int | None = None
    too_few: Callable[[Options, int], str] | None = field(default=None, repr=False)
    max_reason: str = "is limited"
    complete: Callable[[int, Options], Options] | None = field(default=None, repr=False)

    @property
    def options(self) -> frozenset[str]:
        """The names of its options."""
        return frozenset(o.name for o in self.declared)

    @property
    def required(self) -> frozenset[str]:
        return frozenset(o.name for o in self.declared if o.required)

    def option(self, name: str) -> RuleOption:
        return next(o for o in self.declared if o.name == name)


@dataclass(frozen=True)
class RuleCall:
    """A rule with a number of inputs and options checked against each other.

    options has every default filled in (multikrum's m = n - f; krum's m = 1);
    user_options holds only what the caller gave, normalised, so that it can
    be passed to aggregate() again.
    """

    rule: Rule
    n: int
    options: Mapping[str, Any]
    user_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def sent_options(self) -> list[tuple[RuleOption, Any]]:
        """The declared options this call has a value for (defaults filled
        in), in declaration order: what the stores are sent."""
        given = [(o, self.options.get(o.name)) for o in self.rule.declared]
        return [(o, value) for o, value in given if value is not None]


@dataclass(frozen=True)
class AggregateOutput:
    """The aggregate, in the inputs' shape and dtype; selected holds the
    inputs Krum or Multi-Krum chose, best score first (None for other rules)."""

    value: np.ndarray
    selected: Selection = None


# ---- option checks, shared by every rule ----


def _is_int(value: object) -> TypeGuard[int | np.integer]:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: object, minimum: int) -> int:
    if not _is_int(value):
        raise AggregationError(f"option {name} must be an integer, got {value!r}")
    if value < minimum:
        raise AggregationError(f"option {name} must be >= {minimum}, got {value}")
    return int(value)


def check_weights(value: Any, n: int) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or np.ndim(value) != 1:
        raise AggregationError(f"weights must be a sequence of one number per input ({n})")
    w = np.asarray(value)
    if w.dtype.kind not in "iuf":
        raise AggregationError(f"weights must be numbers, got dtype {w.dtype}")
    if len(w) != n:
        raise AggregationError(f"weights needs one weight per input ({n}); got {len(w)}")
    w = w.astype(np.float64)
    if not (np.isfinite(w).all() and (w >= 0).all()):
        raise AggregationError("weights must be finite and non-negative")
    if not w.any():
        raise AggregationError("weights must not all be zero")
    with np.errstate(over="ignore"):  # an overflowing sum is reported just below
        total = float(np.sum(w))
    if not np.isfinite(total) or total < np.finfo(np.float64).tiny:
        raise AggregationError("weights must sum to a finite, normal number")
    return tuple(float(x) for x in w)


def _accepts(rule: Rule) -> str:
    if not rule.options:
        return f"{rule.name} takes no options"
    return f"{rule.name} takes: {', '.join(sorted(rule.options))}"


def check_call(rule: Rule, n: int, options: Options) -> RuleCall:
    """Checks options and n against a rule. Options given as None count as
    not given."""
    if not _is_int(n) or n < 0:
        raise AggregationError(f"the number of inputs must be a non-negative integer, got {n!r}")
    n = int(n)
    given = {k: v for k, v in options.items() if v is not None}
    for name in given:
        if name not in rule.options:
            raise AggregationError(
                f"option {name!r} does not apply to rule {rule.name} ({_accepts(rule)})"
            )
    missing = sorted(rule.required - given.keys())
    if missing:
        raise AggregationError(f"rule {rule.name} needs option {missing[0]}")
    user = {name: rule.option(name).parse(value, n) for name, value in given.items()}
    if n < 1:
        raise AggregationError(f"{rule.name} needs at least one input; got 0")
    if rule.max_inputs is not None and n > rule.max_inputs:
        raise AggregationError(
            f"{rule.name} {rule.max_reason} and takes at most {rule.max_inputs}; got {n}"
        )
    if n < rule.min_inputs(user):
        if rule.too_few is not None:
            raise AggregationError(rule.too_few(user, n))
        raise AggregationError(
            f"{rule.name} needs at least {rule.min_inputs(user)} inputs; got {n}"
        )
    full = _with_defaults(rule, n, user)
    if rule.complete is not None:
        full = dict(rule.complete(n, full))
    return RuleCall(rule, n, MappingProxyType(full), MappingProxyType(user))


def _with_defaults(rule: Rule, n: int, user: Options) -> dict[str, Any]:
    """The options given, and the declared default of each one not given."""
    full = dict(user)
    for option in rule.declared:
        if option.name not in full and option.default is not None:
            full[option.name] = option.default(n, user)
    return full


# ---- statistics given ----


def _not_needed(rule: Rule, stat: Statistic) -> str:
    if not rule.needs:
        return (
            f"rule {rule.name} needs no whole-vector statistic (it works on each coordinate "
            f"alone), but {stat.value} was given"
        )
    needs = ", ".join(sorted(s.value for s in rule.needs))
    return f"rule {rule.name} does not need {stat.value} (it needs {needs}), but it was given"


def check_given(call: RuleCall, given: Mapping[Statistic, Any] | None) -> Statistics:
    """The statistics given for a call, checked: each one a statistic the
    rule needs (Rule.needs), in its shape for the call's n, finite. None or
    {} gives none: the rule computes what it needs from its inputs."""
    if not given:
        return MappingProxyType({})
    if not isinstance(given, Mapping):
        raise AggregationError(f"given must map a Statistic to its value, not {type(given).__name__}")
    checked = {}
    for stat, value in given.items():
        stat = find_statistic(stat)
        if stat not in call.rule.needs:
            raise AggregationError(_not_needed(call.rule, stat))
        checked[stat] = check_value(stat, value, call.n)
    return MappingProxyType(checked)


# ---- data checks ----


def _label(i: int, names: Sequence[str] | None) -> str:
    return f"input {names[i]!r}" if names is not None else f"input {i}"


def check_inputs(inputs: Sequence[np.ndarray], names: Sequence[str] | None) -> None:
    """Same shape and float dtype for every input, every value finite."""
    if names is not None and len(names) != len(inputs):
        raise AggregationError(f"{len(names)} names given for {len(inputs)} inputs")
    for i, x in enumerate(inputs):
        label = _label(i, names)
        if not isinstance(x, np.ndarray):
            raise AggregationError(f"{label} is a {type(x).__name__}, not a numpy array")
        if x.dtype not in FLOAT_DTYPES:
            raise AggregationError(
                f"{label} has dtype {x.dtype}; aggregation needs float32 or float64"
            )
        first = inputs[0]
        if x.dtype != first.dtype:
            raise AggregationError(
                f"{label} has dtype {x.dtype} but {_label(0, names)} has {first.dtype}"
            )
        if x.shape != first.shape:
            raise AggregationError(
                f"{label} has shape {x.shape} but {_label(0, names)} has {first.shape}"
            )
    for i, x in enumerate(inputs):
        finite = np.isfinite(x).reshape(-1)
        if not finite.all():
            at = int(np.argmin(finite))
            raise AggregationError(f"{_label(i, names)} has a non-finite value at element {at}")


def run_rule(
    call: RuleCall, inputs: Sequence[np.ndarray], given: Statistics = MappingProxyType({})
) -> AggregateOutput:
    """Runs a checked call on checked inputs: stacks them as a read-only
    float64 (n, d) matrix, computes the statistics the rule needs that are
    not given (check_given), applies the rule and rounds once to the
    inputs' dtype and shape."""
    first = inputs[0]
    stacked = np.stack([np.asarray(x, dtype=np.float64).reshape(-1) for x in inputs])
    stacked.flags.writeable = False
    with np.errstate(over="ignore", invalid="ignore"):
        stats = {
            stat: given[stat] if stat in given else COMPUTE[stat](stacked)
            for stat in call.rule.needs
        }
        value, selected = call.rule.fn(stacked, call.options, stats)
        out = np.asarray(value, dtype=np.float64).astype(first.dtype).reshape(first.shape)
    if not np.isfinite(out).all():
        raise AggregationError(
            f"{call.rule.name} overflowed: the result is not finite although every input is"
        )
    return AggregateOutput(out, None if selected is None else tuple(int(i) for i in selected))
