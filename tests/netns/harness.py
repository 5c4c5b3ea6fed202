"""Multi-host tests on one Linux machine, with network namespaces.

A `Cluster` is a "switch" namespace holding one bridge, plus N host
namespaces, each joined to the bridge by a veth pair and addressed
10.77.0.(10+i)/24 by default. Nothing is created in the host's own
namespace, and the hosts have no route out of their subnet, so no test
traffic can leave the cluster::

    with Cluster(3) as cluster:
        a, b, c = cluster.hosts
        server = a.popen([PYTHON, "-m", "my.server", "--bind", a.ip])
        wait_for(lambda: port_open(a, 7000), timeout_s=10, what="server up")
        cluster.partition([a], [b, c])   # packets between a and b, c dropped
        cluster.heal()
        b.disconnect()                   # b's cable out
        b.reconnect()

Leaving the `with` block (normally, by an exception, or by Ctrl-C) kills
every process in the namespaces and deletes them. A run that dies without
cleaning up (SIGKILL) leaves namespaces that the next cluster's `reap_stale`
removes, once it sees that their owner no longer holds its lock.

Errors: `NetnsError` (RuntimeError) when an `ip` command or cleanup fails;
`WaitTimeout` (AssertionError) when `wait_for` runs out of time; ValueError
for bad arguments.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import subprocess
import sys
import threading
import warnings
from typing import Any, Callable, Iterable, Sequence

from .netns_ops import NetnsError, delete_netns, ip, ip_binary, kill_netns_processes
from .netns_ops import stop_process_groups
from .ownership import ClusterNames, OwnerLock, destroy_namespaces, reap_stale
from .waiting import WaitTimeout, wait_for

__all__ = [
    "Cluster", "Host", "NetnsError", "PYTHON", "WaitTimeout",
    "netns_available", "port_open", "reap_stale", "wait_for",
]

# The interpreter to run helper scripts with inside namespaces.
PYTHON = sys.executable
DEFAULT_SUBNET = "10.77.0.0/24"
# Host i gets the subnet's address number HOST_OFFSET + i.
DEFAULT_HOST_OFFSET = 10
# Default limit for Host.run.
RUN_TIMEOUT_S = 30.0
# port_open's connect timeout, and the allowance for starting its probe.
PROBE_CONNECT_TIMEOUT_S = 1.0
PROBE_START_ALLOWANCE_S = 10.0
# Policy-rule priorities inside hosts: partition drops, then the local table.
PARTITION_RULE_PREF = 10
LOCAL_RULE_PREF = 100

_CONNECT_PROBE = """\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError as exc:
    print(type(exc).__name__, exc)
    sys.exit(1)
"""


def netns_available() -> str | None:
    """None when this machine can run clusters, else why not. Really
    creates (and deletes) a throwaway namespace with a bridge and a veth."""
    if os.geteuid() != 0:
        return "network namespaces need root (euid is not 0)"
    if ip_binary() is None:
        return "iproute2 `ip` is not installed (looked on PATH, /usr/sbin, /sbin)"
    names = ClusterNames.fresh()
    lock = OwnerLock.try_acquire(names.lock_path)
    if lock is None:
        return f"cannot lock {names.lock_path}"
    probe = names.probe_netns
    try:
        ip("netns", "add", probe)
        ip("-n", probe, "link", "add", names.bridge, "type", "bridge")
        ip("-n", probe, "link", "add", names.switch_port(0), "type", "veth",
           "peer", "name", names.host_if(0))
    except (NetnsError, OSError, subprocess.SubprocessError) as exc:
        return f"cannot create a namespace with a bridge and a veth: {exc}"
    finally:
        try:
            delete_netns(probe)
        finally:
            lock.release()
    return None


def port_open(
    host: Host,
    port: int,
    *,
    source: Host | None = None,
    timeout_s: float = PROBE_CONNECT_TIMEOUT_S,
) -> bool:
    """Whether a TCP connection to host.ip:port succeeds within timeout_s,
    tried from inside `source` (default: host itself)."""
    prober = source or host
    result = prober.run(
        [PYTHON, "-c", _CONNECT_PROBE, host.ip, str(port), str(timeout_s)],
        timeout=timeout_s + PROBE_START_ALLOWANCE_S,
    )
    if result.returncode not in (0, 1):
        raise NetnsError(f"connect probe in {prober.name} crashed: {result.stderr.strip()}")
    return result.returncode == 0


class Host:
    """One host namespace of a cluster, with its own address and processes."""

    def __init__(self, cluster: Cluster, index: int, ip_address: str) -> None:
        names = cluster.names
        self._cluster = cluster
        self.index = index
        self.name = f"h{index}"
        self.ip = ip_address
        self.netns = names.host_netns(index)
        self.ifname = names.host_if(index)
        self.switch_netns = names.switch_netns
        self.switch_port = names.switch_port(index)
        self.connected = True
        self._procs: list[subprocess.Popen] = []
        self._procs_lock = threading.Lock()  # probes may run from threads

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.ip} in {self.netns}>"

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """Start argv inside this namespace, in its own session (so its
        whole process group can be killed); it is killed at teardown."""
        if kwargs.pop("start_new_session", True) is not True:
            raise ValueError("host processes always get their own session")
        if self._cluster.state is not ClusterState.RUNNING:
            raise NetnsError(f"cannot start a process in a cluster that is "
                             f"{self._cluster.state.value}")
        binary = ip_binary() or "ip"
        proc = subprocess.Popen(
            [binary, "netns", "exec", self.netns, *argv], start_new_session=True, **kwargs
        )
        with self._procs_lock:
            self._procs = [p for p in self._procs if p.returncode is None]
            self._procs.append(proc)
        return proc

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = RUN_TIMEOUT_S,
        check: bool = False,
        input: str | None = None,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess:
        """Run argv inside this namespace to completion, capturing text
        output. On timeout its process group is killed and
        subprocess.TimeoutExpired raised."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
        if input is not None:
            kwargs["stdin"] = subprocess.PIPE
        proc = self.popen(argv, **kwargs)
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except BaseException:
            stop_process_groups([proc])
            raise
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if check:
            result.check_returncode()
        return result

    def kill_processes(self) -> None:
        """Stop every process in this namespace: the ones started here
        (SIGTERM to their groups, then SIGKILL), then anything else still
        inside (SIGKILL)."""
        stop_process_groups(self._take_procs())
        kill_netns_processes([self.netns])

    def _take_procs(self) -> list[subprocess.Popen]:
        with self._procs_lock:
            procs, self._procs = self._procs, []
        return procs

    def disconnect(self) -> None:
        """Pull the cable: both ends of the host's veth go down. Packets to
        the host are dropped silently (peers' connects and sends time out);
        the host itself loses its subnet route, so its own connects fail at
        once with ENETUNREACH."""
        if not self.connected:
            return
        ip("-n", self.netns, "link", "set", self.ifname, "down")
        ip("-n", self.switch_netns, "link", "set", self.switch_port, "down")
        self.connected = False

    def reconnect(self) -> None:
        """Plug the cable back in (its subnet route comes back with it)."""
        if self.connected:
            return
        ip("-n", self.switch_netns, "link", "set", self.switch_port, "up")
        ip("-n", self.netns, "link", "set", self.ifname, "up")
        self.connected = True
        for host in self._cluster.hosts:
            host.forget_unresolved_neighbors()

    def forget_unresolved_neighbors(self) -> None:
        """Drop ARP entries still resolving or failed, so the next packet to
        such an address asks again at once instead of on the next ARP retry
        (up to a second later). Done after every repair."""
        ip("-n", self.netns, "neigh", "flush", "dev", self.ifname,
           "nud", "incomplete", "nud", "failed")


class ClusterState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class Cluster:
    """A bridge in its own namespace and n hosts plugged into it. Use as a
    context manager; `close()` is idempotent."""

    def __init__(
        self,
        n: int = 3,
        *,
        subnet: str = DEFAULT_SUBNET,
        host_offset: int = DEFAULT_HOST_OFFSET,
    ) -> None:
        network = ipaddress.ip_network(subnet)
        if not isinstance(network, ipaddress.IPv4Network) or not network.is_private:
            raise ValueError(f"subnet {subnet} must be a private IPv4 network")
        if n < 1:
            raise ValueError(f"a cluster needs at least one host, not {n}")
        usable = network.num_addresses - 2  # network and broadcast addresses
        if host_offset < 1 or host_offset + n - 1 > usable:
            raise ValueError(
                f"{n} hosts from offset {host_offset} do not fit in {subnet} ({usable} usable)"
            )
        self.network = network
        self.names = ClusterNames.fresh()
        self.hosts: tuple[Host, ...] = tuple(
            Host(self, i, str(network.network_address + host_offset + i)) for i in range(n)
        )
        self.switch_netns = self.names.switch_netns
        self.bridge = self.names.bridge
        self.state = ClusterState.NEW
        self._lock: OwnerLock | None = None
        self._created: list[str] = []
        self._blocked: set[tuple[int, int]] = set()

    def __repr__(self) -> str:
        return f"<Cluster {self.names.cluster_id} {self.state.value} {len(self.hosts)} hosts>"

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace name this cluster uses, switch first."""
        return (self.switch_netns, *(h.netns for h in self.hosts))

    @property
    def interfaces(self) -> tuple[str, ...]:
        """Every interface name this cluster creates, bridge first."""
        return (self.bridge, *(n for h in self.hosts for n in (h.switch_port, h.ifname)))

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        """Create the namespaces, bridge and links; on any failure, remove
        whatever was created and re-raise."""
        if self.state is not ClusterState.NEW:
            raise NetnsError(f"cannot start a cluster that is {self.state.value}")
        self.state = ClusterState.RUNNING
        try:
            try:
                reap_stale()
            except NetnsError as exc:  # someone else's leftovers: not our failure
                warnings.warn(f"could not remove a stale cluster: {exc}", stacklevel=2)
            self._lock = OwnerLock.try_acquire(self.names.lock_path)
            if self._lock is None:
                raise NetnsError(f"cluster id {self.names.cluster_id} is already in use")
            self._add_netns(self.switch_netns)
            sw = ("-n", self.switch_netns)
            ip(*sw, "link", "add", self.bridge, "type", "bridge", "forward_delay", "0")
            ip(*sw, "link", "set", self.bridge, "up")
            for host in self.hosts:
                self._add_host(host)
        except BaseException:
            self.close()
            raise

    def _add_netns(self, name: str) -> None:
        self._created.append(name)  # before creating: a half-made one is removed too
        ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")

    def _add_host(self, host: Host) -> None:
        self._add_netns(host.netns)
        sw = ("-n", self.switch_netns)
        ip(*sw, "link", "add", host.switch_port, "type", "veth",
           "peer", "name", host.ifname, "netns", host.netns)
        ip(*sw, "link", "set", host.switch_port, "master", self.bridge, "up")
        hn = ("-n", host.netns)
        ip(*hn, "addr", "add", f"{host.ip}/{self.network.prefixlen}", "dev", host.ifname)
        ip(*hn, "link", "set", host.ifname, "up")
        # Let partition rules come before the local table (normally rule 0).
        ip(*hn, "rule", "add", "pref", str(LOCAL_RULE_PREF), "lookup", "local")
        ip(*hn, "rule", "del", "pref", "0", "lookup", "local")

    def partition(self, group_a: Iterable[Host], group_b: Iterable[Host]) -> None:
        """Silently drop every packet between group_a and group_b, both
        ways, as in a real partition: connects and sends time out, open
        connections stall and resume after heal(). Hosts in neither group are
        unaffected; calls accumulate until heal()."""
        a, b = self._members(group_a), self._members(group_b)
        if not a or not b:
            raise ValueError("both sides of a partition need at least one host")
        overlap = {h.name for h in a} & {h.name for h in b}
        if overlap:
            raise ValueError(f"hosts on both sides of the partition: {sorted(overlap)}")
        for x in a:
            for y in b:
                self._block(x, y)
                self._block(y, x)

    def heal(self) -> None:
        """Remove every partition. (ARP was cut too; unresolved entries are
        dropped so that traffic flows again at once.)"""
        for receiver, sender in sorted(self._blocked):
            ip(*self._drop_rule("del", self.hosts[receiver], self.hosts[sender]))
            self._blocked.discard((receiver, sender))
        for host in self.hosts:
            host.forget_unresolved_neighbors()

    def _block(self, receiver: Host, sender: Host) -> None:
        if (receiver.index, sender.index) not in self._blocked:
            ip(*self._drop_rule("add", receiver, sender))
            self._blocked.add((receiver.index, sender.index))

    @staticmethod
    def _drop_rule(verb: str, receiver: Host, sender: Host) -> tuple[str, ...]:
        """A policy rule in receiver that blackholes packets arriving from
        sender: for received packets that is a silent drop. (A blackhole
        *route* for outgoing packets would not do: locally sent packets hit
        it as an immediate EINVAL, not a timeout.) It sits before the rule
        for the local table, which _add_host moved down for this."""
        return ("-n", receiver.netns, "rule", verb, "pref", str(PARTITION_RULE_PREF),
                "from", sender.ip, "iif", receiver.ifname, "blackhole")

    def _members(self, group: Iterable[Host]) -> list[Host]:
        members = list(group)
        for host in members:
            if not any(host is h for h in self.hosts):
                raise ValueError(f"{host!r} is not a host of {self!r}")
        return members

    def close(self) -> None:
        """Kill every process in the cluster and delete its namespaces.
        Every step runs even if an earlier one fails or Ctrl-C arrives; the
        first failure is raised at the end."""
        if self.state is ClusterState.CLOSED:
            return
        self.state = ClusterState.CLOSED
        steps: list[Callable[[], None]] = [
            # All hosts' process groups at once, so they share one grace period.
            lambda: stop_process_groups([p for h in self.hosts for p in h._take_procs()]),
            lambda: destroy_namespaces(list(reversed(self._created))),
        ]
        if self._lock is not None:
            steps.append(self._lock.release)
        failure: BaseException | None = None
        for step in steps:
            try:
                step()
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                failure = failure or exc
        if failure is not None:
            raise failure
