"""Tests of the network-namespace harness itself: connectivity, isolation,
fault injection, and that nothing outlives a cluster."""

from __future__ import annotations

import errno
import json
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from .harness import (
    Cluster, Host, NetnsError, PYTHON, WaitTimeout, netns_available, port_open, reap_stale,
    wait_for,
)
from .netns_ops import ip, ip_binary, netns_identity, netns_names, pid_alive, pids_in_netns
from .probes import (
    CLIENT_TIMEOUT_S, Session, exchange, expected_reachability, reachability, start_echo,
)

pytestmark = pytest.mark.timeout(120)

REPO_ROOT = Path(__file__).resolve().parents[2]
IP = ip_binary() or "ip"
# A dropped connect gives up after CLIENT_TIMEOUT_S; allow this much more
# for starting the probe process.
FAIL_FAST_ALLOWANCE_S = 3.0
# How long a healed or reconnected link may take to carry traffic again
# (TCP retransmission backoff included).
RESTORE_TIMEOUT_S = 10.0
SLEEP_FOREVER = ["sleep", "300"]
IGNORE_SIGTERM = [
    PYTHON, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(300)",
]
# A shell that leaves a grandchild in a session of its own (outside the
# process group the harness kills), then sleeps.
ESCAPE_GROUP = ["sh", "-c", "setsid sleep 300 & exec sleep 300"]


@dataclass(frozen=True)
class Footprint:
    """What a cluster created, recorded while it was alive."""

    token: str
    namespaces: tuple[str, ...]
    identities: tuple[tuple[int, int], ...]
    pids: tuple[int, ...]
    lock_path: Path


def footprint(cluster: Cluster) -> Footprint:
    identities = tuple(i for i in map(netns_identity, cluster.namespaces) if i is not None)
    return Footprint(cluster.names.token, cluster.namespaces, identities,
                     tuple(pids_in_netns(identities)), cluster.names.lock_path)


def assert_gone(fp: Footprint) -> None:
    listed = ip("netns", "list").stdout
    assert not [n for n in fp.namespaces if n in listed]
    assert fp.token not in ip("-o", "link").stdout
    # A namespace identity can be reused by a new namespace once ours is
    # freed; a named one belonging to someone else is not a leak.
    others = {netns_identity(n) for n in netns_names()}
    assert pids_in_netns(set(fp.identities) - others) == []
    assert [p for p in fp.pids if pid_alive(p)] == []
    assert not fp.lock_path.exists()


def start_stubborn_processes(host: Host) -> None:
    host.popen(SLEEP_FOREVER)
    stubborn = host.popen(IGNORE_SIGTERM, stdout=subprocess.PIPE, text=True)
    host.popen(ESCAPE_GROUP)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == "ready\n"
    wait_for(lambda: len(pids_in_netns([netns_identity(host.netns)])) >= 4, 5.0,
             what=f"processes started in {host.name}")


# --- without namespaces -------------------------------------------------------


def test_netns_available_returns_none_or_reason() -> None:
    reason = netns_available()
    assert reason is None or (isinstance(reason, str) and reason)


def test_wait_for_returns_first_truthy_value() -> None:
    values = iter([0, None, "ready"])
    assert wait_for(lambda: next(values), timeout_s=5.0, interval_s=0.001) == "ready"


def test_wait_for_timeout_names_what_it_waited_for() -> None:
    with pytest.raises(WaitTimeout, match=r"waiting for the moon.*last result: False"):
        wait_for(lambda: False, timeout_s=0.05, interval_s=0.01, what="the moon")


@pytest.mark.parametrize("kwargs", [
    {"n": 0},
    {"n": 300},
    {"n": 3, "subnet": "10.77.0.0/30"},
    {"n": 2, "subnet": "8.8.8.0/24"},
    {"n": 2, "host_offset": 0},
])
def test_cluster_rejects_bad_config(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Cluster(**kwargs)


# --- connectivity and isolation ----------------------------------------------


def test_cluster_hosts_reach_each_other(netns_cluster: Callable[..., Cluster]) -> None:
    cluster = netns_cluster(3)
    assert [h.ip for h in cluster.hosts] == ["10.77.0.10", "10.77.0.11", "10.77.0.12"]
    assert len({h.netns for h in cluster.hosts} | {cluster.switch_netns}) == 4
    assert set(cluster.namespaces) <= set(netns_names())
    for host in cluster.hosts:
        start_echo(host, tag=f"{host.name}:")
    for source in cluster.hosts:
        for target in cluster.hosts:
            assert exchange(source, target, "ping") == f"{target.name}:ping"


def test_cluster_is_isolated_from_host_netns(netns_cluster: Callable[..., Cluster]) -> None:
    cluster = netns_cluster(2)
    host_addrs = ip("-o", "addr").stdout
    host_links = ip("-o", "link").stdout
    for host in cluster.hosts:
        assert f" {host.ip}/" not in host_addrs
        # The address is not local here: binding to it fails (sends nothing).
        with socket.socket() as s, pytest.raises(OSError) as info:
            s.bind((host.ip, 0))
        assert info.value.errno == errno.EADDRNOTAVAIL
    for name in cluster.interfaces:
        assert name not in host_links
    h0 = cluster.hosts[0]
    links = h0.run([IP, "-o", "link"], check=True).stdout.splitlines()
    assert [line.split(":")[1].strip().split("@")[0] for line in links] == ["lo", h0.ifname]
    # No route out of the subnet: a lookup (which sends nothing) fails.
    outside = h0.run([IP, "route", "get", "10.77.1.1"])
    assert outside.returncode != 0 and "unreachable" in outside.stderr


def test_cluster_custom_subnet(netns_cluster: Callable[..., Cluster]) -> None:
    cluster = netns_cluster(2, subnet="10.77.0.128/25", host_offset=1)
    a, b = cluster.hosts
    assert (a.ip, b.ip) == ("10.77.0.129", "10.77.0.130")
    assert f"{a.ip}/25" in a.run([IP, "-o", "addr"], check=True).stdout
    start_echo(b)
    assert exchange(a, b, "hi") == "hi"


def test_cluster_two_at_once_do_not_clash(netns_cluster: Callable[..., Cluster]) -> None:
    first, second = netns_cluster(2), netns_cluster(2)
    assert not set(first.namespaces) & set(second.namespaces)
    assert not set(first.interfaces) & set(second.interfaces)
    # Same addresses, same port, and each cluster only sees its own server.
    start_echo(first.hosts[0], tag="first:")
    start_echo(second.hosts[0], tag="second:")
    assert exchange(first.hosts[1], first.hosts[0], "x") == "first:x"
    assert exchange(second.hosts[1], second.hosts[0], "x") == "second:x"


# --- fault injection -----------------------------------------------------------


def test_host_disconnect_cuts_and_reconnect_restores(netns_cluster: Callable[..., Cluster]) -> None:
    cluster = netns_cluster(3)
    h0, h1, h2 = cluster.hosts
    for host in cluster.hosts:
        start_echo(host)
    h0.disconnect()
    for netns, link in [(h0.netns, h0.ifname), (h0.switch_netns, h0.switch_port)]:
        assert "state DOWN" in ip("-n", netns, "-o", "link", "show", link).stdout
    start = time.monotonic()
    assert reachability(cluster) == expected_reachability(cluster, [(h0, h1), (h0, h2)])
    assert time.monotonic() - start < CLIENT_TIMEOUT_S + FAIL_FAST_ALLOWANCE_S
    h0.reconnect()
    wait_for(lambda: reachability(cluster) == expected_reachability(cluster),
             RESTORE_TIMEOUT_S, what="all hosts reachable after reconnect")
    assert exchange(h0, h1, "back") == "back"


def test_cluster_partition_splits_and_heal_rejoins(netns_cluster: Callable[..., Cluster]) -> None:
    cluster = netns_cluster(4)
    h0, h1, h2, h3 = cluster.hosts
    for host in cluster.hosts:
        start_echo(host)
    cluster.partition([h0, h1], [h2])  # h3 stays in touch with everyone
    start = time.monotonic()
    assert reachability(cluster) == expected_reachability(cluster, [(h0, h2), (h1, h2)])
    assert time.monotonic() - start < CLIENT_TIMEOUT_S + FAIL_FAST_ALLOWANCE_S
    cluster.partition([h3], [h0])  # partitions accumulate
    assert reachability(cluster) == expected_reachability(
        cluster, [(h0, h2), (h1, h2), (h3, h0)])
    cluster.heal()
    assert reachability(cluster) == expected_reachability(cluster)


@pytest.mark.parametrize("fault", ["partition", "disconnect"])
def test_fault_stalls_open_connection_until_repaired(
    netns_cluster: Callable[..., Cluster], fault: str
) -> None:
    cluster = netns_cluster(2)
    h0, h1 = cluster.hosts
    start_echo(h0)
    session = Session(h1, h0)
    session.send("a")
    assert session.recv() == "a"
    if fault == "partition":
        cluster.partition([h0], [h1])
    else:
        h0.disconnect()
    session.send("b")
    assert session.recv() is None  # silently dropped, not an error
    if fault == "partition":
        cluster.heal()
    else:
        h0.reconnect()
    # TCP retransmits "b" on the same connection once packets flow again.
    assert wait_for(session.recv, RESTORE_TIMEOUT_S, what="retransmitted echo") == "b"


def test_cluster_partition_rejects_bad_groups(netns_cluster: Callable[..., Cluster]) -> None:
    cluster, other = netns_cluster(3), netns_cluster(1)
    h0, h1, h2 = cluster.hosts
    with pytest.raises(ValueError, match="both sides"):
        cluster.partition([h0, h1], [h1, h2])
    with pytest.raises(ValueError, match="at least one"):
        cluster.partition([], [h0])
    with pytest.raises(ValueError, match="not a host"):
        cluster.partition([h0], other.hosts)


# --- processes and cleanup ----------------------------------------------------


def test_host_kill_processes_stops_everything_inside(netns_cluster: Callable[..., Cluster]) -> None:
    cluster = netns_cluster(2)
    h0, h1 = cluster.hosts
    start_stubborn_processes(h0)
    h1.popen(SLEEP_FOREVER)
    h0.kill_processes()
    assert pids_in_netns([netns_identity(h0.netns)]) == []
    assert pids_in_netns([netns_identity(h1.netns)]) != []  # other hosts untouched
    start_echo(h0)  # the host is still usable
    assert exchange(h1, h0, "again") == "again"


def test_host_run_timeout_kills_its_process_group(netns_cluster: Callable[..., Cluster]) -> None:
    h0 = netns_cluster(1).hosts[0]
    with pytest.raises(subprocess.TimeoutExpired):
        h0.run(["sh", "-c", "sleep 300 & exec sleep 300"], timeout=0.2)
    assert pids_in_netns([netns_identity(h0.netns)]) == []


def test_cluster_exit_removes_everything(netns_required: None) -> None:
    with Cluster(3) as cluster:
        for host in cluster.hosts:
            start_stubborn_processes(host)
        cluster.partition(cluster.hosts[:1], cluster.hosts[1:])
        cluster.hosts[2].disconnect()
        fp = footprint(cluster)
        assert len(fp.pids) >= 12
    assert_gone(fp)
    cluster.close()  # idempotent
    with pytest.raises(NetnsError, match="closed"):
        cluster.hosts[0].popen(SLEEP_FOREVER)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_cluster_cleans_up_when_body_raises(netns_required: None, error: type) -> None:
    with pytest.raises(error):
        with Cluster(2) as cluster:
            start_stubborn_processes(cluster.hosts[0])
            fp = footprint(cluster)
            raise error("boom")
    assert_gone(fp)


def test_cluster_setup_failure_leaves_nothing(
    netns_required: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_add_host = Cluster._add_host

    def add_host_then_fail(self: Cluster, host: Host) -> None:
        real_add_host(self, host)
        if host.index == 1:
            raise NetnsError("injected failure")

    monkeypatch.setattr(Cluster, "_add_host", add_host_then_fail)
    cluster = Cluster(3)
    with pytest.raises(NetnsError, match="injected"):
        cluster.start()
    assert_gone(Footprint(cluster.names.token, cluster.namespaces, (), (),
                          cluster.names.lock_path))


# A process that owns a cluster and sleeps until a signal arrives. SIGINT is
# set explicitly: a process started in the background may inherit it ignored.
_CLUSTER_OWNER = """\
import json, signal, time
from tests.netns.harness import Cluster
signal.signal(signal.SIGINT, signal.default_int_handler)
with Cluster(2) as cluster:
    sleeper = cluster.hosts[0].popen(["sleep", "300"])
    print(json.dumps({"namespaces": cluster.namespaces, "token": cluster.names.token,
                      "lock": str(cluster.names.lock_path), "pid": sleeper.pid}), flush=True)
    time.sleep(300)
"""
OWNER_EXIT_TIMEOUT_S = 20.0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_cluster_owner_interrupted_or_killed_leaves_nothing(
    netns_cluster: Callable[..., Cluster], sig: signal.Signals
) -> None:
    """Ctrl-C runs the owner's own cleanup; after SIGKILL, which allows no
    cleanup, reap_stale removes what the dead owner left, and only that."""
    live = netns_cluster(1)
    owner = subprocess.Popen([sys.executable, "-c", _CLUSTER_OWNER], cwd=REPO_ROOT,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        info = json.loads(owner.stdout.readline())
        identities = tuple(i for i in map(netns_identity, info["namespaces"]) if i is not None)
        owner.send_signal(sig)
        owner.wait(timeout=OWNER_EXIT_TIMEOUT_S)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
    if sig == signal.SIGKILL:
        reap_stale()  # (a concurrent run's reap_stale may have beaten us to it)
    assert_gone(Footprint(info["token"], tuple(info["namespaces"]), identities,
                          (info["pid"],), Path(info["lock"])))
    assert set(live.namespaces) <= set(netns_names())
    assert port_open(live.hosts[0], 1) is False  # still working: a refused connect
