"""What this machine can hold: its memory, as the kernel and the cgroup the
process runs in allow. Defaults of memory limits derive from it."""

from __future__ import annotations

import os
from pathlib import Path

MIB = 1 << 20
# cgroup v2: the memory limit of the cgroup this process is in ("max": none).
CGROUP_MEMORY_MAX = Path("/sys/fs/cgroup/memory.max")


def memory_bytes() -> int:
    """Physical memory, or the cgroup's limit when that is lower."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        text = CGROUP_MEMORY_MAX.read_text().strip()
    except OSError:
        return physical
    return min(physical, int(text)) if text.isdigit() else physical


def memory_mb() -> int:
    return memory_bytes() // MIB
