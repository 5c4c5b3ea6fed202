"""Requests a peer cannot use get a status that says why, never UNKNOWN
with a traceback, and the peer keeps serving (a real peer over mutual TLS)."""

from __future__ import annotations

import os
import signal
import time

import grpc
import pytest

from spirtd.api.spirt.v1 import control_pb2
from tests.daemon.peers import CALL_TIMEOUT_S, Control

NESTED_JSON = "[" * 20_000 + "]" * 20_000
NESTED_TOML = "a = " + "[" * 20_000 + "]" * 20_000


async def submit_raw(control: Control, payload: bytes) -> grpc.aio.AioRpcError:
    call = control.channel.unary_unary("/spirt.v1.Control/SubmitJob",
                                       response_deserializer=control_pb2.SubmitJobResponse.FromString)  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(payload, timeout=CALL_TIMEOUT_S)
    return info.value


UNUSABLE = {
    "not-utf8": (b"\x0a\x04\xff\xfe\x00a", "String field had bad UTF-8"),  # field 1, the spec: not UTF-8
    "not-protobuf": (b"\xff\xff\xff\xff", "not a valid message"),
    "nested-json": (control_pb2.SubmitJobRequest(spec=NESTED_JSON, format="json").SerializeToString(),
                    "nested too deeply"),
    "nested-toml": (control_pb2.SubmitJobRequest(spec=NESTED_TOML, format="toml").SerializeToString(),
                    "nested too deeply"),
    "unknown-format": (control_pb2.SubmitJobRequest(spec='{"model": "mlp"}', format="yaml").SerializeToString(),
                       "spec format must be toml or json"),
}  # fmt: skip


async def test_unusable_submissions_are_invalid_arguments(peers, certs):
    peer = peers.start("node1")
    control = Control(peer.address, certs)
    try:
        for case, (payload, words) in UNUSABLE.items():
            err = await submit_raw(control, payload)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (case, err.details())
            assert words in err.details() and "Traceback" not in err.details(), (case, err.details())
            assert (await control.status()).id == "node1"
    finally:
        await control.aclose()
    assert not (peer.data_dir / "jobs").exists() or not list((peer.data_dir / "jobs").glob("*.json"))


async def test_a_store_that_is_restarting_is_unavailable_not_an_error(peers, certs, tmp_path):
    from tests.jobs.jobs import DIGITS, spec_file, submit, wait_for_end

    peers.config_text += "\n[store]\nrestart_backoff_s = 2.5\nrestart_backoff_max_s = 2.5\n"
    peer = peers.start("node1")
    spec = spec_file(tmp_path, text=DIGITS.format(epochs=1, timeout=30, mode="warm").replace("epochs = 1", "rounds = 2"))
    job_id = submit(certs, peer, spec).stdout.strip()
    assert wait_for_end(certs, peer, job_id)["state"] == "succeeded"
    store = peer.data_dir / "store"
    import redis

    client = redis.Redis(unix_socket_path=str(store / "redis.sock"), password=(store / "store.password").read_text().strip())
    pid = int(client.info("server")["process_id"])
    client.close()
    os.kill(pid, signal.SIGKILL)
    control = Control(peer.address, certs)
    request = control_pb2.GetModelRequest(job_id=job_id)
    try:
        time.sleep(0.3)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            [chunk async for chunk in control.stub.GetModel(request, timeout=CALL_TIMEOUT_S)]
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert info.value.details() == "the store is restarting; try again in a moment"
        status = await control.stub.JobStatus(control_pb2.JobStatusRequest(job_id=job_id), timeout=CALL_TIMEOUT_S)
        assert status.state == control_pb2.SUCCEEDED  # what the record holds needs no store
        deadline = time.monotonic() + 20
        while True:
            try:
                chunks = [chunk async for chunk in control.stub.GetModel(request, timeout=CALL_TIMEOUT_S)]
                break
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline
                time.sleep(0.2)
        assert chunks[0].digest == status.digest
    finally:
        await control.aclose()
