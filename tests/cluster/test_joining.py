"""A peer that joins a running job on loopback: it takes the majority's
state from a live peer (checked against the digest a majority reported),
contributes from the round after the state it took, and from then on holds
what the others hold after every round."""

from __future__ import annotations

import asyncio
import json
import re

from tests.cluster.test_chaos import CALM, TERMINAL, events, spec_text, status
from tests.cluster.test_training_loopback import cluster_of
from tests.daemon.peers import eventually
from tests.jobs.jobs import spirtctl

ROUNDS = 100_000  # never reached: the test cancels the job once the joiner has trained a while
JOIN_AT = 10  # the round the cluster has passed when the fourth peer starts
TRAINED = 10  # rounds the joiner takes part in before the job is cancelled
JOIN_S = 120.0  # its start (data, warm workers) and first contribution, on two loaded cores
TOOK = re.compile(r"took round (\d+) \(digest")


async def test_a_peer_joining_at_round_k_contributes_from_round_k_plus_one_and_holds_the_same_model(
        peers, certs, tmp_path):  # fmt: skip
    peers.config_text = CALM
    started, controls = await cluster_of(peers, certs, 3)
    for c in controls:
        await c.aclose()
    path = tmp_path / "join.toml"
    path.write_text(spec_text().replace("rounds = 200", f"rounds = {ROUNDS}"))
    submitted = spirtctl(certs, started[0], "submit", str(path), "--json")
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["job_id"]

    async def passed():
        return (await asyncio.to_thread(status, certs, started[0], job_id)).get("round", 0) >= JOIN_AT

    await eventually(passed, 60, f"round {JOIN_AT}")
    joiner = await asyncio.to_thread(peers.start, "node4", seeds=[started[0].address])
    everyone = [*started, joiner]

    async def contributing():
        s = await asyncio.to_thread(status, certs, joiner, job_id)
        return s.get("round") if "node4" in s.get("participants", ()) else None

    first = await eventually(contributing, JOIN_S, "the joiner contributing to a round")

    async def trained():
        return (await asyncio.to_thread(status, certs, joiner, job_id)).get("round", 0) >= first + TRAINED

    await eventually(trained, JOIN_S, f"the joiner training {TRAINED} rounds")
    cancelled = spirtctl(certs, started[0], "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr

    async def ended():
        found = [await asyncio.to_thread(status, certs, p, job_id) for p in everyone]
        return found if all(f.get("state") in TERMINAL for f in found) else None

    await eventually(ended, 60, "the job ending on all four peers")
    took = [int(m.group(1)) for m in TOOK.finditer(joiner.log_text())]
    assert took, "the joiner took no state from the others"
    history = {p.id: {e["round"]: e for e in events(certs, p, job_id) if e["participants"]} for p in everyone}
    ran = sorted(r - 1 for r, e in history["node4"].items() if "node4" in e["participants"])
    # Its first contribution is to the round its last fetched state starts,
    # or the next one (the others may have begun that round without it).
    last_took = max(k for k in took if k <= ran[0])
    assert ran[0] <= last_took + 1, (took, ran[:5])
    # From then on it takes part, and holds what the others hold after every round it ran.
    later = [r for r in history["node1"] if r - 1 > ran[0] + 1][:TRAINED - 2]
    assert later and all("node4" in history["node1"][r]["participants"] for r in later), later
    for r in history["node4"]:
        digests = {peer[r]["digest"] for peer in history.values() if r in peer}
        assert len(digests) == 1, (r, digests)
