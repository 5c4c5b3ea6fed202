"""Peer-to-peer training across hosts (network namespaces, 10.77.0.0/24):
real daemons over mutual TLS, each with its own store and workers. A peer
SIGKILLed mid-round, then restarted; a peer cut off by the network, then
healed. The job completes, and the peers end with the same model."""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import dataclass

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
JOB_S = 120.0
# A job long enough to kill, restart and cut a peer in its course (a round
# takes about 0.1 s; a restarted peer's workers take 10 to 15 s to start); deadlines
# that bound a round with a dead peer.
SPEC = DIGITS.format(epochs=1, timeout=30, mode="warm").replace("epochs = 1", "rounds = 400") + """
[peers]
deadline_floor_s = 2
deadline_ceiling_s = 10
propose_timeout_s = 3
report_timeout_s = 10
"""
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


def submit(host, certs, root, rounds: int = 400) -> str:
    spec = root / "job.toml"
    spec.write_text(SPEC.replace("rounds = 400", f"rounds = {rounds}"))
    result = ctl(host, certs, "submit", str(spec), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["job_id"]


def finals(hosts, certs, job_id) -> list[dict] | None:
    found = [status(h, certs, job_id) for h in hosts]
    return found if all(f.get("state") in TERMINAL for f in found) else None


def test_a_peer_sigkilled_mid_round_then_restarted_the_job_completes_with_one_model(netns_cluster, cluster_certs,
                                                                                    short_tmp):  # fmt: skip
    cluster = netns_cluster(n=3)
    certs = cluster_certs(cluster.hosts)
    daemons = start_cluster(cluster, certs, short_tmp)
    try:
        killed_and_restarted(cluster, certs, short_tmp, daemons)
    finally:
        dump(daemons)


def killed_and_restarted(cluster, certs, short_tmp, daemons) -> None:
    first, _, victim = cluster.hosts
    job_id = submit(first, certs, short_tmp)
    wait_for(lambda: at_round(victim, certs, job_id, 2), JOB_S, what="round 2 on the victim")
    daemons[2].kill()  # mid-round: every peer owns a shard
    killed_at = status(first, certs, job_id)["round"]
    daemons[2].start()  # back with the state of an older round: it takes the majority's, and trains again
    ended = wait_for(lambda: finals(cluster.hosts, certs, job_id), JOB_S, what="the job ending on every peer")
    assert [f["state"] for f in ended] == ["succeeded"] * 3, ended
    assert len({f["digest"] for f in ended}) == 1, ended
    assert min(f["test_accuracy"] for f in ended) >= 0.85
    events = [json.loads(line) for line in ctl(victim, certs, "watch", job_id, "--json").stdout.splitlines()]
    back = [e for e in events if e["round"] > killed_at + 2 and len(e["participants"]) == 3]
    assert back, "the restarted peer never trained in a round again"
    survivors = [json.loads(line) for line in ctl(first, certs, "watch", job_id, "--json").stdout.splitlines()]
    without = [e for e in survivors if e["participants"] and len(e["participants"]) == 2]
    assert without and all(e["digest"] for e in without)  # rounds went on without the dead peer


def test_a_peer_cut_off_stops_for_lack_of_quorum_and_rejoins_when_healed(netns_cluster, cluster_certs, short_tmp):
    cluster = netns_cluster(n=3)
    certs = cluster_certs(cluster.hosts)
    daemons = start_cluster(cluster, certs, short_tmp)
    try:
        cut_and_healed(cluster, certs, short_tmp)
    finally:
        dump(daemons)


def cut_and_healed(cluster, certs, short_tmp) -> None:
    first, _, cut = cluster.hosts
    job_id = submit(first, certs, short_tmp, rounds=200)
    wait_for(lambda: at_round(cut, certs, job_id, 3), JOB_S, what="round 3 on the peer to be cut off")
    cut.disconnect()
    stuck_at = status(cut, certs, job_id)["round"]
    wait_for(lambda: at_round(first, certs, job_id, stuck_at + 4), JOB_S, what="the majority going on")
    assert status(cut, certs, job_id)["round"] <= stuck_at + 1  # alone it is no quorum: it trains nothing
    cut.reconnect()
    ended = wait_for(lambda: finals(cluster.hosts, certs, job_id), JOB_S, what="the job ending on every peer")
    assert [f["state"] for f in ended] == ["succeeded"] * 3, ended
    assert len({f["digest"] for f in ended}) == 1, ended
