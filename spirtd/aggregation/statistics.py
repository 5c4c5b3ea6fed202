"""Whole-vector statistics: what a rule needs of all its inputs together,
beyond the values of one coordinate at a time.

A coordinate-wise rule (mean, median, trimmed mean) can run on any slice of
the coordinates on its own. A rule that compares whole inputs (Krum) cannot:
it needs a statistic over every coordinate first. A rule declares which it
needs (Rule.needs); run_rule computes them with COMPUTE and hands them to
the rule, so that a caller holding only a shard of the coordinates can
instead hand over the statistic summed from every shard's partial one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from types import MappingProxyType

import numpy as np

# Elements of differences held at once while computing distances.
DIST_BLOCK_ELEMS = 1 << 22


class Statistic(Enum):
    """A statistic of the whole (n, d) input matrix. Each one is a sum over
    coordinates, so the statistic of the matrix is the sum of the statistics
    of column blocks of it."""

    PAIRWISE_SQUARED_DISTANCES = "pairwise_squared_distances"


def pairwise_squared_distances(x: np.ndarray) -> np.ndarray:
    """(n, n) matrix of sum((x_i - x_j) ** 2) over the columns of x,
    symmetric, zero diagonal. Computed from differences, so identical rows
    are exactly 0 apart."""
    n, d = x.shape
    dist = np.zeros((n, n))
    cols = max(1, DIST_BLOCK_ELEMS // max(n, 1))
    for i in range(n - 1):
        for c in range(0, d, cols):
            diff = x[i + 1 :, c : c + cols] - x[i, c : c + cols]
            dist[i, i + 1 :] += np.einsum("ij,ij->i", diff, diff)
    return dist + dist.T


# How each statistic is computed from a float64 (n, d) matrix.
COMPUTE: Mapping[Statistic, Callable[[np.ndarray], np.ndarray]] = MappingProxyType(
    {Statistic.PAIRWISE_SQUARED_DISTANCES: pairwise_squared_distances}
)
