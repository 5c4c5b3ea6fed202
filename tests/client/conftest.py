"""One real peer (mutual TLS, its own store and warm worker) for every
client test, and one small job it trained, submitted and watched to its end
through the synchronous Client with a progress bar."""

from __future__ import annotations

import io
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from spirt_client import Client, RoundEvent
from tests.daemon.conftest import FAST_CONFIG, LOG_TAIL_LINES, certs  # noqa: F401 - the session's cluster CA and certificates
from tests.daemon.peers import Peer, Peers

ROUNDS = 12
EVAL_EVERY = 4
# The MLP on digits, one warm worker: a few seconds, evaluations at rounds 4, 8 and 12.
SMALL_JOB_TOML = f"""
model = "mlp"
dataset = "digits"
batch_size = 32
minibatches_per_round = 4
rounds = {ROUNDS}
seed = 7
eval_every = {EVAL_EVERY}
[optimizer]
name = "sgd"
lr = 0.1
momentum = 0.9
[limits]
invocation_timeout_s = 30
invocation_memory_mb = 1024
max_attempts = 3
[workers]
mode = "warm"
concurrency = 1
"""
SMALL_JOB = tomllib.loads(SMALL_JOB_TOML)
# Long enough to be running whenever a test looks; always cancelled.
LONG_JOB = {**SMALL_JOB, "rounds": 100_000}
JOB_TIMEOUT_S = 120.0
# A call's deadline: roomier than the client's default, for two cores shared with other tests.
CALL_S = 30.0


@dataclass(frozen=True)
class Trained:
    """The peer, the job it trained, the events the Client gave while it ran, and what its bar drew."""

    peer: Peer
    job_id: str
    events: list[RoundEvent]
    bar: str


@pytest.fixture(scope="package")
def peer(certs) -> Peer:  # noqa: F811
    root = Path(tempfile.mkdtemp(prefix="spt-", dir="/tmp"))
    group = Peers(root, certs, config_text=FAST_CONFIG)
    try:
        yield group.start("node1")
    finally:
        problems = group.close()
        shutil.rmtree(root, ignore_errors=True)
        if problems:
            pytest.fail("; ".join(problems))


@pytest.fixture(scope="package")
def trained(peer, certs) -> Trained:  # noqa: F811
    bar = io.StringIO()
    try:
        with Client(peer.address, certs, timeout_s=CALL_S) as client:
            job_id = client.submit(SMALL_JOB)
            events = list(client.events(job_id, progress=True, file=bar, timeout_s=JOB_TIMEOUT_S))
    except BaseException:  # shown with the error: what the peer said meanwhile
        print(f"--- the last lines of {peer.id}'s log ---", *peer.log_text().splitlines()[-LOG_TAIL_LINES:], sep="\n")
        raise
    return Trained(peer, job_id, events, bar.getvalue())
