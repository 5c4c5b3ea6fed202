"""Peer-to-peer training across hosts (network namespaces, 10.77.0.0/24):
real daemons over mutual TLS, each with its own store and workers. A peer
SIGKILLed mid-round, then restarted; a peer cut off by the network, then
healed. The job completes, and the peers end with the same model."""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import dataclass

import pytest

from tests.daemon.peers import SPIRTCTL, SPIRTD
from tests.jobs.jobs import DIGITS
from tests.netns.harness import wait_for
from tests.netns.test_daemon_multihost import PORT, cluster_certs  # noqa: F401 - the fixture

# Failure detection in a few seconds, yet calm enough for three daemons and
# their workers on two cores (faster settings suspect the living under load).
FAST = """
[membership]
probe_interval_s = 0.5
probe_timeout_s = 0.2
gossip_interval_s = 0.2
push_pull_interval_s = 3.0
"""
STEP_S = 120.0  # each wait for the cluster to get somewhere, on two loaded cores
# A job that never ends by itself (the test cancels it once both faults are
# over and healed: a job sized to end after them raced the restarted peer,
# whose workers take 10 to 15 s to start); deadlines that bound a round with
# a dead peer.
ROUNDS = 100_000
PEERS_TABLE = {"deadline_floor_s": 2, "deadline_ceiling_s": 10, "propose_timeout_s": 3, "report_timeout_s": 10}
SPEC = DIGITS.format(epochs=1, timeout=30, mode="warm").replace("epochs = 1", f"rounds = {ROUNDS}") + \
    "\n[peers]\n" + "".join(f"{k} = {v}\n" for k, v in PEERS_TABLE.items())  # fmt: skip
# Rounds each peer back from a fault must take part in before the next step.
TRAINED = 5
TERMINAL = ("succeeded", "stopped_early", "failed", "cancelled")


@dataclass
class Daemon:
    host: object
    argv: list[str]
    log: object
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = self.host.popen(self.argv, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def start_cluster(cluster, certs, root) -> list[Daemon]:
    seed = f"{cluster.hosts[0].ip}:{PORT}"
    daemons = []
    for i, host in enumerate(cluster.hosts):
        (root / f"peer{i}").mkdir(parents=True, exist_ok=True)
        config = root / f"peer{i}.toml"
        config.write_text(FAST)
        argv = [SPIRTD, "run", "--id", f"peer{i}", "--listen", f"{host.ip}:{PORT}", "--data-dir",
                str(root / f"peer{i}"), "--certs-dir", str(certs), "--config", str(config), "--log-format", "json"]
        if i:
            argv += ["--seeds", seed]
        daemon = Daemon(host, argv, root / f"peer{i}.log")
        daemon.start()
        daemons.append(daemon)
    try:
        def everyone_alive() -> bool:
            exited = [d for d in daemons if d.proc.poll() is not None]
            assert not exited, f"{len(exited)} daemon(s) exited at start"
            return all(alive_count(h, certs) == len(cluster.hosts) for h in cluster.hosts)

        wait_for(everyone_alive, 60, what="every peer alive on every host")
    except BaseException:
        dump(daemons)
        raise
    return daemons


def dump(daemons, lines: int = 40) -> None:
    """The logs' ends (captured: pytest shows them when a test failed)."""
    for daemon in daemons:
        print(f"--- {daemon.log} ---", *daemon.log.read_text(errors="replace").splitlines()[-lines:], sep="\n")


def ctl(host, certs, *args, timeout=30):
    return host.run([SPIRTCTL, "--peer", f"{host.ip}:{PORT}", "--certs-dir", str(certs), "--timeout", "10", *args],
                    timeout=timeout)  # fmt: skip


def alive_count(host, certs) -> int:
    result = ctl(host, certs, "members", "--json")
    return sum(m["state"] == "alive" for m in json.loads(result.stdout)) if result.returncode == 0 else 0


def status(host, certs, job_id) -> dict:
    result = ctl(host, certs, "job", "status", job_id, "--json")
    return json.loads(result.stdout) if result.returncode == 0 else {}


def at_round(host, certs, job_id, r) -> bool:
    return status(host, certs, job_id).get("round", 0) >= r


def submit(host, certs, root) -> str:
    spec = root / "job.toml"
    spec.write_text(SPEC)
    result = ctl(host, certs, "submit", str(spec), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["job_id"]


def finals(hosts, certs, job_id) -> list[dict] | None:
    found = [status(h, certs, job_id) for h in hosts]
    return found if all(f.get("state") in TERMINAL for f in found) else None


def events(host, certs, job_id) -> list[dict]:
    return [json.loads(line) for line in ctl(host, certs, "watch", job_id, "--json").stdout.splitlines()]


def trained_again(host, peer_id: str, certs, job_id, after: int) -> bool:
    """Whether the peer took part in TRAINED rounds of all three after round `after`."""
    rounds = {e["round"] for e in events(host, certs, job_id)
              if e["round"] > after and len(e["participants"]) == 3 and peer_id in e["participants"]}  # fmt: skip
    return len(rounds) >= TRAINED


@pytest.mark.faults_across_hosts
def test_a_peer_cut_off_then_healed_and_a_peer_sigkilled_then_restarted_one_job_one_model(
        netns_cluster, cluster_certs, short_tmp):  # fmt: skip
    """One job on three hosts: peer2 is cut off (alone it is no quorum: it
    trains nothing while the others go on), healed (it takes their version
    and trains again); then peer1 is SIGKILLed mid-round (every peer owns a
    shard) and restarted (it does the same). Every peer holds the same model
    after every round, and no round outlasts its deadlines."""
    cluster = netns_cluster(n=3)
    certs = cluster_certs(cluster.hosts)
    daemons = start_cluster(cluster, certs, short_tmp)
    try:
        faults(cluster, certs, short_tmp, daemons)
    finally:
        dump(daemons)


def faults(cluster, certs, short_tmp, daemons) -> None:
    first, killed, cut = cluster.hosts
    job_id = submit(first, certs, short_tmp)
    wait_for(lambda: at_round(cut, certs, job_id, 3), STEP_S, what="round 3 on the peer to be cut off")
    cut.disconnect()
    stuck_at = status(cut, certs, job_id)["round"]
    wait_for(lambda: at_round(first, certs, job_id, stuck_at + 4), STEP_S, what="the majority going on")
    assert status(cut, certs, job_id)["round"] <= stuck_at + 1  # alone it is no quorum: it trains nothing
    cut.reconnect()
    healed_at = status(first, certs, job_id)["round"]
    wait_for(lambda: trained_again(cut, "peer2", certs, job_id, healed_at), STEP_S, what="the healed peer training again")

    daemons[1].kill()  # mid-round: rounds follow each other without a pause
    killed_at = status(first, certs, job_id)["round"]
    daemons[1].start()  # back with the state of an older round: it takes the majority's, and trains again
    wait_for(lambda: trained_again(killed, "peer1", certs, job_id, killed_at), STEP_S,
             what="the restarted peer training again")  # fmt: skip
    cancelled = ctl(first, certs, "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    ended = wait_for(lambda: finals(cluster.hosts, certs, job_id), STEP_S, what="the job ending on every peer")
    assert {f["state"] for f in ended} == {"cancelled"}, ended

    history = {h.name: {e["round"]: e for e in events(h, certs, job_id) if e["participants"]} for h in cluster.hosts}
    for r in set().union(*history.values()):
        digests = {peer[r]["digest"] for peer in history.values() if r in peer}
        assert len(digests) == 1, (r, digests)  # one model after every round, at every peer that ran it
    rounds = list(history[first.name].values())
    assert any(len(e["participants"]) == 2 for e in rounds)  # rounds went on without the lost peer
    # A round waits at most for its proposals, parts and results, and reports, with a retry.
    bound = 2 * (PEERS_TABLE["propose_timeout_s"] + 2 * PEERS_TABLE["deadline_ceiling_s"]
                 + PEERS_TABLE["report_timeout_s"])  # fmt: skip
    assert max(sum(e["phase_s"].values()) for e in rounds) < bound
