"""The SWIM and Lifeguard formulas, against hand-computed tables."""

from __future__ import annotations

import math

import pytest

from spirtd.membership import formulas as f


# mult, n, interval, want
@pytest.mark.parametrize(
    "mult, n, interval, want",
    [
        (4, 1, 0.25, 1.0),  # log10 below 1 counts as 1
        (4, 8, 0.25, 1.0),
        (4, 10, 0.25, 1.0),
        (4, 100, 0.25, 2.0),
        (4, 32, 0.25, 4 * math.log10(32) * 0.25),
        (5, 1000, 1.0, 15.0),
        (4, 0, 1.0, 4.0),
    ],
)
def test_formulas_suspicion_min(mult, n, interval, want):
    assert f.suspicion_min_s(mult, n, interval) == pytest.approx(want)


def test_formulas_suspicion_max():
    assert f.suspicion_max_s(6, 1.0) == 6.0


@pytest.mark.parametrize(
    "mult, n, want",
    [(4, 8, 2), (4, 4, 2), (4, 3, 0), (4, 2, 0), (3, 3, 1), (2, 10, 0), (1, 10, 0), (6, 100, 4)],
)
def test_formulas_expected_confirmations(mult, n, want):
    assert f.expected_confirmations(mult, n) == want


# min, max, confirmations, expected, want: max - (max - min) * log(c+1)/log(k+1)
@pytest.mark.parametrize(
    "lo, hi, c, k, want",
    [
        (1.0, 6.0, 0, 2, 6.0),
        (1.0, 6.0, 1, 2, 6.0 - 5.0 * math.log(2) / math.log(3)),
        (1.0, 6.0, 2, 2, 1.0),
        (1.0, 6.0, 5, 2, 1.0),  # more confirmations than expected: the minimum
        (1.0, 6.0, 3, 0, 1.0),  # nobody can confirm: the minimum at once
        (2.0, 2.0, 1, 3, 2.0),
        (1.0, 9.0, 1, 3, 9.0 - 8.0 * 0.5),
    ],
)
def test_formulas_suspicion_timeout(lo, hi, c, k, want):
    assert f.suspicion_timeout_s(lo, hi, c, k) == pytest.approx(want)


@pytest.mark.parametrize("mult, n, want", [(4, 0, 0), (4, 1, 4), (4, 8, 4), (4, 9, 4), (4, 10, 8), (4, 99, 8), (4, 100, 12), (3, 32, 6)])
def test_formulas_retransmit_limit(mult, n, want):
    assert f.retransmit_limit(mult, n) == want


@pytest.mark.parametrize("duration, score, want", [(0.25, 0, 0.25), (0.25, 1, 0.5), (0.1, 7, 0.8)])
def test_formulas_scale_by_awareness(duration, score, want):
    assert f.scale_by_awareness(duration, score) == pytest.approx(want)


@pytest.mark.parametrize("n, want", [(1, 10.0), (32, 10.0), (33, 20.0), (64, 20.0), (65, 30.0), (128, 30.0), (1000, 60.0)])
def test_formulas_push_pull_interval(n, want):
    assert f.push_pull_interval_s(10.0, n) == pytest.approx(want)
