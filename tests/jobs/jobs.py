"""Job specs and spirtctl calls shared by the training tests that run a real peer."""

from __future__ import annotations

import json
import subprocess
import time

from tests.daemon.peers import SPIRTCTL

JOB_S = 240.0
DIGITS = """
model = "mlp"
dataset = "digits"
batch_size = 32
minibatches_per_round = 4
epochs = {epochs}
seed = 7
eval_every = 10
[optimizer]
name = "sgd"
lr = 0.1
momentum = 0.9
[limits]
invocation_timeout_s = {timeout}
invocation_memory_mb = 1024
max_attempts = 3
[workers]
mode = "{mode}"
concurrency = 2
"""


def spec_file(tmp_path, name="digits.toml", epochs=8, timeout=30, mode="warm", text=None):
    path = tmp_path / name
    path.write_text(text if text is not None else DIGITS.format(epochs=epochs, timeout=timeout, mode=mode))
    return path


def spirtctl(certs, peer, *args, timeout=JOB_S, name="client"):
    return subprocess.run([SPIRTCTL, "--peer", peer.address, "--certs-dir", str(certs), "--name", name,
                           "--timeout", "30", *args], capture_output=True, text=True, timeout=timeout)  # fmt: skip


def submit(certs, peer, path, *extra):
    result = spirtctl(certs, peer, "submit", str(path), *extra)
    assert result.returncode == 0, result.stderr
    return result


def waited(result) -> dict:
    """`submit --wait --json` prints the job id, then the final status."""
    first, last = result.stdout.strip().splitlines()
    assert json.loads(first) == {"job_id": json.loads(last)["job_id"]}
    return json.loads(last)


def job_status(certs, peer, job_id) -> dict:
    result = spirtctl(certs, peer, "job", "status", job_id, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_for_end(certs, peer, job_id, timeout_s=JOB_S) -> dict:
    """Polls the job's status until it is no longer queued or running."""
    deadline = time.monotonic() + timeout_s
    status = job_status(certs, peer, job_id)
    while status["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        status = job_status(certs, peer, job_id)
    return status
