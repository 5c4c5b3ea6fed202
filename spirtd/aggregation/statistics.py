"""Whole-vector statistics: what a rule needs of all its inputs together,
beyond the values of one coordinate at a time.

A coordinate-wise rule (mean, median, trimmed mean) can run on any slice of
the coordinates on its own. A rule that compares whole inputs (Krum) cannot:
it needs a statistic over every coordinate first. A rule declares which it
needs (Rule.needs); run_rule computes them with COMPUTE and hands them to
the rule, so that a caller holding only a shard of the coordinates can
instead hand over the statistic summed from every shard's partial one
(given; checked by check_given, the same way for every backend).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from types import MappingProxyType

import numpy as np

from spirtd.errors import AggregationError

# Elements of differences held at once while computing distances.
DIST_BLOCK_ELEMS = 1 << 22
# A statistic of every pair of inputs costs n^2 memory: the native module
# and the TorchScript have the same limit (as Krum, which needs one).
MAX_INPUTS = 1024


class Statistic(Enum):
    """A statistic of the whole (n, d) input matrix. Each one is a sum over
    coordinates, so the statistic of the matrix is the sum of the statistics
    of column blocks of it."""

    PAIRWISE_SQUARED_DISTANCES = "pairwise_squared_distances"

    @property
    def wire(self) -> str:
        """Its keyword in SPIRT.STATISTIC and SPIRT.AGGREGATE's GIVEN."""
        return self.value.upper()

    def shape(self, n: int) -> tuple[int, ...]:
        """Its shape for n inputs: one number per pair (every statistic so far)."""
        return (n, n)


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


def known() -> str:
    return ", ".join(s.value for s in Statistic)


def find_statistic(stat: object) -> Statistic:
    """stat as a Statistic; AggregationError naming the known ones."""
    if isinstance(stat, Statistic):
        return stat
    raise AggregationError(f"unknown statistic {stat!r}; known statistics: {known()}")


def check_count(stat: Statistic, n: object) -> int:
    """n inputs are enough, and not too many, for stat."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise AggregationError(f"{stat.value} needs at least one input; got {n!r}")
    if n > MAX_INPUTS:
        raise AggregationError(
            f"{stat.value} compares every pair of inputs and takes at most {MAX_INPUTS}; got {n}"
        )
    return int(n)


def check_value(stat: Statistic, value: object, n: int) -> np.ndarray:
    """A statistic given for n inputs, as a read-only float64 array: the
    statistic's shape, every number finite."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise AggregationError(f"given {stat.value} must hold numbers, got dtype {array.dtype}")
    want = stat.shape(n)
    if array.shape != want:
        raise AggregationError(
            f"given {stat.value} must have shape {want} for {n} inputs; got {array.shape}"
        )
    array = np.array(array, dtype=np.float64, order="C")
    if not np.isfinite(array).all():
        raise AggregationError(f"given {stat.value} must be finite")
    array.flags.writeable = False
    return array


def check_finite_result(stat: Statistic, value: np.ndarray) -> np.ndarray:
    if not np.isfinite(value).all():
        raise AggregationError(
            f"{stat.value} overflowed: it is not finite although every input is"
        )
    return value
