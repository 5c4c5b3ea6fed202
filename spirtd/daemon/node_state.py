"""What a peer keeps across restarts in its data dir: its membership
incarnation (so that it comes back with a higher one) and the newest
revocation list it adopted (so that a restart does not forget a revocation
learned by gossip). Written atomically and fsynced before it is relied on."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from spirtd.errors import ConfigError
from spirtd.files import write_atomically

FILE_NAME = "node.json"
DAMAGED_SUFFIX = ".damaged"


@dataclass(frozen=True)
class NodeState:
    incarnation: int = 0
    crl_der: bytes | None = None


def make_data_dir(data_dir: Path) -> None:
    """The data dir, made if missing; one that cannot be made (a file is in
    the way, no permission) is a bad data_dir setting."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"data_dir {str(data_dir)!r} must be a folder this user can make or use, "
                          f"but it cannot be made: {exc.strerror or exc}") from None


def load(data_dir: Path) -> NodeState:
    path = data_dir / FILE_NAME
    if not path.exists():
        return NodeState()
    try:
        raw = json.loads(path.read_text())
        crl = raw.get("crl_der_b64")
        return NodeState(int(raw.get("incarnation", 0)), base64.b64decode(crl) if crl else None)
    except (ValueError, TypeError, AttributeError, RecursionError, OSError) as exc:
        raise ConfigError(f"{path} is damaged ({exc})") from exc


def load_or_recover(data_dir: Path, wall_s: float) -> tuple[NodeState, str]:
    """The saved state; a damaged file is moved aside (node.json.damaged)
    and the peer starts with an incarnation from the wall clock, above any
    it counted up to before (its revocation list comes back from crl.pem
    and gossip). Returns the state and what was wrong ("" if nothing)."""
    try:
        return load(data_dir), ""
    except ConfigError as exc:
        path = data_dir / FILE_NAME
        os.replace(path, path.with_name(FILE_NAME + DAMAGED_SUFFIX))
        return NodeState(incarnation=int(wall_s)), f"{exc}; moved it to {FILE_NAME}{DAMAGED_SUFFIX}"


def save(data_dir: Path, state: NodeState) -> None:
    make_data_dir(data_dir)
    path = data_dir / FILE_NAME
    payload = {"incarnation": state.incarnation}
    if state.crl_der:
        payload["crl_der_b64"] = base64.b64encode(state.crl_der).decode()
    write_atomically(path, json.dumps(payload).encode())
