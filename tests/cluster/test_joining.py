"""A peer that joins a running job on loopback: it takes the majority's
state from a live peer (checked against the digest a majority reported),
contributes from the round after the state it took, and ends with the same
model as the others."""

from __future__ import annotations

import asyncio
import json
import re

from tests.cluster.test_chaos import CALM, TERMINAL, events, spec_text, status
from tests.cluster.test_training_loopback import cluster_of
from tests.daemon.peers import eventually
from tests.jobs.jobs import spirtctl

ROUNDS = 300
JOIN_AT = 10  # the round the cluster has passed when the fourth peer starts
JOB_S = 180.0
TOOK = re.compile(r"took round (\d+) \(digest")


async def test_a_peer_joining_at_round_k_contributes_from_round_k_plus_one_and_ends_with_the_same_model(
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

    async def ended():
        found = [await asyncio.to_thread(status, certs, p, job_id) for p in everyone]
        return found if all(f.get("state") in TERMINAL for f in found) else None

    finals = await eventually(ended, JOB_S, "the job ending on all four peers")
    assert [f["state"] for f in finals] == ["succeeded"] * 4, [(f["state"], f.get("error")) for f in finals]
    assert len({f["digest"] for f in finals}) == 1  # the joiner ends with the others' model
    took = [int(m.group(1)) for m in TOOK.finditer(joiner.log_text())]
    assert took, "the joiner took no state from the others"
    ran = sorted(e["round"] - 1 for e in events(certs, joiner, job_id) if "node4" in e["participants"])
    assert ran, f"the joiner never contributed (it took rounds {took})"
    # Its first contribution is to the round its last fetched state starts,
    # or the next one (the others may have begun that round without it).
    last_took = max(k for k in took if k <= ran[0])
    assert ran[0] <= last_took + 1, (took, ran[:5])
    others = [e for e in events(certs, started[0], job_id) if e["round"] - 1 > ran[0] + 1]
    assert all("node4" in e["participants"] for e in others[:20]), [e["participants"] for e in others[:20]]
