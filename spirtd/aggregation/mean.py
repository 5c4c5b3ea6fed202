"""Mean and weighted mean: the plain average, as in FedAvg (McMahan et al.,
"Communication-Efficient Learning of Deep Networks from Decentralized Data",
AISTATS 2017).

Not robust: a single faulty input can move the result arbitrarily far
(breakdown point 0), so it tolerates f = 0 faulty inputs.

Inputs are summed in index order in float64 and the sum is multiplied by
the reciprocal of n (or of the weights' total), as the native module does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spirtd.aggregation.base import Options, OptionType, Rule, RuleOption, Selection, Statistics


def mean_of_rows(x: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Rows of x in the given order, summed one after another, times 1/len."""
    acc = x[order[0]].copy()
    for k in order[1:]:
        acc += x[k]
    return acc * (1.0 / len(order))


def weighted_mean(x: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """sum_k w_k x_k in index order, times 1 / sum_k w_k (also in order)."""
    acc = weights[0] * x[0]
    total = 0.0
    for w in weights:
        total += w
    for k in range(1, x.shape[0]):
        acc += weights[k] * x[k]
    return acc * (1.0 / total)


def mean(x: np.ndarray, options: Options, stats: Statistics) -> tuple[np.ndarray, Selection]:
    weights = options.get("weights")
    if weights is not None:
        return weighted_mean(x, weights), None
    return mean_of_rows(x, range(x.shape[0])), None


RULE = Rule(
    name="mean",
    summary="coordinate-wise (optionally weighted) average; not robust to faulty inputs",
    fn=mean,
    declared=(
        RuleOption(
            "weights",
            OptionType.WEIGHTS,
            "one weight per input (the runner gives each gradient's sample count)",
            in_spec=False,
        ),
    ),
)
