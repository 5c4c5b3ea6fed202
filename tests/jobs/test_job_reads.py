"""Reading a job while it runs: status and model always answer from one
round, with no error, however often they are asked (a real peer, real
workers, a tight loop of calls from one client)."""

from __future__ import annotations

import hashlib
import time

import grpc

from spirtd.api.spirt.v1 import control_pb2
from tests.daemon.peers import Control, eventually
from tests.jobs.jobs import JOB_S, spec_file, submit

CALLS = 200  # each a status, then the whole model


async def read_model(control: Control, job_id: str) -> tuple[int, str]:
    """(round, digest) of a model read whole; the bytes must match the digest."""
    first, data = None, bytearray()
    async for chunk in control.stub.GetModel(control_pb2.GetModelRequest(job_id=job_id), timeout=30):
        first = first or chunk
        data.extend(chunk.data)
    assert first is not None and hashlib.sha256(bytes(data)).hexdigest() == first.digest
    return first.round, first.digest


async def test_status_and_model_answer_from_one_round_while_the_job_runs(peers, certs, tmp_path):
    peer = peers.start("node1")
    job_id = submit(certs, peer, spec_file(tmp_path, epochs=1000)).stdout.strip()  # runs until cancelled
    control = Control(peer.address, certs)
    request = control_pb2.JobStatusRequest(job_id=job_id)
    try:

        async def started():
            return (await control.stub.JobStatus(request)).round >= 1

        await eventually(started, JOB_S, "the job's first round")
        errors: list[str] = []
        digests: dict[int, set[str]] = {}
        deadline = time.monotonic() + JOB_S
        for _ in range(CALLS):
            try:
                status = await control.stub.JobStatus(request, timeout=30)
                assert status.digest, f"status at round {status.round} has no digest"
                digests.setdefault(status.round, set()).add(status.digest)
                round_, digest = await read_model(control, job_id)
                digests.setdefault(round_, set()).add(digest)
            except grpc.aio.AioRpcError as exc:
                errors.append(f"{exc.code().name}: {exc.details()}")
            assert time.monotonic() < deadline
        await control.stub.CancelJob(control_pb2.CancelJobRequest(job_id=job_id), timeout=30)
    finally:
        await control.aclose()
    assert errors == []
    assert status.state == control_pb2.RUNNING
    assert len(digests) >= 10, sorted(digests)  # rounds went by while it was read
    # every round's parameters have one digest, whoever read them
    assert all(len(found) == 1 for found in digests.values()), digests
