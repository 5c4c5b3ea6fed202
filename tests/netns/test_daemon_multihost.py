"""Peers on separate hosts (network namespaces, 10.77.0.0/24): cut one off,
see every other peer suspect it and then declare it dead; heal the link and
see it come back alive everywhere."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from spirtd.security import ca
from spirtd.security.identity import Role
from tests.daemon.peers import SPIRTCTL, SPIRTD, START_TIMEOUT_S
from tests.netns.harness import wait_for

PORT = 7100
CONVERGE_S = 20.0
DETECT_S = 15.0
# The default membership timing: what a deployment gets.
CONFIG = ""


@pytest.fixture
def cluster_certs(tmp_path):
    def make(hosts) -> object:
        folder = tmp_path / "certs"
        ca.init_ca(folder)
        for i, host in enumerate(hosts):
            ca.issue(folder, f"peer{i}", ips=[str(host.ip)])
        ca.issue(folder, "client", role=Role.CLIENT)
        return folder

    return make


def start_peer(host, index: int, certs, root, seed: str | None):
    data = root / f"peer{index}"
    data.mkdir(parents=True, exist_ok=True)
    config = root / f"peer{index}.toml"
    config.write_text(CONFIG)
    argv = [SPIRTD, "run", "--id", f"peer{index}", "--listen", f"{host.ip}:{PORT}",
            "--data-dir", str(data), "--certs-dir", str(certs), "--config", str(config),
            "--log-format", "json"]  # fmt: skip
    if seed:
        argv += ["--seeds", seed]
    log = open(root / f"peer{index}.log", "wb")
    host.popen(argv, stdout=log, stderr=subprocess.STDOUT)
    return root / f"peer{index}.log"


def log_events(path, member: str) -> list[str]:
    kinds = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if line.get("member") == member and "event" in line:
            kinds.append(line["event"])
    return kinds


def members(observer, target_ip: str, certs) -> dict[str, str]:
    result = observer.run([SPIRTCTL, "--peer", f"{target_ip}:{PORT}", "--certs-dir", str(certs),
                           "--timeout", "3", "members", "--json"], timeout=20)  # fmt: skip
    if result.returncode != 0:
        return {}
    return {m["id"]: m["state"] for m in json.loads(result.stdout)}


def test_cut_host_is_suspected_then_dead_and_rejoins_when_healed(netns_cluster, cluster_certs, short_tmp):
    cluster = netns_cluster(n=3)
    certs = cluster_certs(cluster.hosts)
    seed = f"{cluster.hosts[0].ip}:{PORT}"
    logs = [start_peer(h, i, certs, short_tmp, None if i == 0 else seed) for i, h in enumerate(cluster.hosts)]
    everyone_alive = lambda: all(  # noqa: E731
        members(h, str(h.ip), certs) == {"peer0": "alive", "peer1": "alive", "peer2": "alive"}
        for h in cluster.hosts
    )
    wait_for(everyone_alive, START_TIMEOUT_S + CONVERGE_S, what="three peers alive on three hosts")

    cut = cluster.hosts[2]
    cut.disconnect()
    started = time.monotonic()
    for i in (0, 1):
        wait_for(lambda i=i: "dead" in log_events(logs[i], "peer2"), DETECT_S,
                 what=f"peer{i} to declare the cut host dead")  # fmt: skip
        kinds = log_events(logs[i], "peer2")
        assert kinds.index("suspect") < kinds.index("dead"), kinds
    detected_s = time.monotonic() - started

    cut.reconnect()
    wait_for(everyone_alive, CONVERGE_S, what="the healed host alive again everywhere")
    assert detected_s < DETECT_S
