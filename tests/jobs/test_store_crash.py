"""A crash of the peer's own redis-server loses no job: the store is
durable (AOF), spirtd restarts it, and the job goes on from the newest
round the store holds, ending with the same model as a run that never saw
a crash. Only a store that keeps nothing (persistence = "none") sends the
job back to round 0, and the job's events say so."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from pathlib import Path

import redis

from spirtd.api.spirt.v1 import control_pb2
from tests.daemon.peers import Control
from tests.jobs.jobs import DIGITS, JOB_S, spirtctl, submit, wait_for_end

POLL_S = 0.02

ROUNDS = 40  # about 0.1 s each
SPEC = DIGITS.format(epochs=1, timeout=30, mode="warm").replace("epochs = 1", f"rounds = {ROUNDS}")


def spec_path(tmp_path):
    path = tmp_path / "crash.toml"
    path.write_text(SPEC)
    return path


def store_pid(peer) -> int:
    store = peer.data_dir / "store"
    client = redis.Redis(unix_socket_path=str(store / "redis.sock"),
                         password=(store / "store.password").read_text().strip(), socket_timeout=5)  # fmt: skip
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def kill_store_at(peer, job_id, round_: int) -> int:
    """SIGKILLs the peer's redis-server once the job is at round_ or later,
    then waits for the store to be back and the job past that round;
    returns the round the job was at when its store died."""

    async def watch() -> int:
        control = Control(peer.address, peer_certs(peer))
        request = control_pb2.JobStatusRequest(job_id=job_id)
        try:
            deadline = time.monotonic() + JOB_S
            while (await control.stub.JobStatus(request, timeout=30)).round < round_:
                assert time.monotonic() < deadline, f"job {job_id} did not reach round {round_}"
                await asyncio.sleep(POLL_S)
            at = (await control.stub.JobStatus(request, timeout=30)).round
            os.kill(store_pid(peer), signal.SIGKILL)
            while (await control.stub.JobStatus(request, timeout=30)).round <= at:
                assert time.monotonic() < deadline, f"job {job_id} did not go on after its store died at round {at}"
                await asyncio.sleep(POLL_S)
            return at
        finally:
            await control.aclose()

    return asyncio.run(watch())


def peer_certs(peer) -> Path:
    return Path(peer.argv[peer.argv.index("--certs-dir") + 1])


_REFERENCE: dict[str, str] = {}


def reference_digest(peers, certs, tmp_path) -> str:
    """The digest of an uninterrupted run (made once per session: the same
    spec gives the same model on any peer)."""
    if SPEC in _REFERENCE:
        return _REFERENCE[SPEC]
    reference = peers.start("node2")
    job_id = submit(certs, reference, spec_path(tmp_path)).stdout.strip()
    final = wait_for_end(certs, reference, job_id)
    assert final["state"] == "succeeded"
    _REFERENCE[SPEC] = final["digest"]
    return final["digest"]


def watched_messages(certs, peer, job_id) -> list[str]:
    lines = spirtctl(certs, peer, "watch", job_id, "--json").stdout.splitlines()
    return [json.loads(line)["message"] for line in lines if json.loads(line)["message"]]


def test_the_job_survives_its_store_being_killed_again_and_again(peers, certs, tmp_path):
    digest = reference_digest(peers, certs, tmp_path)
    peer = peers.start("node1")  # the default store: aof, fsync every second
    job_id = submit(certs, peer, spec_path(tmp_path)).stdout.strip()
    rng = random.Random(7)
    targets = [rng.randrange(start, start + 6) for start in (4, 14, 24)]  # random rounds, a few apart
    killed_at = [kill_store_at(peer, job_id, target) for target in targets]
    final = wait_for_end(certs, peer, job_id)
    assert final["state"] == "succeeded", final["error"]
    assert final["round"] == ROUNDS and final["digest"] == digest  # as if the store had never crashed
    messages = watched_messages(certs, peer, job_id)
    assert sum("the store restarted" in m for m in messages) >= len(killed_at), (killed_at, messages)
    assert not any("starts over from round 0" in m for m in messages)
    restarts = [line for line in peer.log_lines() if "the store's redis-server is back" in line.get("msg", "")]
    assert len(restarts) == len(killed_at)


def test_a_store_that_keeps_nothing_sends_the_job_back_to_round_0_and_says_so(peers, certs, tmp_path):
    digest = reference_digest(peers, certs, tmp_path)
    peers.config_text += '\n[store]\npersistence = "none"\n'
    peer = peers.start("node1")
    job_id = submit(certs, peer, spec_path(tmp_path)).stdout.strip()
    at = kill_store_at(peer, job_id, 15)
    final = wait_for_end(certs, peer, job_id)
    assert final["state"] == "succeeded" and final["digest"] == digest
    messages = watched_messages(certs, peer, job_id)
    assert any("the store holds none of this job" in m and "starts over from round 0" in m for m in messages), (
        at, messages)
