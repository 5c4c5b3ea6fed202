"""Names for everything a cluster creates, and who owns them.

Every cluster has an id `<pid>-<token>` (the creating process and six random
hex digits). Its namespaces are `spirtd-nt-<id>-sw` (the switch) and
`spirtd-nt-<id>-h<i>` (the hosts); its interfaces are `nt<token>br`,
`nt<token>s<i>` (switch side) and `nt<token>h<i>` (host side), within the
15-character limit. Interfaces only ever exist inside the cluster's own
namespaces, so concurrent runs cannot clash even on interface names.

While a cluster lives, its creator holds an flock on
/run/spirtd-netns/<id>.lock. The kernel drops that lock when the creator
dies, even by SIGKILL, so `reap_stale` can tell a dead owner's leftovers from
a live cluster of a concurrent test run and remove only the former.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from .netns_ops import delete_netns, kill_netns_processes, netns_names

PREFIX = "spirtd-nt"
LOCK_DIR = Path("/run/spirtd-netns")
TOKEN_BYTES = 3
_NETNS_RE = re.compile(rf"^{PREFIX}-(?P<cid>\d+-[0-9a-f]{{{2 * TOKEN_BYTES}}})-(?:sw|h\d+|probe)$")


@dataclass(frozen=True)
class ClusterNames:
    """The naming scheme of one cluster."""

    pid: int
    token: str

    @classmethod
    def fresh(cls) -> ClusterNames:
        return cls(os.getpid(), secrets.token_hex(TOKEN_BYTES))

    @property
    def cluster_id(self) -> str:
        return f"{self.pid}-{self.token}"

    @property
    def switch_netns(self) -> str:
        return f"{PREFIX}-{self.cluster_id}-sw"

    @property
    def probe_netns(self) -> str:
        return f"{PREFIX}-{self.cluster_id}-probe"

    def host_netns(self, index: int) -> str:
        return f"{PREFIX}-{self.cluster_id}-h{index}"

    @property
    def bridge(self) -> str:
        return f"nt{self.token}br"

    def switch_port(self, index: int) -> str:
        return f"nt{self.token}s{index}"

    def host_if(self, index: int) -> str:
        return f"nt{self.token}h{index}"

    @property
    def lock_path(self) -> Path:
        return LOCK_DIR / f"{self.cluster_id}.lock"


class OwnerLock:
    """The flock that marks a cluster id as owned by a live process."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def try_acquire(cls, path: Path) -> OwnerLock | None:
        """The lock, or None while another live process holds it."""
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return cls(path, fd)

    def release(self) -> None:
        """Remove the lock file, then drop the lock; idempotent."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None


def destroy_namespaces(names: list[str]) -> None:
    """Kill every process inside the namespaces, then delete them (which
    destroys their interfaces: a namespace still holding a process would
    outlive its name, veths and all)."""
    kill_netns_processes(names)
    for name in names:
        delete_netns(name)


def reap_stale() -> list[str]:
    """Remove the namespaces (and their processes) of clusters whose owner
    has died; return the ids of the clusters removed. Clusters of live
    owners, in this process or any other, are left alone."""
    owned: dict[str, list[str]] = {}
    for name in netns_names():
        match = _NETNS_RE.match(name)
        if match:
            owned.setdefault(match["cid"], []).append(name)
    reaped = []
    for cid, names in sorted(owned.items()):
        lock = OwnerLock.try_acquire(LOCK_DIR / f"{cid}.lock")
        if lock is None:
            continue
        try:
            destroy_namespaces(names)
        finally:
            lock.release()
        reaped.append(cid)
    return reaped
