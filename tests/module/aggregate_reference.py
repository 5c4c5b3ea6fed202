"""Independent numpy versions of SPIRT.AGGREGATE's rules, written from the
documented semantics: float64 arithmetic, one rounding to the output dtype,
sums in index order (multikrum: in score order)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Result:
    value: np.ndarray
    selected: list[int] | None = None  # krum / multikrum: chosen indices, best first


def mean(xs: list[np.ndarray], weights: list[float] | None = None) -> Result:
    if weights is None:
        acc = xs[0].astype(np.float64)
        for x in xs[1:]:
            acc = acc + x.astype(np.float64)
        scale = 1.0 / len(xs)
    else:
        acc = weights[0] * xs[0].astype(np.float64)
        for w, x in zip(weights[1:], xs[1:]):
            acc = acc + w * x.astype(np.float64)
        total = 0.0
        for w in weights:
            total += w
        scale = 1.0 / total
    return Result((acc * scale).astype(xs[0].dtype))


def median(xs: list[np.ndarray]) -> Result:
    v = np.sort(np.stack([x.astype(np.float64) for x in xs]), axis=0)
    n = len(xs)
    mid = (n - 1) // 2
    out = v[mid] if n % 2 else (v[mid] + v[mid + 1]) * 0.5
    return Result(out.astype(xs[0].dtype))


def trimmed_mean(xs: list[np.ndarray], b: int) -> Result:
    v = np.sort(np.stack([x.astype(np.float64) for x in xs]), axis=0)
    kept = v[b : len(xs) - b]
    return Result((kept.sum(axis=0) / kept.shape[0]).astype(xs[0].dtype))


def krum_scores(xs: list[np.ndarray], f: int) -> np.ndarray:
    n = len(xs)
    flat = [x.astype(np.float64).ravel() for x in xs]
    dist = np.zeros((n, n))
    for i in range(n):
        for k in range(i + 1, n):
            d = flat[i] - flat[k]
            dist[i, k] = dist[k, i] = float(np.dot(d, d))
    scores = np.empty(n)
    for i in range(n):
        others = np.sort(np.delete(dist[i], i))
        scores[i] = others[: n - f - 2].sum()
    return scores


def multikrum(xs: list[np.ndarray], f: int, m: int | None = None) -> Result:
    n = len(xs)
    m = n - f if m is None else m
    order = [int(i) for i in np.argsort(krum_scores(xs, f), kind="stable")][:m]
    acc = xs[order[0]].astype(np.float64)
    for i in order[1:]:
        acc = acc + xs[i].astype(np.float64)
    return Result((acc * (1.0 / m)).astype(xs[0].dtype), order)


def krum(xs: list[np.ndarray], f: int) -> Result:
    return multikrum(xs, f, 1)


def pairwise_squared_distances(xs: list[np.ndarray]) -> np.ndarray:
    """SPIRT.STATISTIC PAIRWISE_SQUARED_DISTANCES: (n, n), symmetric, zero
    diagonal, each pair's sum of squared differences in float64."""
    n = len(xs)
    flat = [x.astype(np.float64).ravel() for x in xs]
    dist = np.zeros((n, n))
    for i in range(n):
        for k in range(i + 1, n):
            d = flat[i] - flat[k]
            dist[i, k] = dist[k, i] = float(np.dot(d, d))
    return dist
