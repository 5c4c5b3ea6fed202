"""Coordinate-wise trimmed mean (Yin, Chen, Ramchandran and Bartlett,
"Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates",
ICML 2018).

For every coordinate, drops the b smallest and the b largest values and
averages the n - 2b that remain: their sum divided by n - 2b. Tolerates up
to f = b faulty inputs; needs n > 2b. The paper's error bound holds for
b = beta * n with beta < 1/2.

The sum runs smallest first, or in index order when b = 0 (nothing is
dropped): the native module's order for n <= 16. Above that its selection
leaves the kept values in an order of its own, so float64 results may
differ from it in the last bit.
"""

from __future__ import annotations

import numpy as np

from spirtd.aggregation.base import Options, OptionType, Rule, RuleOption, Selection, Statistics


def min_inputs(b: int) -> int:
    """Dropping b values at each end leaves at least one: n >= 2b + 1."""
    return 2 * b + 1


def trimmed_mean(
    x: np.ndarray, options: Options, stats: Statistics
) -> tuple[np.ndarray, Selection]:
    b = options["b"]
    n = x.shape[0]
    ordered = np.sort(x, axis=0) if b > 0 else x
    acc = ordered[b].copy()
    for k in range(b + 1, n - b):
        acc += ordered[k]
    return acc / (n - 2 * b), None


def _too_few(options: Options, n: int) -> str:
    b = options["b"]
    return (
        f"trimmed_mean drops b={b} values at each end, so it needs more than "
        f"2b={min_inputs(b) - 1} inputs; got {n}"
    )


RULE = Rule(
    name="trimmed_mean",
    summary="coordinate-wise mean after dropping the b smallest and b largest values",
    fn=trimmed_mean,
    declared=(
        RuleOption("b", OptionType.COUNT, "values dropped at each end of every coordinate",
                   required=True),
    ),
    min_inputs=lambda options: min_inputs(options["b"]),
    too_few=_too_few,
)
