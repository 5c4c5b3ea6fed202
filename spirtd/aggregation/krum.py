"""Krum and Multi-Krum (Blanchard, El Mhamdi, Guerraoui and Stainer,
"Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent",
NeurIPS 2017).

Each input's score is the sum of its squared Euclidean distances to its
n - f - 2 nearest other inputs. Multi-Krum averages the m best-scored
inputs (ordered by score, ties by index, and summed in that order); Krum is
Multi-Krum with m = 1 and returns the best input itself. Both tolerate f
Byzantine inputs when n >= 2f + 3.

Distances are computed from differences, so identical inputs are exactly 0
apart. Pairwise distances cost n^2 memory, so n is capped at MAX_INPUTS.
"""

from __future__ import annotations

import numpy as np

from spirtd.aggregation.base import Options, Rule, Selection
from spirtd.aggregation.mean import mean_of_rows
from spirtd.errors import AggregationError

# Every pair of inputs is compared; beyond this Krum is the wrong tool
# (the native module has the same limit).
MAX_INPUTS = 1024
# Elements of differences held at once while computing distances.
DIST_BLOCK_ELEMS = 1 << 22


def squared_distances(x: np.ndarray) -> np.ndarray:
    """(n, n) matrix of sum((x_i - x_j) ** 2), symmetric, zero diagonal."""
    n, d = x.shape
    dist = np.zeros((n, n))
    cols = max(1, DIST_BLOCK_ELEMS // max(n, 1))
    for i in range(n - 1):
        for c in range(0, d, cols):
            diff = x[i + 1 :, c : c + cols] - x[i, c : c + cols]
            dist[i, i + 1 :] += np.einsum("ij,ij->i", diff, diff)
    return dist + dist.T


def scores(dist: np.ndarray, f: int) -> np.ndarray:
    """Krum score of every input: the sum (nearest first) of its n-f-2
    smallest distances to the other inputs."""
    n = dist.shape[0]
    others = dist.copy()
    np.fill_diagonal(others, np.inf)
    nearest = np.sort(others, axis=1)[:, : n - f - 2]
    return np.cumsum(nearest, axis=1)[:, -1]


def select(x: np.ndarray, f: int, m: int, rule: str) -> tuple[np.ndarray, Selection]:
    dist = squared_distances(x)
    if not np.isfinite(dist).all():
        raise AggregationError(
            f"{rule} overflowed: distances between inputs are not finite although every input is"
        )
    chosen = np.argsort(scores(dist, f), kind="stable")[:m]
    order = [int(i) for i in chosen]
    return mean_of_rows(x, order), tuple(order)


def krum(x: np.ndarray, options: Options) -> tuple[np.ndarray, Selection]:
    return select(x, options["f"], 1, "krum")


def multikrum(x: np.ndarray, options: Options) -> tuple[np.ndarray, Selection]:
    return select(x, options["f"], options["m"], "multikrum")


def _too_few(rule: str):
    def message(options: Options, n: int) -> str:
        f = options["f"]
        return (
            f"{rule} tolerates f faulty inputs only with n >= 2f+3: f={f} needs at least "
            f"{2 * f + 3} inputs, got {n}"
        )

    return message


def _complete_krum(n: int, options: Options) -> Options:
    return {**options, "m": 1}


def _complete_multikrum(n: int, options: Options) -> Options:
    f = options["f"]
    m = options.get("m", n - f)
    if m > n - f:
        raise AggregationError(
            f"multikrum averages m of the n-f best-scored inputs: m={m} is more than n-f={n - f}"
        )
    return {**options, "m": m}


def _min_inputs(options: Options) -> int:
    return 2 * options["f"] + 3


RULE_KRUM = Rule(
    name="krum",
    summary="the input closest to its n-f-2 nearest neighbours; tolerates f faulty with n >= 2f+3",
    fn=krum,
    options=frozenset({"f"}),
    required=frozenset({"f"}),
    min_inputs=_min_inputs,
    max_inputs=MAX_INPUTS,
    too_few=_too_few("krum"),
    max_reason="compares every pair of inputs",
    complete=_complete_krum,
)

RULE_MULTIKRUM = Rule(
    name="multikrum",
    summary="mean of the m best Krum-scored inputs; tolerates f faulty with n >= 2f+3",
    fn=multikrum,
    options=frozenset({"f", "m"}),
    required=frozenset({"f"}),
    min_inputs=_min_inputs,
    max_inputs=MAX_INPUTS,
    too_few=_too_few("multikrum"),
    max_reason="compares every pair of inputs",
    complete=_complete_multikrum,
)
