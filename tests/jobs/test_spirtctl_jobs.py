"""spirtctl's job commands as a user meets them: what status says before a
round and after a restart, a watch into a pipe, and the model as a state
dict or TorchScript (a real peer and the real spirtctl)."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
import torch

from spirtd.ml.datasets import DatasetSpec, load_dataset
from spirtd.ml.models import ModelSpec, build_model
from spirtd.jobs.spec import parse
from tests.jobs.jobs import DIGITS, job_status, spirtctl, submit, wait_for_end

# One warm worker: these tests are about what a peer says and keeps, not speed.
SMALL = (DIGITS.format(epochs=1, timeout=30, mode="warm").replace("epochs = 1", "rounds = {rounds}")
         .replace("concurrency = 2", "concurrency = 1"))  # fmt: skip


def spec(tmp_path, rounds: int):
    path = tmp_path / f"r{rounds}.toml"
    path.write_text(SMALL.format(rounds=rounds))
    return path


def test_status_before_the_first_round_shows_no_loss_and_says_who_trains(peers, certs, tmp_path):
    peer = peers.start("node1")
    busy = submit(certs, peer, spec(tmp_path, 100_000)).stdout.strip()
    queued = submit(certs, peer, spec(tmp_path, 3)).stdout.strip()  # waits behind the first
    human = spirtctl(certs, peer, "job", "status", queued)
    assert human.returncode == 0, human.stderr
    assert f"job {queued} (mlp on digits): queued, round 0/3, loss -" in human.stdout
    assert "peers node1 (the last round's participants)" in human.stdout
    machine = job_status(certs, peer, queued)
    assert machine["loss"] is None and machine["participants"] == ["node1"] and machine["total_rounds"] == 3
    assert spirtctl(certs, peer, "cancel", busy).returncode == 0
    assert wait_for_end(certs, peer, queued)["state"] == "succeeded"


def test_status_right_after_a_restart_shows_where_the_job_is(peers, certs, tmp_path):
    peer = peers.start("node1")
    job_id = submit(certs, peer, spec(tmp_path, 100_000)).stdout.strip()
    while job_status(certs, peer, job_id)["round"] < 5:
        pass
    peer.signal(signal.SIGKILL)
    peer.wait()
    peers.restart(peer)
    status = job_status(certs, peer, job_id)
    assert status["total_rounds"] == 100_000 and status["round"] >= 5 and status["loss"] is not None
    assert spirtctl(certs, peer, "cancel", job_id).returncode == 0


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_a_watch_into_a_pipe_then_the_model_as_a_state_dict_or_torchscript(peers, certs, tmp_path):
    peer = peers.start("node1")
    text = SMALL.format(rounds=20)
    job_id = submit(certs, peer, spec(tmp_path, 20)).stdout.strip()
    watched = spirtctl(certs, peer, "watch", job_id)  # stdout and stderr are pipes here: no bar
    assert watched.returncode == 0, watched.stderr
    assert "\r" not in watched.stdout + watched.stderr and "it/s" not in watched.stderr
    lines = watched.stdout.splitlines()
    assert lines[0].startswith("round ") and lines[-1] == f"job {job_id} succeeded: finished"
    assert 3 <= len(lines) <= 15, lines
    final = wait_for_end(certs, peer, job_id)
    for fmt in ("state-dict", "torchscript"):
        got = spirtctl(certs, peer, "model", "get", job_id, "-o", str(tmp_path / f"{fmt}.pt"), "--format", fmt)
        assert got.returncode == 0, got.stderr
        assert f"round 20, digest {final['digest'][:16]}" in got.stdout
    job = parse(text)
    data = load_dataset(DatasetSpec.from_dict(job.dataset.to_dict()), job.seed)
    model = build_model(ModelSpec.from_dict(job.model.to_dict()), data.input_shape, data.num_classes, 0)
    model.load_state_dict(torch.load(tmp_path / "state-dict.pt"))  # what the README shows
    scripted = torch.jit.load(str(tmp_path / "torchscript.pt"))  # needs no spirtd
    x = torch.from_numpy(np.array(data.test_x[:64]))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), scripted(x))
    predicted = scripted(torch.from_numpy(np.array(data.test_x))).argmax(dim=1).numpy()
    assert abs((predicted == data.test_y).mean() - final["test_accuracy"]) < 1e-9
    listed = json.loads(spirtctl(certs, peer, "job", "list", "--json").stdout)
    assert [j["job_id"] for j in listed] == [job_id] and listed[0]["model_kept"]
