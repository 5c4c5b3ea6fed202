"""The arithmetic of a peer-to-peer round, as pure functions: how the
parameter vector is cut into shards, who owns each shard (and who takes it
over when its owner dies), which minibatches each participant computes,
how many must contribute, how long a round waits, and what the exchange
costs in bytes. Every participant computes the same answers from the same
inputs; nothing here does I/O or reads a clock.

Participants are always given as member ids; their order is the sorted
order of the ids, so every peer sees the same ranks.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Sequence

FLOAT32_BYTES = 4


def ranked(participants: Collection[str]) -> tuple[str, ...]:
    """The participants in the one order every peer uses (sorted ids)."""
    return tuple(sorted(set(participants)))


def shard_bounds(n_elements: int, n_shards: int) -> list[tuple[int, int]]:
    """[start, stop) of each of n_shards contiguous shards of a vector of
    n_elements: sizes differ by at most one, the larger first."""
    if n_elements < 0 or n_shards < 1:
        raise ValueError(f"cannot cut {n_elements} elements into {n_shards} shards")
    base, extra = divmod(n_elements, n_shards)
    bounds, start = [], 0
    for i in range(n_shards):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def shard_owner(shard: int, participants: Sequence[str], gone: Collection[str] = ()) -> str:
    """Who aggregates shard i: participant i of the ranked participants; if
    that one is gone (dead or excluded during the round), the next one in
    ranked order that is not, wrapping around. Every participant derives
    the same owner from the same set of the gone."""
    order = ranked(participants)
    if not 0 <= shard < len(order):
        raise ValueError(f"shard {shard} of {len(order)} participants")
    for step in range(len(order)):
        owner = order[(shard + step) % len(order)]
        if owner not in gone:
            return owner
    raise ValueError("every participant is gone: no shard has an owner")


def quorum(n_participants: int, fraction: float = 0.5) -> int:
    """The fewest contributors a round of n participants proceeds with: more
    than fraction of them (the default, a strict majority, so that two
    sides of a partition can never both train)."""
    if n_participants < 1 or not 0.0 <= fraction < 1.0:
        raise ValueError(f"no quorum of {fraction} for {n_participants} participants")
    return math.floor(n_participants * fraction) + 1


def minibatch_slots(position: int, batches_per_epoch: int, rank: int, per_peer: int) -> list[tuple[int, int]]:
    """(epoch, index within the epoch) of the minibatches the participant of
    this rank computes in a round that starts at global minibatch position
    `position` (counted from the job's start): participant k takes the k-th
    run of per_peer minibatches, so n participants use n * per_peer
    consecutive minibatches of the epochs' shuffled order, each once."""
    first = position + rank * per_peer
    return [divmod(k, batches_per_epoch) for k in range(first, first + per_peer)]


def exchange_bytes(n_participants: int, n_elements: int, itemsize: int = FLOAT32_BYTES) -> int:
    """Payload bytes one peer sends in a reduce-scatter and all-gather of
    n_elements, and as many it receives: 2 * (n - 1) / n * M * itemsize
    (its part of every other peer's shard out, then its aggregated shard
    out to every other peer), rounded up. A full mesh sends (n - 1) * M *
    itemsize."""
    if n_participants < 2:
        return 0
    return math.ceil(2 * (n_participants - 1) * n_elements * itemsize / n_participants)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def adaptive_deadline_s(arrivals_s: Sequence[float], multiple: float, q: float, floor_s: float,
                        ceiling_s: float) -> float:  # fmt: skip
    """How long a round waits for contributions: multiple times the q-th
    percentile of recent arrival times (from the phase's start), within
    [floor_s, ceiling_s]; the ceiling while nothing was observed yet."""
    if not arrivals_s:
        return ceiling_s
    return min(ceiling_s, max(floor_s, multiple * percentile(arrivals_s, q)))


def donor_order(sources: Sequence[str], me: str) -> list[str]:
    """The order in which a peer asks the majority's peers for their state:
    every source once (never itself), rotated by a hash of its own id, so
    that several joiners at once start with different donors and no one
    donor serves them all."""
    others = sorted(s for s in set(sources) if s != me)
    if not others:
        return []
    start = int.from_bytes(hashlib.sha256(me.encode()).digest()[:8], "big") % len(others)
    return others[start:] + others[:start]
