"""The formulas of SWIM and Lifeguard, as pure functions of their inputs.

n is always the number of members that count (alive or suspect, ourselves
included). memberlist (hashicorp) is the reference for each one.
"""

from __future__ import annotations

import math

# Beyond this many members the push-pull interval grows with log2(n), so
# that the cluster-wide rate of full-state exchanges (O(n) bytes each) does
# not grow with n (memberlist's pushPullScaleThreshold).
PUSH_PULL_SCALE_THRESHOLD = 32

# Suspicion timeouts are reached with this many fewer confirmations than the
# suspicion multiplier: with suspicion_mult = 4, two others must confirm.
CONFIRMATIONS_BELOW_MULT = 2


def suspicion_min_s(suspicion_mult: int, n: int, probe_interval_s: float) -> float:
    """The least time a suspect has to refute: mult * max(1, log10(n)) *
    probe interval. It grows slowly with n because gossip needs about
    log(n) rounds to reach the suspect and bring its refutation back."""
    return suspicion_mult * max(1.0, math.log10(max(n, 1))) * probe_interval_s


def suspicion_max_s(suspicion_max_mult: int, min_s: float) -> float:
    """The timeout of a suspicion that nobody confirms."""
    return suspicion_max_mult * min_s


def expected_confirmations(suspicion_mult: int, n: int) -> int:
    """k: independent confirmations that shrink a suspicion to its minimum.
    Zero when there are not enough other members to confirm (n - 2 < k:
    neither the suspect nor the accuser can confirm)."""
    k = max(0, suspicion_mult - CONFIRMATIONS_BELOW_MULT)
    return k if n - 2 >= k else 0


def suspicion_timeout_s(min_s: float, max_s: float, confirmations: int, expected: int) -> float:
    """Lifeguard's dynamic suspicion timeout, from the suspicion's start:
    max - (max - min) * log(c + 1) / log(k + 1), never below min. Each
    independent confirmation moves it toward the minimum, fastest at first.
    With k = 0 it is the minimum at once."""
    if expected < 1:
        return min_s
    c = min(max(confirmations, 0), expected)
    fraction = math.log(c + 1) / math.log(expected + 1)
    return max(min_s, max_s - (max_s - min_s) * fraction)


def retransmit_limit(retransmit_mult: int, n: int) -> int:
    """How many times one update is sent: mult * ceil(log10(n + 1))."""
    return retransmit_mult * math.ceil(math.log10(max(n, 0) + 1))


def scale_by_awareness(duration_s: float, score: int) -> float:
    """Lifeguard local health: a member whose score is s waits (s + 1)
    times longer before it concludes that someone else failed."""
    return duration_s * (score + 1)


def push_pull_interval_s(base_s: float, n: int) -> float:
    """The push-pull interval for n members: the base up to the threshold,
    then base * (ceil(log2(n) - log2(threshold)) + 1)."""
    if n <= PUSH_PULL_SCALE_THRESHOLD:
        return base_s
    multiplier = math.ceil(math.log2(n) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1
    return base_s * multiplier
