"""The container layout of deploy/: a peer whose store is a `spirtd store
serve` of its own (another container, sharing the data volume), reached
through the store's unix socket and password file ([store] url and
password_file), and `spirtd store ping` as that store's health check."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.daemon.peers import SPIRTD
from tests.jobs.jobs import DIGITS, spec_file, submit, waited

pytestmark = pytest.mark.timeout(120)

WAIT_S = 20.0
POLL_S = 0.05
# Two rounds: enough for the workers to read parameters and write gradients.
SPEC = (DIGITS.format(epochs=1, timeout=30, mode="warm").replace("epochs = 1", "rounds = 2")
        .replace("concurrency = 2", "concurrency = 1"))


def ping(data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([SPIRTD, "store", "ping", "--data-dir", str(data_dir), "--timeout", "5"],
                          capture_output=True, text=True, timeout=WAIT_S)  # fmt: skip


def serve_store(data_dir: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        proc = subprocess.Popen([SPIRTD, "store", "serve", "--data-dir", str(data_dir), "--persistence", "none"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + WAIT_S
    while ping(data_dir).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the store did not answer within {WAIT_S}s:\n{log.read_text()}")
        time.sleep(POLL_S)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(WAIT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_store_ping_says_why_until_the_store_answers(short_tmp):
    store_dir = short_tmp / "data" / "store"
    before = ping(store_dir)
    assert before.returncode == 1
    assert before.stderr.startswith(f"spirtd store: error: cannot read the store's password file {store_dir}/store.password")
    proc = serve_store(store_dir, short_tmp / "store.log")
    try:
        after = ping(store_dir)
        assert after.returncode == 0 and after.stdout.strip() == f"the store at {store_dir}/redis.sock answers (native)"
        (store_dir / "store.password").write_text("wrong\n")  # the running server keeps the one it started with
        wrong = ping(store_dir)
        assert wrong.returncode == 1 and "cannot reach the tensor store" in wrong.stderr, wrong.stderr
    finally:
        stop(proc)


def test_a_peer_trains_on_a_store_in_its_own_process(peers, certs, short_tmp, tmp_path):
    data = short_tmp / "node1"  # the peer's data dir, holding the store's as in the data volume
    store = serve_store(data / "store", short_tmp / "store.log")
    try:
        peers.config_text += (f'\n[store]\nurl = "unix://{data}/store/redis.sock"\n'
                              f'password_file = "{data}/store/store.password"\n')  # fmt: skip
        peer = peers.start("node1")
        assert any(f"using the external store at unix://{data}/store/redis.sock (native)" in line.get("msg", "")
                   for line in peer.log_lines())  # fmt: skip
        final = waited(submit(certs, peer, spec_file(tmp_path, text=SPEC), "--wait", "--json"))
        assert final["state"] == "succeeded" and final["round"] == 2, json.dumps(final)
        password = (data / "store" / "store.password").read_text().strip()
        assert password not in peer.log_text()
    finally:
        peers.close()
        stop(store)


def test_a_password_file_needs_a_store_url(peers):
    peers.config_text += '\n[store]\npassword_file = "/nowhere/store.password"\n'
    peer = peers.start("node1", wait=False)
    assert peer.wait(WAIT_S) == 2
    assert "password_file is the password of the store at url: give url too" in peer.log_text()
