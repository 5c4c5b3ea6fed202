"""The donors' round time while a joiner takes a ResNet-18-sized state.

Three peers (`spirtd run`, mutual TLS, loopback, each with its own store
and warm workers) train an MLP with ResNet-18's parameter count (64 ->
3380 -> 3380 -> 10 on digits: 11.68M parameters, 46.7 MB, SGD with
momentum: 93 MB of state a version); after a few rounds a fourth peer
starts and takes the majority's state from the donors (the parameters and
the momentum, checked against the majority's digest). Each donor's round
time is the time between its consecutive round events; the rounds that
overlap the joiner's fetches (from its "fetching round" to its "took round"
log line) are compared with the rounds before the joiner started, and, to
tell serving from the joiner's own start-up on these two shared cores, with
the rounds between its start and its first fetch.
Target: the rounds during a fetch take at most 1.5x the rounds before.

Prints a table, then one JSON line.

    python bench/join.py [--before 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HIDDEN = 3380
PEERS = 3
TARGET_RATIO = 1.5
CALL_S = 120.0
SPEC = f"""
model = {{ name = "mlp", hidden = [{HIDDEN}, {HIDDEN}] }}
dataset = "digits"
batch_size = 32
minibatches_per_round = 2
rounds = 100000
seed = 7
eval_every = 1000000
[optimizer]
name = "sgd"
lr = 0.01
momentum = 0.9
[workers]
mode = "warm"
concurrency = 1
[limits]
invocation_timeout_s = 300
round_timeout_s = 1800
[peers]
deadline_floor_s = 30
deadline_ceiling_s = 300
propose_timeout_s = 30
report_timeout_s = 120
"""
CALM = """

[membership]
probe_interval_s = 1.0
probe_timeout_s = 0.4

"""


def n_params() -> int:
    sizes = [64, HIDDEN, HIDDEN, 10]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def log_times(lines: list[dict], words: str) -> list[float]:
    return [datetime.fromisoformat(line["ts"]).timestamp() for line in lines if words in str(line.get("msg", ""))]


async def rounds_seen(client, job_id: str, ends: list[float], stop: asyncio.Event) -> None:
    """The wall time at which each round's event reached this watcher."""
    async for event in client.events(job_id):
        if event.participants:
            ends.append(time.time())
        if stop.is_set() or event.state.ended:
            return


def intervals(ends: list[float]) -> list[tuple[float, float]]:
    return list(zip(ends, ends[1:]))


def overlapping(rounds: list[tuple[float, float]], windows: list[tuple[float, float]]) -> list[float]:
    return [b - a for a, b in rounds if any(a < w1 and b > w0 for w0, w1 in windows)]


async def run(before: int, logs: Path | None) -> dict:
    from spirt_client import AsyncClient, NotFound
    from spirtd.security import ca
    from spirtd.security.identity import Role
    from tests.daemon.peers import Peers, eventually

    with tempfile.TemporaryDirectory(prefix="spt-bj-", dir="/tmp") as tmp:
        root = Path(tmp)
        ca.init_ca(root / "certs")
        for i in range(1, PEERS + 2):
            ca.issue(root / "certs", f"node{i}", ips=["127.0.0.1"])
        ca.issue(root / "certs", "client", role=Role.CLIENT)
        peers = Peers(root, root / "certs", config_text=CALM)
        try:
            first = peers.start("node1")
            donors = [first, *(peers.start(f"node{i}", seeds=[first.address]) for i in range(2, PEERS + 1))]
            clients = [AsyncClient(d.address, root / "certs", peer_id=d.id, timeout_s=CALL_S) for d in donors]

            async def all_alive():
                return sum(m.state == "alive" for m in await clients[0].members()) == PEERS

            await eventually(all_alive, 120, "the donors seeing each other")
            job_id = await clients[0].submit(SPEC)
            ends: dict[str, list[float]] = {d.id: [] for d in donors}
            stop = asyncio.Event()
            watches = [asyncio.create_task(rounds_seen(c, job_id, ends[d.id], stop)) for c, d in zip(clients, donors)]

            async def passed(n: int):
                return min(len(e) for e in ends.values()) >= n

            await eventually(lambda: passed(before + 1), 900, f"{before} rounds before the joiner")
            joiner_started = time.time()
            joiner = await asyncio.to_thread(peers.start, f"node{PEERS + 1}", seeds=[first.address])
            joiner_client = AsyncClient(joiner.address, root / "certs", peer_id=joiner.id, timeout_s=CALL_S)

            async def contributing():
                try:
                    s = await joiner_client.job_status(job_id)
                except NotFound:  # the job has not reached it yet
                    return None
                return s.round if joiner.id in s.participants else None

            await eventually(contributing, 900, "the joiner contributing")
            stop.set()
            await joiner_client.aclose()
            lines = joiner.log_lines()
            fetches, took = log_times(lines, "fetching round"), log_times(lines, ": took round")
            windows = list(zip(fetches, [min([t for t in took if t >= f] or [time.time()]) for f in fetches]))
            groups: dict[str, list[float]] = {"before": [], "joiner starting": [], "serving state": []}
            for donor, seen in ends.items():
                rounds = intervals(seen)
                groups["before"] += [b - a for a, b in rounds if b <= joiner_started]
                groups["joiner starting"] += [b - a for a, b in rounds if a >= joiner_started and b <= fetches[0]]
                groups["serving state"] += overlapping(rounds, windows)
            for task in watches:
                task.cancel()
            await asyncio.gather(*watches, return_exceptions=True)
            for c in clients:
                await c.aclose()
            fetch_s = [b - a for a, b in windows]
            return {"groups": groups, "fetch_s": fetch_s}
        finally:
            peers.close()
            if logs is not None:  # for a post-mortem of the joiner's rounds
                logs.mkdir(parents=True, exist_ok=True)
                for log in root.glob("*.log"):
                    shutil.copy(log, logs / log.name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=int, default=8, help="rounds run before the joiner starts")
    parser.add_argument("--logs", type=Path, default=None, help="copy every peer's log into this folder")
    args = parser.parse_args()
    result = asyncio.run(run(args.before, args.logs))
    groups, fetch_s = result["groups"], result["fetch_s"]
    base = statistics.median(groups["before"])
    print(f"MLP 64-{HIDDEN}-{HIDDEN}-10: {n_params() / 1e6:.2f}M parameters; {PEERS} donors, 1 joiner; "
          f"fetches: {len(fetch_s)}, {', '.join(f'{s:.2f} s' for s in fetch_s)}")
    print(f"{'donor rounds':<18} {'n':>3} {'median s':>9} {'max s':>7} {'x before':>9}")
    summary = {}
    for name, times in groups.items():
        if not times:
            print(f"{name:<18} {0:>3} {'-':>9} {'-':>7} {'-':>9}")
            continue
        median = statistics.median(times)
        summary[name] = {"n": len(times), "median_s": median, "max_s": max(times), "ratio": median / base}
        print(f"{name:<18} {len(times):>3} {median:>9.3f} {max(times):>7.3f} {median / base:>9.2f}")
    ratio = summary.get("serving state", {}).get("ratio")
    print(json.dumps({"bench": "join", "params": n_params(), "fetch_s": fetch_s, "groups": summary,
                      "ratio_serving_vs_before": ratio, "target_ratio": TARGET_RATIO,
                      "target_met": ratio is not None and ratio <= TARGET_RATIO}))  # fmt: skip


if __name__ == "__main__":
    main()
