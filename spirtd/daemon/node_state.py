"""What a peer keeps across restarts in its data dir: its membership
incarnation (so that it comes back with a higher one) and the newest
revocation list it adopted (so that a restart does not forget a revocation
learned by gossip). Written atomically and fsynced before it is relied on."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from spirtd.errors import ConfigError
from spirtd.files import write_atomically

FILE_NAME = "node.json"


@dataclass(frozen=True)
class NodeState:
    incarnation: int = 0
    crl_der: bytes | None = None


def load(data_dir: Path) -> NodeState:
    path = data_dir / FILE_NAME
    if not path.exists():
        return NodeState()
    try:
        raw = json.loads(path.read_text())
        crl = raw.get("crl_der_b64")
        return NodeState(int(raw.get("incarnation", 0)), base64.b64decode(crl) if crl else None)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path} is damaged ({exc}); move it away to start afresh") from exc


def save(data_dir: Path, state: NodeState) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / FILE_NAME
    payload = {"incarnation": state.incarnation}
    if state.crl_der:
        payload["crl_der_b64"] = base64.b64encode(state.crl_der).decode()
    write_atomically(path, json.dumps(payload).encode())
