"""Every setting of SWIM membership, in one frozen dataclass with presets.

The field defaults are the `default()` preset: tuned so that, on loopback or a
LAN with Python processes that stall for 50-200 ms now and then, a peer killed
with SIGKILL is marked dead by every survivor of an 8-peer cluster within
3 s (p99), and a live peer is never marked dead. See each field for its
trade-off and bench/membership_sim.py for the figures.

Durations are float seconds (`_s`), multipliers `_mult`. Cross-field rules
are checked at construction and raise ConfigError; `dataclasses.replace`
checks them again.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from spirtd.errors import ConfigError


@dataclass(frozen=True)
class MembershipConfig:
    # -- failure detection -------------------------------------------------
    probe_interval_s: float = 0.25
    """One probe round: each member probes one other member (round-robin over
    a shuffled list) per interval, scaled by local health (x awareness + 1).
    The cluster as a whole probes any given member about once per interval,
    whatever n, so detection time depends on it and not on n; each member
    sends 1/interval pings a second. Shorter detects sooner, costs more
    messages and more CPU per member."""

    probe_timeout_s: float = 0.1
    """How long a direct ping waits for its ack before k indirect probes are
    asked (scaled by local health). It is also how long a helper waits for
    the target before answering a nack, so it must fit twice into
    probe_interval_s (the nack has to be back before the round ends). Too
    short suspects members that merely stalled (they refute, but it is
    churn); too long leaves no time for the indirect probes."""

    indirect_checks: int = 3
    """k: how many members are asked to probe a target that missed its
    direct ack. More helpers make a false suspicion from one bad link less
    likely, and give more nacks to judge our own health by."""

    suspicion_mult: int = 4
    """Minimum suspicion timeout = suspicion_mult * max(1, log10(n)) *
    probe_interval_s: the least time a suspect has to refute. It also sets
    how many independent confirmations (suspicion_mult - 2) shrink the
    timeout from its maximum to this minimum (Lifeguard)."""

    suspicion_max_mult: int = 6
    """Maximum suspicion timeout = suspicion_max_mult * minimum: the timeout
    of a suspicion nobody else confirms (one member with a bad link or bad
    health accuses alone). Higher protects better against lone accusers and
    detects slower when confirmations are rare (very small clusters)."""

    # -- dissemination -----------------------------------------------------
    gossip_interval_s: float = 0.1
    """How often pending updates are sent to gossip_fanout random members
    (besides riding on every probe). Nothing is sent when nothing is
    pending, so the steady-state cost is zero; shorter spreads a death or a
    refutation faster."""

    gossip_fanout: int = 3
    """Members each gossip round goes to. An update reaches everyone in
    about log(n)/log(fanout) rounds."""

    retransmit_mult: int = 4
    """Each update is sent retransmit_mult * ceil(log10(n + 1)) times (on
    probes, acks and gossip) before it is dropped from the queue: enough
    copies to reach every member with high probability, few enough that the
    load per member stays flat as n grows."""

    piggyback_max: int = 16
    """The most updates one message carries (fewest-sent first)."""

    push_pull_interval_s: float = 10.0
    """Full-state exchange with one random member (anti-entropy), scaled up
    beyond 32 members. Also, each round tries one member we believe dead but
    still remember, which is how the two sides of a healed partition find
    each other again. Snapshots are O(n) bytes: shorter heals faster and
    costs bandwidth."""

    awareness_max: int = 8
    """Lifeguard local health: our probe interval and timeout are multiplied
    by (score + 1), score in [0, awareness_max - 1]. The score rises on
    missed nacks and when we must refute, falls on every direct ack. Higher
    caps how far a struggling member slows its own accusations."""

    dead_retain_s: float = 60.0
    """How long a dead or left member is remembered (and gossiped to, and
    tried for reconnection) before it is forgotten. A stale Alive for it is
    ignored meanwhile; a partition must heal within this time to merge on
    its own, after that members come back only by joining a seed."""

    # -- calls ---------------------------------------------------------------
    rpc_timeout_s: float = 2.0
    """Limit on a join, sync, leave or gossip call to one member."""

    join_attempts: int = 3
    """Rounds over the seed list before join() gives up."""

    join_retry_interval_s: float = 1.0
    """Pause between two rounds over the seed list."""

    subscriber_queue_max: int = 1024
    """Events buffered per subscriber; a slow one loses the oldest."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_s"):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{f.name} must be a number of seconds, not {value!r}")
                if not math.isfinite(value) or value <= 0:
                    raise ConfigError(f"{f.name} must be a positive, finite number of seconds, not {value!r}")
            else:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"{f.name} must be an integer, not {value!r}")
                least = 0 if f.name == "indirect_checks" else 1
                if value < least:
                    raise ConfigError(f"{f.name} must be at least {least}, not {value}")
        if 2 * self.probe_timeout_s >= self.probe_interval_s:
            raise ConfigError(
                f"probe_timeout_s ({self.probe_timeout_s}) must be less than half of probe_interval_s "
                f"({self.probe_interval_s}): a helper's nack comes back one probe timeout after our own "
                "timed out, and it has to arrive before the probe round ends"
            )
        if self.rpc_timeout_s >= self.push_pull_interval_s:
            raise ConfigError(
                f"rpc_timeout_s ({self.rpc_timeout_s}) must be less than push_pull_interval_s "
                f"({self.push_pull_interval_s}) so that one sync ends before the next begins"
            )
        if self.dead_retain_s <= self.push_pull_interval_s:
            raise ConfigError(
                f"dead_retain_s ({self.dead_retain_s}) must exceed push_pull_interval_s "
                f"({self.push_pull_interval_s}): a dead member must be tried at least once for "
                "reconnection before it is forgotten"
            )

    @classmethod
    def default(cls) -> MembershipConfig:
        """Loopback or LAN, 4-64 Python peers: detection within 3 s (p99) at
        8 peers, no false deaths with 50-200 ms scheduling stalls."""
        return cls()

    @classmethod
    def local(cls) -> MembershipConfig:
        """One host, fast loopback (tests, demos): detection in about half
        the default's time, at twice its message rate."""
        return cls(
            probe_interval_s=0.12,
            probe_timeout_s=0.05,
            gossip_interval_s=0.05,
            push_pull_interval_s=5.0,
            dead_retain_s=30.0,
            rpc_timeout_s=1.0,
            join_retry_interval_s=0.5,
        )

    @classmethod
    def wan(cls) -> MembershipConfig:
        """Peers across regions (hundreds of ms of latency): memberlist's WAN
        timing. Detection takes tens of seconds."""
        return cls(
            probe_interval_s=5.0,
            probe_timeout_s=2.0,
            suspicion_mult=6,
            gossip_interval_s=0.5,
            gossip_fanout=4,
            push_pull_interval_s=60.0,
            dead_retain_s=300.0,
            rpc_timeout_s=10.0,
            join_retry_interval_s=5.0,
        )
