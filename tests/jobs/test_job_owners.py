"""Who may do what with a job (a real peer, real client certificates), and
what an ended job keeps: job list, job delete and the retention settings."""

from __future__ import annotations

import json
import subprocess

import redis

from tests.daemon.peers import SPIRTD
from tests.jobs.jobs import DIGITS, spirtctl, submit, wait_for_end

# One warm worker: these tests are about what a peer says and keeps, not speed.
SMALL = (DIGITS.format(epochs=1, timeout=30, mode="warm").replace("epochs = 1", "rounds = {rounds}")
         .replace("concurrency = 2", "concurrency = 1"))  # fmt: skip


def small_spec(tmp_path, rounds=3, name="small.toml"):
    path = tmp_path / name
    path.write_text(SMALL.format(rounds=rounds))
    return path


def test_a_job_is_its_owners_and_an_operators(peers, certs, tmp_path):
    peer = peers.start("node1")
    job_id = submit(certs, peer, small_spec(tmp_path)).stdout.strip()
    assert wait_for_end(certs, peer, job_id)["owner"] == "client"
    model = str(tmp_path / "m.pt")

    # another client sees that it exists and how it went...
    for args in (("job", "status", job_id, "--json"), ("job", "list", "--json"), ("watch", job_id, "--json")):
        seen = spirtctl(certs, peer, *args, name="bob")
        assert seen.returncode == 0, seen.stderr
    # ...but may not read its model, cancel or delete it
    for args in (("model", "get", job_id, "-o", model), ("cancel", job_id), ("job", "delete", job_id)):
        refused = spirtctl(certs, peer, *args, name="bob")
        assert refused.returncode == 1
        assert f"job {job_id} belongs to 'client': only its owner or an operator" in refused.stderr, refused.stderr
    status = json.loads(spirtctl(certs, peer, "status", "--json").stdout)
    assert status["counters"]["refused.not_owner"] == 3

    # the owner and an operator may
    assert spirtctl(certs, peer, "model", "get", job_id, "-o", model).returncode == 0
    assert spirtctl(certs, peer, "model", "get", job_id, "-o", model, name="ops").returncode == 0
    assert spirtctl(certs, peer, "cancel", job_id, name="ops").returncode == 0  # ended: a no-op
    deleted = spirtctl(certs, peer, "job", "delete", job_id, name="ops")
    assert deleted.returncode == 0, deleted.stderr
    gone = spirtctl(certs, peer, "job", "status", job_id)
    assert gone.returncode == 1 and "NOT_FOUND" in gone.stderr


def test_a_running_job_cannot_be_deleted_until_it_is_cancelled(peers, certs, tmp_path):
    peer = peers.start("node1")
    job_id = submit(certs, peer, small_spec(tmp_path, rounds=100_000)).stdout.strip()
    busy = spirtctl(certs, peer, "job", "delete", job_id)
    assert busy.returncode == 1 and "cancel it before deleting it" in busy.stderr
    assert spirtctl(certs, peer, "cancel", job_id).returncode == 0
    assert spirtctl(certs, peer, "job", "delete", job_id).returncode == 0
    assert json.loads(spirtctl(certs, peer, "job", "list", "--json").stdout) == []
    assert not (peer.data_dir / "jobs" / f"{job_id}.json").exists()
    assert store_keys(peer) == []


def test_operator_certificates_are_issued_by_the_cli(tmp_path):
    subprocess.run([SPIRTD, "certs", "init", "--dir", str(tmp_path)], check=True, capture_output=True)
    made = subprocess.run([SPIRTD, "certs", "issue", "alice", "--role", "operator", "--dir", str(tmp_path)],
                          capture_output=True, text=True)  # fmt: skip
    assert made.returncode == 0 and "operator certificate" in made.stdout
    listed = subprocess.run([SPIRTD, "certs", "list", "--dir", str(tmp_path)], capture_output=True, text=True)
    assert "alice\toperator" in listed.stdout


def store_keys(peer) -> list[str]:
    """Every job key in the peer's store."""
    store = peer.data_dir / "store"
    client = redis.Redis(unix_socket_path=str(store / "redis.sock"), password=(store / "store.password").read_text().strip())
    try:
        return sorted(k.decode() for k in client.scan_iter(match="job:*"))
    finally:
        client.close()


def test_ended_jobs_keep_what_the_retention_settings_say(peers, certs, tmp_path):
    peers.config_text += "\n[jobs]\nkeep_models = 1\nkeep_jobs = 2\nevent_history = 3\n"
    peer = peers.start("node1")
    ids = []
    for i in range(3):
        ids.append(submit(certs, peer, small_spec(tmp_path, rounds=3, name=f"s{i}.toml")).stdout.strip())
        assert wait_for_end(certs, peer, ids[-1])["state"] == "succeeded"
    listed = {j["job_id"]: j for j in json.loads(spirtctl(certs, peer, "job", "list", "--json").stdout)}
    assert set(listed) == set(ids[1:])  # the oldest record went (keep_jobs = 2)
    assert listed[ids[2]]["model_kept"] and not listed[ids[1]]["model_kept"]  # keep_models = 1
    assert not (peer.data_dir / "jobs" / f"{ids[0]}.json").exists()
    old = spirtctl(certs, peer, "model", "get", ids[1], "-o", str(tmp_path / "old.pt"))
    assert old.returncode == 1 and "was not kept (retention: [jobs] keep_models)" in old.stderr
    assert spirtctl(certs, peer, "model", "get", ids[2], "-o", str(tmp_path / "new.pt")).returncode == 0
    # the store holds the one kept model and nothing else of any job
    assert store_keys(peer) == [f"job:{ids[2]}:params:3"]
    # a late watcher gets the newest events only (event_history = 3 of 3 rounds and the end)
    watched = spirtctl(certs, peer, "watch", ids[2], "--json").stdout.splitlines()
    assert [json.loads(line)["round"] for line in watched] == [2, 3, 3] and json.loads(watched[-1])["state"] == "succeeded"


def test_the_store_is_tidied_of_jobs_that_have_no_record(peers, certs, tmp_path):
    peer = peers.start("node1")
    job_id = submit(certs, peer, small_spec(tmp_path)).stdout.strip()
    wait_for_end(certs, peer, job_id)
    peer.signal(15)
    peer.wait()
    (peer.data_dir / "jobs" / f"{job_id}.json").unlink()  # a record lost, its keys left behind
    peers.restart(peer)
    assert store_keys(peer) == []
