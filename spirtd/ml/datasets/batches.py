"""Deterministic permutations, splits and minibatches, computable by any
process from a few integers.

A permutation of n items for a key (seed, stream, epoch) sorts the items by
a SplitMix64 hash of (key, index). It depends on nothing but integer
arithmetic, not on numpy's random streams (which numpy does not promise to
keep across versions), so peers with different numpy versions agree.
Every epoch has its own permutation; the last minibatch of an epoch keeps
whatever is left (it may be smaller than batch_size).
"""

from __future__ import annotations

import math

import numpy as np

from spirtd.errors import DatasetError

__all__ = ["batches_per_epoch", "minibatch_indices", "permutation", "split_indices"]

# Streams keep the permutations of different uses apart.
EPOCH_STREAM = 1
VAL_SPLIT_STREAM = 2
TEST_SPLIT_STREAM = 3
# The test split of datasets without one of their own does not depend on
# the job's seed, so test results of different seeds are comparable.
TEST_SPLIT_SEED = 0

MAX_KEY = 2**64 - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output function (Steele et al. 2014), element-wise; a
    bijection of uint64."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MUL1
        z = (z ^ (z >> np.uint64(27))) * _MUL2
        return z ^ (z >> np.uint64(31))


def _check_int(name: str, value: object, minimum: int, maximum: int = MAX_KEY) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DatasetError(f"{name} must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise DatasetError(f"{name} must be in [{minimum}, {maximum}], got {value!r}")
    return int(value)


def permutation(n: int, *key: int) -> np.ndarray:
    """The permutation of range(n) for the key (non-negative ints < 2**64),
    as int64."""
    n = _check_int("n", n, 0, 2**62)
    state = np.zeros(1, dtype=np.uint64)
    for part in key:
        part = _check_int("a permutation key", part, 0)
        state = _splitmix64(state ^ _splitmix64(np.array([part], dtype=np.uint64)))
    hashes = _splitmix64(np.arange(n, dtype=np.uint64) ^ state)
    # The hash is a bijection, so there are no ties; stable keeps it exact anyway.
    return np.argsort(hashes, kind="stable").astype(np.int64)


def split_indices(n: int, fraction: float, seed: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """range(n) cut in two, (kept, held_out), each sorted; held_out has
    round(n * fraction) items chosen by the permutation of (seed, stream)."""
    held = int(round(n * fraction))
    order = permutation(n, seed, stream)
    return np.sort(order[held:]), np.sort(order[:held])


def batches_per_epoch(n_train: int, batch_size: int) -> int:
    """Minibatches in an epoch: ceil(n_train / batch_size), the last one
    partial when batch_size does not divide n_train."""
    n_train = _check_int("n_train", n_train, 1, 2**62)
    batch_size = _check_int("batch_size", batch_size, 1, 2**62)
    return math.ceil(n_train / batch_size)


def minibatch_indices(n_train: int, batch_size: int, seed: int, epoch: int, index: int) -> np.ndarray:
    """Indices into the training split of minibatch `index` of `epoch`:
    slice [index * batch_size, (index + 1) * batch_size) of the epoch's
    permutation, int64. Over an epoch's indices every sample comes once."""
    count = batches_per_epoch(n_train, batch_size)
    index = _check_int("index", index, 0)
    if index >= count:
        raise DatasetError(
            f"minibatch index {index} is out of range: an epoch of {n_train} samples in "
            f"batches of {batch_size} has {count} (0 to {count - 1})"
        )
    order = permutation(n_train, _check_int("seed", seed, 0), EPOCH_STREAM,
                        _check_int("epoch", epoch, 0))  # fmt: skip
    return order[index * batch_size : (index + 1) * batch_size].copy()
