"""Files written whole or not at all.

Every file spirtd relies on after a crash (job records, node state, keys,
passwords) goes through write_atomically: a reader sees the old content or
the new, never a torn mix, and a private file is never readable by others,
not even for an instant."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def write_atomically(path: Path, data: bytes, mode: int = PRIVATE_MODE) -> None:
    """Replaces path with data. A fresh temporary file (mkstemp: 0600, never
    an old one another process could have opened) gets mode, the data and an
    fsync, then a rename; the folder is fsynced so that the rename survives a
    power cut."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
