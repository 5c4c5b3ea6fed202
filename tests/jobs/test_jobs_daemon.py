"""Training jobs on one peer, end to end: a real `spirtd run`, real worker
processes, the real store, submitted and inspected with spirtctl."""

from __future__ import annotations

import json
import signal
import time

import grpc
import numpy as np
import pytest
import torch

from spirtd.api.spirt.v1 import control_pb2
from spirtd.ml.datasets import DatasetSpec, load_dataset
from spirtd.ml.models import ModelSpec, build_model
from spirtd.jobs.spec import parse
from tests.daemon.peers import Control, eventually
from tests.jobs.jobs import DIGITS, JOB_S, job_status, spec_file, spirtctl, submit, waited

def test_mlp_on_digits_reaches_90_percent_through_the_daemon(peers, certs, tmp_path):
    peer = peers.start("node1")
    result = submit(certs, peer, spec_file(tmp_path), "--wait", "--json")
    final = waited(result)
    assert final["state"] == "succeeded" and final["round"] == final["total_rounds"] == 82
    assert final["test_accuracy"] >= 0.90
    assert len(final["digest"]) == 64
    assert job_status(certs, peer, final["job_id"]) == {**final, "elapsed_s": job_status(certs, peer, final["job_id"])["elapsed_s"]}

    # the model comes out as a torch state dict that reproduces the accuracy
    out = tmp_path / "model.pt"
    got = spirtctl(certs, peer, "model", "get", final["job_id"], "-o", str(out))
    assert got.returncode == 0, got.stderr
    state = torch.load(out)
    spec = parse(spec_file(tmp_path).read_text())
    data = load_dataset(DatasetSpec.from_dict(spec.dataset.to_dict()), spec.seed)
    model = build_model(ModelSpec.from_dict(spec.model.to_dict()), data.input_shape, data.num_classes, spec.seed)
    model.load_state_dict(state)
    with torch.no_grad():
        predicted = model(torch.from_numpy(np.array(data.test_x))).argmax(dim=1).numpy()
    assert abs((predicted == data.test_y).mean() - final["test_accuracy"]) < 1e-9


def test_same_spec_and_seed_give_the_same_model_warm_or_cold(peers, certs, tmp_path):
    peer = peers.start("node1")
    digests = []
    for mode in ("warm", "cold"):  # cold: a process start and torch import per minibatch, so few rounds
        text = DIGITS.format(epochs=1, timeout=30, mode=mode).replace("epochs = 1", "rounds = 2") \
            .replace("minibatches_per_round = 4", "minibatches_per_round = 2")  # fmt: skip
        result = submit(certs, peer, spec_file(tmp_path, name=f"{mode}.toml", text=text), "--wait", "--json")
        digests.append(waited(result)["digest"])
    assert digests[0] == digests[1]


# A hung worker costs this long; a worker's first invocation (it loads the
# dataset) must fit in it on a loaded machine, or it is retried as well.
CHAOS_TIMEOUT_S = 8


# One job with a worker of each kind of failure (each kind alone is the
# pool's to test: tests/workers/test_pool.py).
@pytest.mark.parametrize(
    "chaos, retried",
    [("crash@round 1:minibatch 0,hang@round 2:minibatch 3,memory@round 3:minibatch 1", 3)],
    ids=["killed-hung-over-memory"],
)
def test_failed_workers_are_retried_and_the_job_completes(peers, certs, tmp_path, chaos, retried):
    chaos_dir = tmp_path / "chaos"
    chaos_dir.mkdir()
    peer = peers.start("node1", env={"SPIRTD_CHAOS": chaos, "SPIRTD_CHAOS_DIR": str(chaos_dir)})
    result = submit(certs, peer, spec_file(tmp_path, epochs=0.5, timeout=CHAOS_TIMEOUT_S), "--wait", "--json")
    final = waited(result)
    assert final["state"] == "succeeded"
    assert final["minibatches_retried"] == retried and final["minibatches_dropped"] == 0
    reasons = [line["msg"] for line in peer.log_lines() if "retrying" in line.get("msg", "")]
    assert len(reasons) == retried, reasons


def test_a_minibatch_that_keeps_failing_is_reported_and_dropped(peers, certs, tmp_path):
    peer = peers.start("node1", env={"SPIRTD_CHAOS": "crash@round 1:minibatch 2",
                                     "SPIRTD_CHAOS_DIR": "/nonexistent/every-attempt-fails"})  # fmt: skip
    result = submit(certs, peer, spec_file(tmp_path, epochs=0.5, timeout=CHAOS_TIMEOUT_S), "--wait", "--json")
    final = waited(result)
    assert final["state"] == "succeeded" and final["minibatches_dropped"] == 1
    assert any("dropped a minibatch" in line.get("msg", "") and "minibatch 2" in line.get("msg", "")
               for line in peer.log_lines())  # fmt: skip


BAD_SPECS = {
    "unknown-model": (('model = "mlp"', 'model = "transformer"'), "unknown model 'transformer'"),
    "negative-batch": (("batch_size = 32", "batch_size = -4"), "batch_size must be an integer >= 1"),
    "unknown-key": (("seed = 7", "seed = 7\ncolour = 'blue'"), "unknown key 'colour'"),
    "no-length": (("epochs = 8", ""), "exactly one of 'rounds' and 'epochs'"),
    "epochs-1e308": (("epochs = 8", "epochs = 1e308"), "epochs must be at most 1e+06"),
    "epochs-1e17": (("epochs = 8", "epochs = 1e17"), "epochs must be at most 1e+06"),
    "rounds-1e30": (("epochs = 8", f"rounds = {10**30}"), "rounds must be at most 1000000000"),
    "rounds-1e12": (("epochs = 8", f"rounds = {10**12}"), "rounds must be at most 1000000000"),
    "batch-1e9": (("batch_size = 32", f"batch_size = {10**9}"), "batch_size must be at most 65536"),
    "long-name": (("seed = 7", f"seed = 7\nname = '{'n' * 1000}'"), "name must be at most 200 printable characters"),
    "model-too-big": (('model = "mlp"', 'model = { name = "mlp", hidden = [1048576, 1048576] }'),
                      "in the store, whose memory limit is"),
}  # fmt: skip


def test_bad_specs_are_refused_and_leave_nothing(peers, certs, tmp_path):
    """One peer takes every bad spec in turn (a table): each is refused with
    the field and its bound, none leaves a record, the peer stays up."""
    peer = peers.start("node1")
    for case, (change, words) in BAD_SPECS.items():
        text = DIGITS.format(epochs=8, timeout=30, mode="warm").replace(*change)
        result = spirtctl(certs, peer, "submit", str(spec_file(tmp_path, text=text)))
        assert result.returncode == 1, case
        assert words in result.stderr, (case, result.stderr)
        code = "RESOURCE_EXHAUSTED" if "memory limit" in words else "INVALID_ARGUMENT"
        assert f"answered {code}" in result.stderr and "Traceback" not in result.stderr, case
        assert not list((peer.data_dir / "jobs").glob("*.json")) if (peer.data_dir / "jobs").exists() else True
        assert peer.alive, case


def test_a_dataset_path_refusal_does_not_tell_what_the_peer_holds(peers, certs, tmp_path):
    """Missing folder, a file where a folder should be, malformed files: the
    client hears the same words each time; the peer's log says which."""
    malformed = tmp_path / "mnist"
    malformed.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):  # fmt: skip
        (malformed / name).write_bytes(b"not an idx file at all")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    peer = peers.start("node1")
    answers = []
    for path in ("/nonexistent/mnist", a_file, malformed):
        text = DIGITS.format(epochs=8, timeout=30, mode="warm").replace(
            'dataset = "digits"', f'dataset = {{ name = "mnist", path = "{path}" }}')
        result = spirtctl(certs, peer, "submit", str(spec_file(tmp_path, text=text)))
        assert result.returncode == 1 and "INVALID_ARGUMENT" in result.stderr
        answers.append(result.stderr.split("answered", 1)[1])
    assert len(set(answers)) == 1 and "cannot be used on peer node1" in answers[0]
    assert "nonexistent" not in answers[0] and "idx" not in answers[0]
    logged = " ".join(line["msg"] for line in peer.log_lines() if "dataset files cannot be used" in line.get("msg", ""))
    assert "/nonexistent/mnist does not exist" in logged and "is not a folder" in logged
    assert "train-images-idx3-ubyte" in logged
    assert not (peer.data_dir / "jobs").exists() or not list((peer.data_dir / "jobs").glob("*.json"))


async def test_a_restarted_daemon_resumes_the_job_where_it_was(peers, certs, tmp_path):
    # 62 rounds: on a quiet machine 31 ran from round 10 to their end before the SIGKILL landed.
    reference = peers.start("node2")
    ref = waited(submit(certs, reference, spec_file(tmp_path, epochs=6), "--wait", "--json"))

    peer = peers.start("node1")
    job_id = submit(certs, peer, spec_file(tmp_path, epochs=6)).stdout.strip()
    control = Control(peer.address, certs)

    async def halfway():
        status = await control.stub.JobStatus(control_pb2.JobStatusRequest(job_id=job_id))
        return status.round >= 10 and status.round

    stopped_at = await eventually(halfway, JOB_S, "the job to get 10 rounds in")
    await control.aclose()
    peer.signal(signal.SIGKILL)
    peer.wait()
    peers.restart(peer)
    final = None
    deadline = time.monotonic() + JOB_S
    while time.monotonic() < deadline:
        final = job_status(certs, peer, job_id)
        if final["state"] not in ("queued", "running"):
            break
        time.sleep(0.5)
    assert final["state"] == "succeeded"
    resumed = [line for line in peer.log_lines() if "resumes at round" in line.get("msg", "")]
    assert resumed and resumed[-1]["round"] >= stopped_at - 1
    assert final["digest"] == ref["digest"]  # deterministic: as if it had never stopped


async def test_watch_and_cancel(peers, certs, tmp_path):
    peer = peers.start("node1")
    job_id = submit(certs, peer, spec_file(tmp_path, epochs=50)).stdout.strip()
    control = Control(peer.address, certs)
    events = []
    try:
        async for event in control.stub.WatchJob(control_pb2.WatchJobRequest(job_id=job_id)):
            events.append(event)
            if event.round >= 3 and len(events) == 3:
                reply = await control.stub.CancelJob(control_pb2.CancelJobRequest(job_id=job_id))
                assert reply.state == control_pb2.CANCELLED
        status = await control.stub.JobStatus(control_pb2.JobStatusRequest(job_id=job_id))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await control.stub.JobStatus(control_pb2.JobStatusRequest(job_id="j-nope"))
    finally:
        await control.aclose()
    assert events[-1].state == control_pb2.CANCELLED
    assert [e.round for e in events[:3]] == [1, 2, 3] and set(events[0].phase_s) >= {"compute", "aggregate", "update"}
    assert status.state == control_pb2.CANCELLED
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    watched = spirtctl(certs, peer, "watch", job_id, "--json")
    assert watched.returncode == 0 and json.loads(watched.stdout.splitlines()[-1])["state"] == "cancelled"


def test_patience_stops_the_job_early(peers, certs, tmp_path):
    peer = peers.start("node1")
    text = (DIGITS.format(epochs=8, timeout=30, mode="warm")
            .replace("epochs = 8", "rounds = 40")
            .replace("eval_every = 10", "eval_every = 2\npatience = 2\nmin_delta = 100.0"))  # fmt: skip
    final = waited(submit(certs, peer, spec_file(tmp_path, text=text), "--wait", "--json"))
    # evaluations after rounds 2 (first: an improvement on nothing), 4 and 6 (no gain of 100): stop
    assert final["state"] == "stopped_early" and final["round"] == 6
    assert final["test_accuracy"] is not None
