"""Reading a process's resident memory (VmRSS) from /proc, for the pool's
memory watchdog. RSS counts what the process has touched, not what it has
reserved: torch reserves far more address space than it ever uses, which is
why the watchdog limits RSS and not RLIMIT_AS."""

from __future__ import annotations

_KB_PER_MB = 1024


def parse_vmrss_kb(status: str) -> int | None:
    """The VmRSS of a /proc/PID/status text, in kB; None when there is no
    such line (a zombie, or a kernel thread)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1])
            return None
    return None


def rss_mb(pid: int) -> float | None:
    """Resident memory of process `pid` in MiB; None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except OSError:  # gone (ENOENT, ESRCH), or not ours to read
        return None
    kb = parse_vmrss_kb(status)
    return None if kb is None else kb / _KB_PER_MB
