"""Krum and Multi-Krum (Blanchard, El Mhamdi, Guerraoui and Stainer,
"Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent",
NeurIPS 2017).

Each input's score is the sum of its squared Euclidean distances to its
n - f - 2 nearest other inputs. Multi-Krum averages the m best-scored
inputs (ordered by score, ties by index, and summed in that order); Krum is
Multi-Krum with m = 1 and returns the best input itself. Both tolerate f
Byzantine inputs when n >= 2f + 3 (min_inputs).

The distances are the whole-vector statistic PAIRWISE_SQUARED_DISTANCES,
given to the rule (see statistics.py). They cost n^2 memory, so n is capped
at MAX_INPUTS.
"""

from __future__ import annotations

import numpy as np

from spirtd.aggregation.base import Options, OptionType, Rule, RuleOption, Selection, Statistics
from spirtd.aggregation.mean import mean_of_rows
from spirtd.aggregation import statistics
from spirtd.aggregation.statistics import Statistic
from spirtd.errors import AggregationError

# Every pair of inputs is compared; beyond this Krum is the wrong tool
# (the limit of its statistic; the native module has the same).
MAX_INPUTS = statistics.MAX_INPUTS


def min_inputs(f: int) -> int:
    """The paper's bound: Krum tolerates f Byzantine inputs out of n when
    n >= 2f + 3, that is n - f - 2 > f: each score sums more distances than
    there are faulty inputs, so at least one to an honest input. The native
    module and the TorchScript each have the same function; tests check
    that they agree with this one."""
    return 2 * f + 3


def scores(dist: np.ndarray, f: int) -> np.ndarray:
    """Krum score of every input: the sum (nearest first) of its n-f-2
    smallest distances to the other inputs."""
    n = dist.shape[0]
    others = dist.copy()
    np.fill_diagonal(others, np.inf)
    nearest = np.sort(others, axis=1)[:, : n - f - 2]
    return np.cumsum(nearest, axis=1)[:, -1]


def select(
    x: np.ndarray, dist: np.ndarray, f: int, m: int, rule: str
) -> tuple[np.ndarray, Selection]:
    """The mean of the m best-scored rows of x, and their indices, best first."""
    if not np.isfinite(dist).all():
        raise AggregationError(
            f"{rule} overflowed: distances between inputs are not finite although every input is"
        )
    chosen = np.argsort(scores(dist, f), kind="stable")[:m]
    order = [int(i) for i in chosen]
    return mean_of_rows(x, order), tuple(order)


def krum(x: np.ndarray, options: Options, stats: Statistics) -> tuple[np.ndarray, Selection]:
    return select(x, stats[Statistic.PAIRWISE_SQUARED_DISTANCES], options["f"], 1, "krum")


def multikrum(x: np.ndarray, options: Options, stats: Statistics) -> tuple[np.ndarray, Selection]:
    dist = stats[Statistic.PAIRWISE_SQUARED_DISTANCES]
    return select(x, dist, options["f"], options["m"], "multikrum")


def _too_few(rule: str):
    def message(options: Options, n: int) -> str:
        f = options["f"]
        return (
            f"{rule} tolerates f faulty inputs only with n >= 2f+3: f={f} needs at least "
            f"{min_inputs(f)} inputs, got {n}"
        )

    return message


def _complete_krum(n: int, options: Options) -> Options:
    return {**options, "m": 1}


def _complete_multikrum(n: int, options: Options) -> Options:
    f, m = options["f"], options["m"]
    if m > n - f:
        raise AggregationError(
            f"multikrum averages m of the n-f best-scored inputs: m={m} is more than n-f={n - f}"
        )
    return options


F = RuleOption("f", OptionType.COUNT, "faulty inputs tolerated; needs n >= 2f+3", required=True)
M = RuleOption(
    "m",
    OptionType.COUNT,
    "best-scored inputs averaged, at most n - f",
    minimum=1,
    default=lambda n, options: n - options["f"],
)
# What Krum and Multi-Krum share: the bound, the cap and the statistic.
_KRUM_KIND = dict(
    needs=frozenset({Statistic.PAIRWISE_SQUARED_DISTANCES}),
    selects=True,
    min_inputs=lambda options: min_inputs(options["f"]),
    max_inputs=MAX_INPUTS,
    max_reason="compares every pair of inputs",
)

RULE_KRUM = Rule(
    name="krum",
    summary="the input closest to its n-f-2 nearest neighbours; tolerates f faulty with n >= 2f+3",
    fn=krum,
    declared=(F,),
    too_few=_too_few("krum"),
    complete=_complete_krum,
    **_KRUM_KIND,
)

RULE_MULTIKRUM = Rule(
    name="multikrum",
    summary="mean of the m best Krum-scored inputs; tolerates f faulty with n >= 2f+3",
    fn=multikrum,
    declared=(F, M),
    too_few=_too_few("multikrum"),
    complete=_complete_multikrum,
    **_KRUM_KIND,
)
