"""Peer-to-peer training on loopback: real `spirtd run` daemons over mutual
TLS, each with its own store and workers, one job submitted at one peer."""

from __future__ import annotations

import asyncio
import json

import pytest

from spirtd.api.spirt.v1 import control_pb2
from spirtd.exchange.formulas import exchange_bytes
from tests.daemon.peers import Control, eventually
from tests.jobs.jobs import JOB_S, spec_file, spirtctl

# The MLP on digits: 64 inputs, hidden layers of 128 and 64, 10 classes.
MLP_PARAMS = 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10


async def cluster_of(peers, certs, n):
    first = peers.start("node1")
    started = [first] + [peers.start(f"node{i}", seeds=[first.address]) for i in range(2, n + 1)]
    controls = [Control(p.address, certs) for p in started]

    async def all_see_all():
        views = [await c.members() for c in controls]
        return all(sum(state == "alive" for state in v.values()) == n for v in views)

    await eventually(all_see_all, 30, f"{n} peers seeing each other alive")
    return started, controls


async def events_of(control: Control, job_id: str) -> list[control_pb2.RoundEvent]:
    out = []
    async for event in control.stub.WatchJob(control_pb2.WatchJobRequest(job_id=job_id), timeout=JOB_S):
        out.append(event)
    return out


async def test_three_peers_train_digits_together_with_identical_digests(peers, certs, tmp_path):
    started, controls = await cluster_of(peers, certs, 3)
    try:
        # Three peers make a three times larger global batch: three times the
        # epochs give the one-peer job's number of optimizer steps.
        submitted = spirtctl(certs, started[0], "submit", str(spec_file(tmp_path, epochs=16)), "--json")
        assert submitted.returncode == 0, submitted.stderr
        job_id = json.loads(submitted.stdout)["job_id"]
        histories = await asyncio.gather(*(events_of(c, job_id) for c in controls))
        finals = [json.loads(spirtctl(certs, p, "job", "status", job_id, "--json").stdout) for p in started]
    finally:
        for c in controls:
            await c.aclose()
    for final in finals:
        assert final["state"] == "succeeded", final
        assert final["test_accuracy"] >= 0.90
    assert len({f["digest"] for f in finals}) == 1  # bit-identical models
    for final in finals:  # the cluster's view at every peer: each participant's digest of the last round, alike
        heard = final["participant_digests"]
        assert len(heard) >= 2 and set(heard) <= set(final["participants"]) and len(set(heard.values())) == 1
    rounds = [{e.round: e for e in history if e.participants} for history in histories]
    assert len(rounds[0]) >= 20
    # A peer that starts the job late (it loads its data and workers) may be
    # left out of the first rounds and take them from the others (a resync).
    full = [r for r in rounds[0] if tuple(rounds[0][r].participants) == ("node1", "node2", "node3")]
    assert len(full) >= len(rounds[0]) // 2, {r: tuple(e.participants) for r, e in rounds[0].items()}
    want = exchange_bytes(3, MLP_PARAMS)
    for r in full:  # the same digest on every peer that ran the round; bytes each way within 10% of 2 (n-1)/n M 4
        reported = [peer for peer in rounds if r in peer]
        assert len({peer[r].digest for peer in reported}) == 1
        for peer in reported:
            assert set(peer[r].participant_digests.values()) == {peer[r].digest}
            assert abs(peer[r].sent_bytes - want) <= 0.1 * want and abs(peer[r].received_bytes - want) <= 0.1 * want
            assert set(peer[r].phase_s) >= {"propose", "compute", "aggregate", "exchange", "update", "agree"}
