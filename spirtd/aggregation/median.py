"""Coordinate-wise median (Yin, Chen, Ramchandran and Bartlett, "Byzantine-
Robust Distributed Learning: Towards Optimal Statistical Rates", ICML 2018).

Each coordinate of the result is the median of that coordinate over the
inputs; with an even n, the mean of the two middle values, (lo + hi) * 0.5.
Robust while fewer than half the inputs are faulty (f < n/2): every output
coordinate lies within the range of the honest inputs' values.
"""

from __future__ import annotations

import numpy as np

from spirtd.aggregation.base import Options, Rule, Selection, Statistics


def median(x: np.ndarray, options: Options, stats: Statistics) -> tuple[np.ndarray, Selection]:
    n = x.shape[0]
    mid = (n - 1) // 2
    if n % 2:
        return np.partition(x, mid, axis=0)[mid], None
    part = np.partition(x, (mid, mid + 1), axis=0)
    return (part[mid] + part[mid + 1]) * 0.5, None


RULE = Rule(
    name="median",
    summary="coordinate-wise median; robust while fewer than half the inputs are faulty",
    fn=median,
)
