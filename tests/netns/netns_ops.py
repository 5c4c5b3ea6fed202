"""Low-level operations for the netns harness: the `ip` command, the
processes inside a namespace, and stopping them.

Everything here works on namespace names and pids; the harness module
builds clusters out of it. Nothing here touches the host's own network
namespace except to read /proc and /run/netns.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterable

# Where `ip netns add` puts its bind mounts.
NETNS_RUN_DIR = Path("/run/netns")
# How long one `ip` command may take (they take milliseconds).
IP_TIMEOUT_S = 10.0
# How long a process gets after SIGTERM before SIGKILL.
TERM_GRACE_S = 0.5
# How long killed processes get to disappear before cleanup gives up.
KILL_WAIT_S = 5.0
# Poll interval while waiting for processes to exit.
POLL_S = 0.02


class NetnsError(RuntimeError):
    """An `ip` command failed, or a namespace could not be emptied."""


def ip_binary() -> str | None:
    """Path of iproute2's `ip`, looking in the sbin directories too, since
    a non-login root shell may not have them on PATH."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return shutil.which("ip", path=path)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS...`; raise NetnsError on failure when check is set."""
    binary = ip_binary()
    if binary is None:
        raise NetnsError("iproute2 `ip` not found")
    result = subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S
    )
    if check and result.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result


def netns_names() -> list[str]:
    """Names of all named network namespaces (from /run/netns)."""
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return []


def netns_identity(name: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a named namespace, or None when it is gone."""
    try:
        st = os.stat(NETNS_RUN_DIR / name)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def pids_in_netns(identities: Iterable[tuple[int, int]]) -> list[int]:
    """Pids of live processes whose network namespace is one of those given
    (as from netns_identity). Zombies have no namespace and are not listed."""
    wanted = set(identities)
    if not wanted:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:  # exited, a zombie, or a kernel thread
            continue
        if (st.st_dev, st.st_ino) in wanted:
            found.append(int(entry))
    return found


def pid_alive(pid: int) -> bool:
    """True while pid names a process that is neither gone nor a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # Field 3 (after the parenthesised command, which may hold spaces).
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def stop_process_groups(procs: list[subprocess.Popen]) -> None:
    """SIGTERM the process group of every unreaped proc, give them
    TERM_GRACE_S together, SIGKILL the groups still running, then reap.

    Only groups whose leader is not yet reaped are signalled: the leader's
    pid (its group id) cannot have been reused while it is unreaped."""
    live = [p for p in procs if p.returncode is None]
    for p in live:
        _killpg(p, signal.SIGTERM)
    deadline = time.monotonic() + TERM_GRACE_S
    for p in live:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in live:
        # The leader may have exited on SIGTERM while others in its group
        # ignored it; the group id stays valid until we reap the leader,
        # which poll() does, so kill before polling.
        _killpg(p, signal.SIGKILL)
    for p in live:
        try:
            p.wait(timeout=KILL_WAIT_S)
        except subprocess.TimeoutExpired as exc:
            raise NetnsError(f"pid {p.pid} survived SIGKILL for {KILL_WAIT_S} s") from exc


def _killpg(proc: subprocess.Popen, sig: signal.Signals) -> None:
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def kill_netns_processes(names: Iterable[str]) -> None:
    """SIGKILL every process inside the named namespaces, whoever started
    it, and wait until none is left (bounded by KILL_WAIT_S)."""
    names = list(names)
    identities = [i for i in map(netns_identity, names) if i is not None]
    deadline = time.monotonic() + KILL_WAIT_S
    while True:
        pids = pids_in_netns(identities)
        if not pids:
            return
        if time.monotonic() > deadline:
            raise NetnsError(f"processes {pids} still inside {names} after SIGKILL")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(POLL_S)


def delete_netns(name: str) -> None:
    """Delete a named namespace (which destroys the veths inside it); a
    namespace that is already gone is not an error."""
    if netns_identity(name) is None:
        return
    result = ip("netns", "delete", name, check=False)
    if result.returncode != 0 and netns_identity(name) is not None:
        raise NetnsError(f"cannot delete namespace {name}: {result.stderr.strip()}")
