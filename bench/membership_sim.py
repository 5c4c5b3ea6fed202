"""SWIM + Lifeguard membership on virtual time: detection and message load.

Whole clusters of real MembershipDrivers run in one process over the
in-memory network on a FakeClock (spirtd.membership.sim), so minutes of
cluster time take seconds. For each cluster size n and each trial:

  1. n members join through one seed; the cluster settles;
  2. message rate: messages sent per member per second (requests and
     replies) over a quiet window;
  3. one random member is killed (no answers, no goodbye); detection time
     = from the kill until each survivor marks it dead;
  4. false deaths: any live member marked dead at any time.

Scenarios:
  lan      one-way delay 0-2 ms;
  busy     0-10 ms, 0.5% loss, and every member stalls about once a second
           for 50-200 ms (its messages held meanwhile), like Python
           processes on busy CPU cores;
  jittery  0-150 ms per message and 2% loss (round trips often longer
           than the probe timeout: a test of refutation, not a LAN).
Targets with the default config: p99 detection below 3 s at n = 8 (lan,
busy) and no false death anywhere.

The gRPC benchmark (real processes, SIGKILL) is separate; this one tests
the protocol and its timing, not the transport.

    python bench/membership_sim.py [--quick] [--sizes 4 8 16 32] [--trials 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import time
from dataclasses import dataclass

from spirtd.membership import MembershipConfig
from spirtd.membership.sim import SimCluster

DETECTION_TARGET_S = 3.0
SETTLE_S = 10.0
LOAD_WINDOW_S = 10.0
DETECT_WINDOW_S = 6.0
STALL_PER_S = 1.0
STALL_MIN_S, STALL_MAX_S = 0.05, 0.2


@dataclass(frozen=True)
class Scenario:
    name: str
    jitter_s: float
    drop: float
    stalls: bool


SCENARIOS = {
    "lan": Scenario("lan", jitter_s=0.002, drop=0.0, stalls=False),
    "busy": Scenario("busy", jitter_s=0.010, drop=0.005, stalls=True),
    "jittery": Scenario("jittery", jitter_s=0.150, drop=0.02, stalls=False),
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def trial(n: int, seed: int, scenario: Scenario, config: MembershipConfig) -> dict:
    rng = random.Random(seed)
    jitter = random.Random(seed + 1)
    cluster = SimCluster(
        config,
        seed=seed,
        delay_s=lambda src, dst: jitter.uniform(0.0, scenario.jitter_s),
        drop=scenario.drop,
    )
    try:
        await cluster.start(n, settle_s=0.0)
        if scenario.stalls:
            cluster.stall_randomly(STALL_PER_S, STALL_MIN_S, STALL_MAX_S)
        await cluster.run_for(SETTLE_S)
        cluster.network.reset_counts()
        started = cluster.now
        await cluster.run_for(LOAD_WINDOW_S)
        elapsed = cluster.now - started
        rate = sum(cluster.network.sent(m.address) for m in cluster.live()) / len(cluster.live()) / elapsed
        victim = rng.choice(sorted(cluster.members))
        await cluster.kill(victim)
        await cluster.run_for(DETECT_WINDOW_S)
        times = cluster.detection_times(victim)
        return {
            "detect": [t for t in times.values() if t is not None],
            "missed": sum(t is None for t in times.values()),
            "rate": rate,
            "false_deaths": len(cluster.false_deaths()),
        }
    finally:
        await cluster.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--quick", action="store_true", help="3 trials, sizes 4 and 8")
    args = parser.parse_args()
    sizes, trials = (([4, 8], 3) if args.quick else (args.sizes, args.trials))
    config = MembershipConfig.default()
    print(f"config: {config}")
    print(f"{'scenario':<9} {'n':>3} {'p50 s':>7} {'p99 s':>7} {'max s':>7} {'missed':>6} "
          f"{'msgs/s/member':>14} {'false deaths':>12} {'wall s':>7}")
    results = []
    for name in args.scenarios:
        scenario = SCENARIOS[name]
        for n in sizes:
            wall = time.perf_counter()
            runs = [await trial(n, seed, scenario, config) for seed in range(trials)]
            detect = [t for r in runs for t in r["detect"]]
            row = {
                "scenario": name,
                "n": n,
                "trials": trials,
                "p50_s": round(statistics.median(detect), 3),
                "p99_s": round(percentile(detect, 0.99), 3),
                "max_s": round(max(detect), 3),
                "missed": sum(r["missed"] for r in runs),
                "msgs_per_s_per_member": round(statistics.mean(r["rate"] for r in runs), 2),
                "false_deaths": sum(r["false_deaths"] for r in runs),
                "wall_s": round(time.perf_counter() - wall, 1),
            }
            results.append(row)
            print(f"{name:<9} {n:>3} {row['p50_s']:>7.3f} {row['p99_s']:>7.3f} {row['max_s']:>7.3f} "
                  f"{row['missed']:>6} {row['msgs_per_s_per_member']:>14.2f} {row['false_deaths']:>12} "
                  f"{row['wall_s']:>7.1f}")
    print(json.dumps({"target_p99_s": DETECTION_TARGET_S, "results": results}))


if __name__ == "__main__":
    asyncio.run(main())
